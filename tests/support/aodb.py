"""A legacy AODB for tests: the simulator's table holding published legs, and the platform's
change capture reading it into the hub, as the demo runs them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jetbridge.aodb.cdc import DEFAULT_MAPPING, TableMapping
from jetbridge.aodb.simulator import AodbSimulator, Change, plan_flights
from jetbridge.aodb.sources import open_source
from jetbridge.booking.catalog import ScheduleEntry
from jetbridge.flights.cdc_runner import CdcRunner
from jetbridge.flights.hub import FlightHub
from jetbridge.schedules import planned_legs
from jetbridge.storage.db import create_database_engine


class LegacyAodb:
    """The published legs as AODB rows; `change` writes a row change as the AODB would."""

    def __init__(self, directory: Path, backbone: Any, entries: Sequence[ScheduleEntry]) -> None:
        self.engine = create_database_engine(f"sqlite:///{directory / 'aodb.db'}")
        day = entries[0].operating_date
        home = entries[0].origin
        self.plan = plan_flights(seed=1, home=home, day=day, legs=planned_legs(entries))
        self.simulator = AodbSimulator(self.engine, self.plan, speed=1e9)
        self.simulator.install()
        source = open_source(
            "watermark", url="", engine=self.engine, mapping=TableMapping.load(DEFAULT_MAPPING)
        )
        self.runner = CdcRunner(source, FlightHub(backbone))

    def movement_id(self, airline: str, number: str) -> int:
        return next(
            m.mvt_id for m in self.plan.movements if (m.airline, m.number) == (airline, number)
        )

    def change(self, mvt_id: int, **values: Any) -> None:
        self.simulator.apply(Change(datetime.now(UTC), mvt_id, values))

    def capture_until(self, done: Callable[[], bool], timeout: float = 60) -> None:
        """Run the change capture until `done()` holds (rows are read once a moment old)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.runner.step()
            if done():
                return
            time.sleep(0.1)
        raise AssertionError("the AODB change did not reach the platform")

    def close(self) -> None:
        self.engine.dispose()
