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


def cabin_of(aircraft_type: str, seat: str) -> str | None:
    """The cabin a seat is in on this aircraft type, or None if the aircraft has no such seat."""
    for layout in layout_for(aircraft_type):
        if seat in layout.seats():
            return layout.cabin
    return None


def check_choice(aircraft_type: str, cabin: str, chosen: list[str | None]) -> list[str] | None:
    """The seats chosen for a booking's passengers, in passenger order, or None if nobody chose.

    Every passenger chooses or none does; each seat exists in the booked cabin and is chosen
    once. Errors name the passenger and say what to pick instead."""
    if all(seat is None for seat in chosen):
        return None
    missing = [index for index, seat in enumerate(chosen) if seat is None]
    if missing:
        raise ValueError(
            f"passengers[{missing[0]}].seat: choose a seat for every passenger, or for none"
        )
    seats = [str(seat) for seat in chosen]
    for index, seat in enumerate(seats):
        found = cabin_of(aircraft_type, seat)
        if found is None:
            raise ValueError(f"passengers[{index}].seat: there is no seat {seat} on this aircraft")
        if found != cabin:
            raise ValueError(
                f"passengers[{index}].seat: {seat} is in {found}, not in the {cabin} cabin booked"
            )
        if seats.index(seat) != index:
            raise ValueError(
                f"passengers[{index}].seat: {seat} is already chosen for passenger "
                f"{seats.index(seat) + 1}"
            )
    return seats


def seat_plan(aircraft_type: str, *, cabins: set[str], taken: set[str]) -> list[dict[str, object]]:
    """The seat map as a page draws it: per cabin, its seat letters and rows of seats, each
    seat free or taken (never by whom)."""
    plan: list[dict[str, object]] = []
    for layout in layout_for(aircraft_type):
        if layout.cabin not in cabins:
            continue
        rows = [
            {
                "row": row,
                "seats": [
                    {"seat": f"{row}{letter}", "letter": letter, "taken": f"{row}{letter}" in taken}
                    for letter in layout.letters
                ],
            }
            for row in range(layout.first_row, layout.last_row + 1)
        ]
        plan.append({"cabin": layout.cabin, "letters": layout.letters, "rows": rows})
    return plan
