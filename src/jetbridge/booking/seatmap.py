"""Seat maps: cabins, rows and seat letters per aircraft type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CabinLayout:
    cabin: str
    first_row: int
    last_row: int
    letters: str

    def seats(self) -> list[str]:
        return [
            f"{row}{letter}"
            for row in range(self.first_row, self.last_row + 1)
            for letter in self.letters
        ]


NARROWBODY = (CabinLayout("business", 1, 4, "ACDF"), CabinLayout("economy", 5, 30, "ABCDEF"))
WIDEBODY = (
    CabinLayout("business", 1, 8, "ADGK"),
    CabinLayout("premium", 10, 14, "ACDEGHK"),
    CabinLayout("economy", 20, 50, "ABCDEFGHK"),
)
REGIONAL = (CabinLayout("economy", 1, 25, "ACDF"),)
LAYOUTS = {
    "A320": NARROWBODY, "A20N": NARROWBODY, "A321": NARROWBODY, "A21N": NARROWBODY,
    "A319": NARROWBODY, "B738": NARROWBODY, "B38M": NARROWBODY, "A220": REGIONAL,
    "E190": REGIONAL, "A333": WIDEBODY, "B77W": WIDEBODY, "B789": WIDEBODY, "A359": WIDEBODY,
}  # fmt: skip


def layout_for(aircraft_type: str) -> tuple[CabinLayout, ...]:
    return LAYOUTS.get(aircraft_type.upper(), NARROWBODY)


def seat_map(aircraft_type: str) -> dict[str, list[str]]:
    """Seats per cabin, front to back."""
    return {layout.cabin: layout.seats() for layout in layout_for(aircraft_type)}
