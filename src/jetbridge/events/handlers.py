"""Python handlers by name: the program registers them at start; rules and workflows name them.

A caller's rule or state machine holds a registered name (`"notify-ops"`), never a module path:
nothing a caller sends can make the platform import or load code. Handlers come from three
places, all chosen by whoever runs the program: the `handlers` given to `build_platform` /
`create_app`, the `jetbridge.handlers` entry points of installed packages, and the modules named
by the operator's `JETBRIDGE_HANDLER_PLUGINS` setting (each defines `register_handlers(registry)`).

The platform's own services (the subscription fan-out, ...) are registered apart, named
`service:<name>`, and only rules the platform installs itself may name them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from jetbridge.errors import ConfigurationError

Handler = Callable[..., Any]
HANDLER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
SERVICE_PREFIX = "service:"
ENTRY_POINT_GROUP = "jetbridge.handlers"
PLUGIN_HOOK = "register_handlers"
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class HandlerRegistry:
    """The handlers of this process: public ones callers may name, and the platform's services."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._public: dict[str, Handler] = {}
        self._grants: dict[str, frozenset[str] | None] = {}
        self._services: dict[str, Handler] = {}
        for name, handler in (handlers or {}).items():
            self.register(name, handler)

    def register(
        self, name: str, handler: Handler, *, tenants: Iterable[str] | None = None
    ) -> None:
        """Make `handler` a target callers' rules (and Task states) may name as `name`: every
        tenant's callers, or with `tenants` only those tenants' (the operator's always)."""
        _check_name(name)
        if not callable(handler):
            raise ConfigurationError(f"handler {name!r}: {handler!r} is not callable")
        if name in self._public and self._public[name] is not handler:
            raise ConfigurationError(f"handler {name!r} is registered twice")
        self._public[name] = handler
        self._grants[name] = None if tenants is None else frozenset(tenants)

    def granted(self, name: str, tenant: str | None, *, operator: bool = False) -> bool:
        """Whether callers of `tenant` may name handler `name` (the operator may name all)."""
        if name not in self._public:
            return False
        grant = self._grants.get(name)
        return operator or grant is None or (tenant is not None and tenant in grant)

    def granted_names(self, tenant: str | None, *, operator: bool = False) -> frozenset[str]:
        return frozenset(
            name for name in self._public if self.granted(name, tenant, operator=operator)
        )

    def register_service(self, name: str, handler: Handler) -> None:
        """A platform service, named `service:<name>` by rules the platform installs itself."""
        _check_name(name)
        self._services[name] = handler

    @property
    def public(self) -> Mapping[str, Handler]:
        """What callers may name (read-only view; it follows later registrations)."""
        return MappingProxyType(self._public)

    def resolve(self, name: str) -> Handler | None:
        """The handler a stored target names, public or service; None if none is registered."""
        if name.startswith(SERVICE_PREFIX):
            return self._services.get(name.removeprefix(SERVICE_PREFIX))
        return self._public.get(name)

    def refusal(self, name: str, *, platform: bool = False) -> str | None:
        """Why a rule may not name `name` (None: it may). Only the platform names services."""
        if name.startswith(SERVICE_PREFIX):
            if platform and self.resolve(name) is not None:
                return None
            return f"{name!r} is a platform service; rules put by callers cannot name it"
        if not HANDLER_NAME.fullmatch(name):
            return (
                f"{name!r} is not a handler name; name a registered handler such as "
                "'notify-ops' (lower-case letters, digits, '.', '_' and '-')"
            )
        if name not in self._public:
            return f"no handler named {name!r} is registered"
        return None

    def load_entry_points(self) -> None:
        """Register the handlers installed packages declare under `jetbridge.handlers`."""
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _check_name(entry.name, f"entry point {entry.value!r}")
            self.register(entry.name, entry.load())

    def load_plugins(self, modules: Iterable[str]) -> None:
        """Import each operator-configured module once and let it register its handlers."""
        for module_name in modules:
            if not MODULE_NAME.fullmatch(module_name):
                raise ConfigurationError(
                    f"JETBRIDGE_HANDLER_PLUGINS: {module_name!r} is not a module name"
                )
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigurationError(
                    f"JETBRIDGE_HANDLER_PLUGINS: module {module_name!r} cannot be imported: {exc}"
                ) from None
            hook = module.__dict__.get(PLUGIN_HOOK)
            if not callable(hook):
                raise ConfigurationError(
                    f"JETBRIDGE_HANDLER_PLUGINS: module {module_name!r} has no "
                    f"{PLUGIN_HOOK}(registry) function"
                )
            hook(self)


def _check_name(name: str, what: str = "handler") -> None:
    if not isinstance(name, str) or not HANDLER_NAME.fullmatch(name):
        raise ConfigurationError(
            f"{what}: {name!r} is not a handler name (expected {HANDLER_NAME.pattern})"
        )
