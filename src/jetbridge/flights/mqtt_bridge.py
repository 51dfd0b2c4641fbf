"""Flight state to MQTT as retained messages: a screen that boots gets the current state at once.

Topics (retained, QoS 1):
- `<prefix>/flights/<flight_key>`: the full flight view;
- `<prefix>/screens/<airport>/departures/<flight_key>` and `.../arrivals/<flight_key>`: the
  board row a departures or arrivals screen shows (subscribe to `.../departures/#`).

The bridge follows the event log and stores its position after publishing, so after a restart
it publishes again from there (retained messages make the repeat harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from jetbridge.events.backbone import Backbone
from jetbridge.flights.cdc_runner import load_position, save_position
from jetbridge.flights.fids import board_row
from jetbridge.flights.hub import BUS, is_flight_update
from jetbridge.loops import poll_until_stopped
from jetbridge.notify.mqtt import MqttPublisher

CONSUMER = "mqtt-bridge"


class MqttBridge:
    def __init__(
        self, backbone: Backbone, publisher: MqttPublisher, *, prefix: str = "jetbridge"
    ) -> None:
        self.backbone = backbone
        self.publisher = publisher
        self.prefix = prefix.rstrip("/")

    def step(self, *, limit: int = 500) -> int:
        with self.backbone.reading() as conn:
            stored = load_position(conn, CONSUMER)
            after = int(stored) if stored else 0
            batch = self.backbone.log.read(conn, bus=BUS, after=after, limit=limit)
        messages: list[tuple[str, object]] = []
        for item in batch:
            event = json.loads(item.body)
            if is_flight_update(event):
                messages += self.flight_messages(event["data"]["flight"])
        # The whole batch is in flight to the broker at once; the position moves only after
        # the broker has acknowledged all of it.
        self.publisher.publish_all(messages)
        if batch:
            # Only the bridge reads its position: nobody is woken for this commit.
            with self.backbone.engine.begin() as conn:
                save_position(conn, CONSUMER, str(batch[-1].seq))
        return len(batch)

    def publish_flight(self, view: dict[str, object]) -> None:
        self.publisher.publish_all(self.flight_messages(view))

    def flight_messages(self, view: dict[str, object]) -> list[tuple[str, object]]:
        """The flight's retained messages: its full view and its two board rows."""
        key = view["flight_key"]
        return [
            (f"{self.prefix}/flights/{key}", view),
            (
                f"{self.prefix}/screens/{view['departure_airport']}/departures/{key}",
                board_row(view, direction="departures"),
            ),
            (
                f"{self.prefix}/screens/{view['arrival_airport']}/arrivals/{key}",
                board_row(view, direction="arrivals"),
            ),
        ]

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Follow the log, woken by commits (this process's, and other processes' through
        LISTEN/NOTIFY or NATS); `interval` is only the safety net's period."""
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()

        def committed() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wakeup.set)

        self.backbone.listeners.append(committed)
        try:
            await poll_until_stopped(
                self.step, stop, interval=interval, name="MQTT bridge", wakeup=wakeup
            )
        finally:
            self.backbone.listeners.remove(committed)
