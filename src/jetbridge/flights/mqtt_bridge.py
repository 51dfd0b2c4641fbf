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
        for item in batch:
            event = json.loads(item.body)
            if is_flight_update(event):
                self.publish_flight(event["data"]["flight"])
        if batch:
            with self.backbone.transaction() as conn:
                save_position(conn, CONSUMER, str(batch[-1].seq))
        return len(batch)

    def publish_flight(self, view: dict[str, object]) -> None:
        key = view["flight_key"]
        self.publisher.publish(f"{self.prefix}/flights/{key}", view)
        departure = board_row(view, direction="departures")
        arrival = board_row(view, direction="arrivals")
        self.publisher.publish(
            f"{self.prefix}/screens/{view['departure_airport']}/departures/{key}", departure
        )
        self.publisher.publish(
            f"{self.prefix}/screens/{view['arrival_airport']}/arrivals/{key}", arrival
        )

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
