"""Bounds on what one feed message (one push or one file) may do: how many flight legs it may
change, and how long an SSM period of operation may run.

The parsers count what a message would make before they make it, so a short message that
would expand into hundreds of thousands of flights is refused whole, without building them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jetbridge.flights.feeds.errors import ParseError

MAX_FLIGHTS_SETTING = "JETBRIDGE_FEED_MAX_FLIGHTS_PER_MESSAGE"
MAX_PERIOD_SETTING = "JETBRIDGE_FEED_MAX_PERIOD_DAYS"
OPEN_PERIOD_SETTING = "JETBRIDGE_FEED_OPEN_PERIOD_DAYS"


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """`max_flights`: flight legs one message may change; `max_period_days`: the longest
    period of operation, first and last day included (an IATA season is at most 31 weeks);
    `open_period_days`: the days an open-ended SSIM period (`00XXX00`) is expanded to, from
    its first day (the horizon a schedule is sold for until the airline gives the end), never
    more than `max_period_days`."""

    max_flights: int = 2000
    max_period_days: int = 230
    open_period_days: int = 90

    def __post_init__(self) -> None:
        if self.max_flights < 1 or self.max_period_days < 1 or self.open_period_days < 1:
            raise ValueError("feed limits must be at least 1")

    @property
    def open_period_horizon(self) -> int:
        """Days an open-ended period runs: its horizon within the longest period allowed."""
        return min(self.open_period_days, self.max_period_days)


class FlightCount:
    """The running count of flight legs a message would change, and where it first went over."""

    def __init__(self, limits: FeedLimits, file: str | None) -> None:
        self.limits = limits
        self.file = file
        self.total = 0
        self._over: tuple[str, str | None] | None = None

    def add(self, legs: int, *, location: str, token: str | None = None) -> None:
        self.total += legs
        if self._over is None and self.total > self.limits.max_flights:
            self._over = (location, token)

    def check(self) -> None:
        """Raise ParseError naming the bound, the count and the place it was crossed."""
        if self._over is None:
            return
        location, token = self._over
        raise ParseError(
            f"the message would change {self.total} flight legs, more than the "
            f"{self.limits.max_flights} one message may change ({MAX_FLIGHTS_SETTING})",
            file=self.file,
            location=location,
            token=token,
        )
