"""SSIM chapter 7 records for tests, laid out column by column as the standard numbers them."""

from __future__ import annotations


def _put(record: list[str], column: int, text: str) -> None:
    record[column - 1 : column - 1 + len(text)] = list(text)


def header() -> str:
    record = [" "] * 200
    _put(record, 1, "1AIRLINE STANDARD SCHEDULE DATA SET")
    _put(record, 195, "000001")
    return "".join(record)


def carrier(airline: str = "LX", time_mode: str = "L") -> str:
    record = [" "] * 200
    _put(record, 1, f"2{time_mode}{airline:<3}")
    _put(record, 195, "000002")
    return "".join(record)


def leg(
    *,
    airline: str = "LX",
    number: str = "0318",
    first: str = "01DEC26",
    last: str = "07DEC26",
    days: str = "1234567",
    departure: str = "ZRH",
    std: str = "0740",
    dep_offset: str = "+0100",
    terminal: str = "1",
    arrival: str = "LHR",
    sta: str = "0825",
    arr_offset: str = "+0000",
    arrival_terminal: str = "2",
    aircraft: str = "320",
    service: str = "J",
    sequence: str = "01",
    frequency: str = " ",
    date_variation: str = "00",
) -> str:
    record = [" "] * 200
    _put(record, 1, "3")
    _put(record, 3, f"{airline:<3}{number:>4}")
    _put(record, 10, "01" + sequence + service + first + last + days + frequency)
    _put(record, 37, departure + std + std + dep_offset + f"{terminal:<2}")
    _put(record, 55, arrival + sta + sta + arr_offset + f"{arrival_terminal:<2}")
    _put(record, 73, aircraft)
    _put(record, 193, date_variation)
    _put(record, 195, "000003")
    return "".join(record)


def segment(
    element: str, data: str, *, airline: str = "LX", number: str = "0318", route: str = "ZRHLHR"
) -> str:
    record = [" "] * 200
    _put(record, 1, "4")
    _put(record, 3, f"{airline:<3}{number:>4}0101J")
    _put(record, 29, "AB" + element + route + data)
    _put(record, 195, "000004")
    return "".join(record)


def trailer() -> str:
    record = [" "] * 200
    _put(record, 1, "5 LX")
    _put(record, 195, "000005")
    return "".join(record)


def ssim_file(*records: str) -> str:
    return "\n".join([header(), "0" * 200, carrier(), *records, trailer()]) + "\n"
