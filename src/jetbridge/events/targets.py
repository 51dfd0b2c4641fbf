"""Target invocation: Python handlers and HTTP endpoints (bus targets are handled by the worker)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from jetbridge.events.signing import SIGNATURE_HEADER, sign
from jetbridge.events.specs import TargetSpec
from jetbridge.ops.outbound import OutboundRefused


class DeliveryFailed(Exception):
    """A target refused or failed a delivery; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What a handler may ask for besides its input (declare a `context` parameter)."""

    event_id: str
    bus: str
    rule: str
    target_id: str
    attempt: int
    event: dict[str, Any]


def load_handler(dotted: str) -> Callable[..., Any]:
    """Resolve 'package.module:function' (or 'package.module.function') to a callable."""
    module_name, _, attr = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise DeliveryFailed(f"handler {dotted!r} cannot be loaded: {exc}") from None
    if not callable(handler):
        raise DeliveryFailed(f"handler {dotted!r} is not callable", retryable=False)
    return handler  # type: ignore[no-any-return]


def _wants_context(handler: Callable[..., Any]) -> bool:
    try:
        return "context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


class TargetInvoker:
    """Calls Python and HTTP targets; raises `DeliveryFailed` on any failure. `client` is an
    outbound client (`jetbridge.ops.outbound.async_client`): a refused address fails for good."""

    def __init__(self, *, client: httpx.AsyncClient, default_secret: str) -> None:
        self._client = client
        self._default_secret = default_secret
        self._handlers: dict[str, tuple[Callable[..., Any], bool]] = {}
        self.services: dict[str, Callable[..., Any]] = {}
        self.start_workflow: Callable[[str, dict[str, Any], Any], None] | None = None

    def register_service(self, name: str, handler: Callable[..., Any]) -> None:
        """Make a platform-bound callable a target, named `service:<name>` in rules."""
        self.services[name] = handler

    async def invoke(self, spec: TargetSpec, payload: Any, context: DeliveryContext) -> None:
        if spec.kind == "python":
            await self._call_python(spec.handler or "", payload, context)
        elif spec.kind == "http":
            await self._post(spec, payload, context)
        elif spec.kind == "workflow" and self.start_workflow is not None:
            # One execution per event and rule: a redelivery finds the execution already started.
            name = f"{context.rule}-{context.event_id}"[:80]
            await asyncio.to_thread(self.start_workflow, name, spec.definition or {}, payload)
        else:
            raise DeliveryFailed(f"target kind {spec.kind!r} is not invoked here", retryable=False)

    async def _call_python(self, dotted: str, payload: Any, context: DeliveryContext) -> None:
        handler, wants_context = self._handler(dotted)
        kwargs = {"context": context} if wants_context else {}
        try:
            if inspect.iscoroutinefunction(handler):
                await handler(payload, **kwargs)
            else:
                await asyncio.to_thread(handler, payload, **kwargs)
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def _handler(self, dotted: str) -> tuple[Callable[..., Any], bool]:
        if dotted.startswith("service:"):
            service = self.services.get(dotted.removeprefix("service:"))
            if service is None:
                raise DeliveryFailed(f"no service handler {dotted!r} in this process")
            return service, _wants_context(service)
        if dotted not in self._handlers:
            handler = load_handler(dotted)
            self._handlers[dotted] = (handler, _wants_context(handler))
        return self._handlers[dotted]

    async def _post(self, spec: TargetSpec, payload: Any, context: DeliveryContext) -> None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            **spec.headers,
            "Content-Type": "application/json",
            "X-Jetbridge-Event-Id": context.event_id,
            "X-Jetbridge-Rule": context.rule,
            "X-Jetbridge-Attempt": str(context.attempt),
            SIGNATURE_HEADER: sign(spec.secret or self._default_secret, body),
        }
        if spec.api_key:
            headers[spec.api_key_header or "X-Api-Key"] = spec.api_key
        try:
            response = await self._client.post(spec.url or "", content=body, headers=headers)
        except OutboundRefused as exc:
            raise DeliveryFailed(f"POST {spec.url}: {exc}", retryable=False) from None
        except httpx.InvalidURL as exc:
            raise DeliveryFailed(f"POST {spec.url}: {exc}", retryable=False) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"POST {spec.url}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status in {408, 409, 425, 429} or status >= 500
        raise DeliveryFailed(f"POST {spec.url}: HTTP {status}", retryable=retryable)
