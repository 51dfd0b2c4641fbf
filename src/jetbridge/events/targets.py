"""Target invocation: Python handlers and HTTP endpoints (bus targets are handled by the worker)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from jetbridge.events.handlers import HandlerRegistry
from jetbridge.events.signing import SIGNATURE_HEADER, sign
from jetbridge.events.specs import TargetSpec
from jetbridge.ops.outbound import OutboundRefused
from jetbridge.ops.tracing import current_traceparent
from jetbridge.storage.transient import retry_transient


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


def _wants_context(handler: Callable[..., Any]) -> bool:
    try:
        return "context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


class TargetInvoker:
    """Calls Python and HTTP targets; raises `DeliveryFailed` on any failure. `client` is an
    outbound client (`jetbridge.ops.outbound.async_client`): a refused address fails for good."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        default_secret: str,
        handlers: HandlerRegistry,
        threads: int = 0,
    ) -> None:
        self._client = client
        self._default_secret = default_secret
        self.handlers = handlers
        self._wants: dict[str, bool] = {}
        # Python handlers' own threads (0: the event loop's shared ones), as many as deliveries
        # run at once: slow handlers neither wait for nor hold up the database work's threads.
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self.start_workflow: Callable[[str, dict[str, Any], Any], None] | None = None

    async def invoke(self, spec: TargetSpec, payload: Any, context: DeliveryContext) -> None:
        if spec.kind == "python":
            await self._call_python(spec.handler or "", payload, context)
        elif spec.kind == "http":
            await self._post(spec, payload, context)
        elif spec.kind == "workflow" and self.start_workflow is not None:
            # One execution per event and rule: a redelivery finds the execution already started.
            name = f"{context.rule}-{context.event_id}"[:80]
            start, definition = self.start_workflow, spec.definition or {}
            await asyncio.to_thread(
                retry_transient,
                lambda: start(name, definition, payload),
                what=f"starting execution {name!r}",
            )
        else:
            raise DeliveryFailed(f"target kind {spec.kind!r} is not invoked here", retryable=False)

    async def _call_python(self, name: str, payload: Any, context: DeliveryContext) -> None:
        handler = self.handlers.resolve(name)
        if handler is None:
            # Retrying cannot help: handlers are registered when the program starts.
            raise DeliveryFailed(
                f"no handler named {name!r} is registered in this process", retryable=False
            )
        if name not in self._wants:
            self._wants[name] = _wants_context(handler)
        kwargs = {"context": context} if self._wants[name] else {}
        try:
            if inspect.iscoroutinefunction(handler):
                await handler(payload, **kwargs)
            else:
                await self._in_thread(functools.partial(handler, payload, **kwargs))
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _in_thread(self, call: Callable[[], Any]) -> None:
        if not self._threads:
            await asyncio.to_thread(call)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="handler")
        context = contextvars.copy_context()
        await asyncio.get_running_loop().run_in_executor(self._pool, context.run, call)

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
        traceparent = current_traceparent()
        if traceparent is not None:
            headers["traceparent"] = traceparent
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
