"""The handler registry: names only, refusals that say why, and the operator's ways to add
handlers at start (entry points of installed packages, plugin modules)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from jetbridge.errors import ConfigurationError
from jetbridge.events.handlers import HandlerRegistry


def record(payload: Any) -> None:
    """A handler."""


def fan_out(payload: Any) -> None:
    """A platform service."""


@pytest.mark.parametrize(
    "name", ["os:system", "os.system:", "Notify", "", "a" * 65, "service:x", "-x", "x y", "x\n"]
)
def test_only_plain_names_can_be_registered(name: str) -> None:
    with pytest.raises(ConfigurationError, match="not a handler name"):
        HandlerRegistry({name: record})


def test_a_name_means_one_handler() -> None:
    registry = HandlerRegistry({"notify-ops": record})
    registry.register("notify-ops", record)
    with pytest.raises(ConfigurationError, match="registered twice"):
        registry.register("notify-ops", fan_out)
    with pytest.raises(ConfigurationError, match="not callable"):
        registry.register("other", "os:system")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        registry.public["sneaky"] = fan_out  # type: ignore[index]


def test_refusals_say_why_and_services_are_for_the_platform_only() -> None:
    registry = HandlerRegistry({"notify-ops": record})
    registry.register_service("subscriptions.fan-out", fan_out)
    assert registry.refusal("notify-ops") is None
    assert "no handler named 'nope'" in str(registry.refusal("nope"))
    assert "not a handler name" in str(registry.refusal("os:system"))
    assert "platform service" in str(registry.refusal("service:subscriptions.fan-out"))
    assert registry.refusal("service:subscriptions.fan-out", platform=True) is None
    assert "platform service" in str(registry.refusal("service:missing", platform=True))
    assert registry.resolve("service:subscriptions.fan-out") is fan_out
    assert registry.resolve("subscriptions.fan-out") is None
    assert registry.resolve("notify-ops") is record
    assert registry.resolve("os:system") is None
    assert dict(registry.public) == {"notify-ops": record}


def plugin(tmp_path: Path, module: str, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_plugin_modules_register_their_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin(
        tmp_path,
        "ops_plugin_ok",
        """
        def page(payload):
            return payload

        def register_handlers(registry):
            registry.register("ops.page", page)
        """,
        monkeypatch,
    )
    registry = HandlerRegistry()
    registry.load_plugins(["ops_plugin_ok"])
    assert registry.refusal("ops.page") is None


@pytest.mark.parametrize(
    ("module", "fragment"),
    [
        ("ops_plugin_no_hook", "has no register_handlers(registry) function"),
        ("ops_plugin_missing_module", "cannot be imported"),
        ("os:system", "is not a module name"),
        ("../etc", "is not a module name"),
    ],
)
def test_a_bad_plugin_stops_the_start_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, fragment: str
) -> None:
    plugin(tmp_path, "ops_plugin_no_hook", "HANDLERS = {}\n", monkeypatch)
    with pytest.raises(ConfigurationError, match="JETBRIDGE_HANDLER_PLUGINS") as raised:
        HandlerRegistry().load_plugins([module])
    assert fragment in str(raised.value)


def installed(tmp_path: Path, entry_points: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution declaring `jetbridge.handlers` entry points."""
    info = tmp_path / "airport_handlers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: airport-handlers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[jetbridge.handlers]\n{entry_points}")
    (tmp_path / "airport_handlers.py").write_text("def notify(payload):\n    return payload\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_installed_packages_add_handlers_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed(tmp_path, "notify-ops = airport_handlers:notify\n", monkeypatch)
    registry = HandlerRegistry()
    registry.load_entry_points()
    handler = registry.resolve("notify-ops")
    assert handler is not None and handler({"n": 1}) == {"n": 1}


def test_an_entry_point_with_a_bad_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed(tmp_path, "Notify_Ops = airport_handlers:notify\n", monkeypatch)
    with pytest.raises(ConfigurationError, match="entry point 'airport_handlers:notify'"):
        HandlerRegistry().load_entry_points()
