"""MQTT publishing (Mosquitto or any MQTT 3.1.1/5 broker): retained JSON state per topic."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from jetbridge.ops import metrics


@dataclass(frozen=True, slots=True)
class MqttAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttAddress:
        """`mqtt://[user:pass@]host[:port]`; port 1883 by default."""
        parsed = urlparse(url)
        if parsed.scheme not in {"mqtt", "tcp"} or not parsed.hostname:
            raise ValueError(f"MQTT URL {url!r}: expected mqtt://host[:port]")
        return cls(parsed.hostname, parsed.port or 1883, parsed.username, parsed.password)


class MqttPublisher:
    """A connected MQTT client publishing QoS 1 messages; reconnects on its own."""

    def __init__(self, address: MqttAddress, *, client_id: str = "") -> None:
        self.address = address
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, *_: Any) -> None:
        if not self._connected.is_set():
            metrics.STREAM_CLIENTS.labels("mqtt").inc()
        self._connected.set()

    def _on_disconnect(self, *_: Any) -> None:
        if self._connected.is_set():
            metrics.STREAM_CLIENTS.labels("mqtt").dec()
        self._connected.clear()

    def start(self, *, timeout: float = 10.0) -> None:
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            raise ConnectionError(
                f"MQTT broker {self.address.host}:{self.address.port} unreachable"
            )

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(
        self, topic: str, payload: Any, *, retain: bool = True, timeout: float = 10.0
    ) -> None:
        """Publish JSON (None clears a retained topic); waits for the broker's acknowledgement."""
        self.publish_all([(topic, payload)], retain=retain, timeout=timeout)

    def publish_all(
        self,
        messages: Iterable[tuple[str, Any]],
        *,
        retain: bool = True,
        timeout: float = 10.0,
    ) -> None:
        """Publish JSON messages in order without waiting between them, then wait (at most
        `timeout` in all) until the broker has acknowledged every one: a batch waits for the
        broker about once, not once per message."""
        sent = []
        for topic, payload in messages:
            body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
            sent.append((topic, self._client.publish(topic, body, qos=1, retain=retain)))
        deadline = time.monotonic() + timeout
        for topic, info in sent:
            info.wait_for_publish(max(0.001, deadline - time.monotonic()))
            if not info.is_published():
                raise ConnectionError(f"MQTT publish to {topic!r} was not acknowledged")
        metrics.STREAM_FRAMES.labels("mqtt").inc(len(sent))
