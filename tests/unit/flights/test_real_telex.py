"""MVT, ASM and SSM telex as airlines send them (see data/real/README.md for each source)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jetbridge.flights.delay_codes import meaning
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.mvt import parse_mvt
from jetbridge.flights.feeds.telex import FeedUpdate

REAL = Path(__file__).parent / "data" / "real"
RECEIVED = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)


def fields_of(item: Any) -> dict[str, Any]:
    return dict(item.to_json()["fields"])


def where(update: FeedUpdate) -> tuple[str, str, str, str | None, str | None]:
    return (
        update.airline,
        update.flight_number,
        update.origin_date.isoformat(),
        update.departure_airport,
        update.arrival_airport,
    )


def test_mvt_as_published_with_mixed_case_si() -> None:
    (update,) = parse_mvt(
        (REAL / "mvt_navblue_departure.txt").read_bytes(),
        received_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
    )
    assert where(update) == ("6Y", "123", "2026-12-01", "CDG", "AAE")
    assert fields_of(update) == {
        "registration": "YLLCO",
        "times.off_block.actual": "2026-12-01T02:36:00Z",
        "times.take_off.actual": "2026-12-01T02:46:00Z",
        "times.on_block.estimated": "2026-12-01T03:31:00Z",
        "remarks": "SI GOES HERE",
    }
    assert update.to_update().identity.key == "6Y0123-2026-12-01-CDG-AAE"


def test_mvt_in_a_type_b_envelope_with_crlf_and_framing() -> None:
    data = (REAL / "mvt_typeb_crlf.txt").read_bytes()
    assert b"\x01QU " in data and b"\r\n" in data
    (update,) = parse_mvt(data, received_at=RECEIVED)
    assert where(update) == ("LH", "1234", "2026-11-24", "FRA", "LHR")
    assert update.source_time == datetime(2026, 11, 24, 12, 21, tzinfo=UTC)  # originator line
    assert fields_of(update) == {
        "registration": "DAIPX",
        "times.off_block.actual": "2026-11-24T12:05:00Z",
        "times.take_off.actual": "2026-11-24T12:15:00Z",
        "times.on_block.estimated": "2026-11-24T14:30:00Z",
        "delays.0.code": "72",
        "delays.0.minutes": 30,
        "delays.1.code": "93",
        "delays.1.minutes": 15,
        "remarks": "DE-ICING AND LATE INBOUND ACFT FROM MUC",  # SI over two lines
    }


def test_several_movement_messages_in_one_file() -> None:
    departure, arrival, delay, aircraft = parse_mvt(
        (REAL / "mvt_batch.txt").read_bytes(), received_at=RECEIVED
    )
    assert where(departure) == ("LX", "1612Z", "2026-11-24", "ZRH", "VIE")
    assert departure.source_time == datetime(2026, 11, 24, 7, 55, tzinfo=UTC)
    assert (fields_of(departure)["delays.0.code"], fields_of(departure)["delays.0.minutes"]) == (
        "89",
        12,
    )
    assert where(arrival) == ("LX", "1612Z", "2026-11-24", None, "VIE")  # MVT COR, from VIE
    assert arrival.source_time == datetime(2026, 11, 24, 9, 14, tzinfo=UTC)
    assert fields_of(arrival) == {
        "registration": "HBJBA",
        "times.touchdown.actual": "2026-11-24T09:02:00Z",
        "times.on_block.actual": "2026-11-24T09:09:00Z",
    }
    assert where(delay) == ("BA", "713", "2026-11-24", "LHR", None)  # PDM, ended by '='
    assert fields_of(delay) == {
        "registration": "GEUYA",
        "times.off_block.estimated": "2026-11-24T11:45:00Z",
        "status": "delayed",
        "delays.0.code": "41",
        "delays.0.minutes": 60,
        "next_information": "2026-11-24T11:00:00Z",
        "remarks": "next information 11:00Z / TECHNICAL",
    }
    assert delay.possible_duplicate and not delay.correction
    assert arrival.correction
    assert where(aircraft) == ("EZS", "1081", "2026-11-24", "BSL", None)  # MVA
    assert aircraft.source_time == RECEIVED  # no envelope: the receipt time


def test_mvt_with_cr_line_ends_in_lower_case() -> None:
    data = (REAL / "mvt_cr_lowercase.txt").read_bytes()
    assert b"\r" in data and b"\n" not in data
    (update,) = parse_mvt(data, received_at=RECEIVED)
    assert where(update) == ("LX", "318", "2026-11-24", "ZRH", "LHR")
    assert fields_of(update)["registration"] == "HBJDA"
    assert fields_of(update)["delays.0.minutes"] == 20
    assert fields_of(update)["remarks"] == "LATE INBOUND"


def test_mvt_delay_codes_with_sub_codes_and_extended_delays() -> None:
    (update,) = parse_mvt((REAL / "mvt_delay_codes.txt").read_bytes(), received_at=RECEIVED)
    delays = [
        (fields_of(update)[f"delays.{n}.code"], fields_of(update)[f"delays.{n}.minutes"])
        for n in range(4)
    ]
    assert delays == [("93A", 25), ("87", 10), ("81", 5), ("DBN", 3)]
    assert meaning("93A") == meaning("93") == "aircraft rotation, late arrival of aircraft"
    assert meaning("DBN") is None


def test_asm_sub_messages_in_a_type_b_envelope() -> None:
    received = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    updates = parse_asm((REAL / "asm_typeb_submessages.txt").read_bytes(), received_at=received)
    assert [where(u) for u in updates] == [
        ("LX", "318", "2026-11-28", "ZRH", "LHR"),  # TIM WEAT
        ("LX", "1832", "2026-11-28", None, None),  # CNL TECH/OPER, day only
        ("LX", "1833", "2026-11-28", "BCN", "ZRH"),  # leg change identifier
        ("LX", "1612", "2026-11-29", "ZRH", "VIE"),  # EQT/CON, no year
        ("LX", "2804", "2026-11-30", "ZRH", "PMI"),  # NEW, two dates
        ("LX", "2804", "2026-12-02", "ZRH", "PMI"),
        ("LX", "180", "2026-11-30", "ZRH", "SIN"),  # RPL
    ]
    assert {u.source_time for u in updates} == {datetime(2026, 11, 20, 10, 12, tzinfo=UTC)}
    tim, cnl, cnl_leg, eqt, new, _, rpl = (fields_of(u) for u in updates)
    assert tim == {
        "times.off_block.scheduled": "2026-11-28T08:05:00Z",
        "times.on_block.scheduled": "2026-11-28T08:45:00Z",
    }
    assert cnl == cnl_leg == {"status": "cancelled"}
    assert eqt == {"aircraft_type": "221"}  # an equipment change moves no times
    assert new == {
        "aircraft_type": "32N",
        "status": "scheduled",
        "times.off_block.scheduled": "2026-11-30T10:15:00Z",
        "times.on_block.scheduled": "2026-11-30T12:15:00Z",
    }
    assert rpl["times.on_block.scheduled"] == "2026-12-01T17:20:00Z"  # date variation /1


def test_ssm_period_with_days_of_operation_in_local_time() -> None:
    updates = parse_asm(
        (REAL / "ssm_period.txt").read_bytes(),
        received_at=datetime(2026, 11, 20, 10, 30, tzinfo=UTC),
    )
    # 05DEC26 to 20DEC26, Saturdays and Sundays, every second week
    assert [u.origin_date.isoformat() for u in updates] == [
        "2026-12-05",
        "2026-12-06",
        "2026-12-19",
        "2026-12-20",
    ]
    first = fields_of(updates[0])
    assert first["times.off_block.scheduled"] == "2026-12-05T08:00:00Z"  # 09:00 at ZRH
    assert (
        first["times.on_block.scheduled"] == "2026-12-05T11:35:00Z"
    )  # 11:35 at LIS, UTC+0 in winter
    assert first["status"] == "scheduled"


def test_a_bad_message_in_a_batch_names_its_own_line() -> None:
    batch = (REAL / "mvt_batch.txt").read_text().replace("AA0902/0909", "AA0902/0961")
    updates = parse_mvt(batch, received_at=RECEIVED, file="batch.txt")
    assert len(updates) == 4  # the others are not lost
    arrival = updates[1]
    assert arrival.unknown == {"MVT/AA": "AA0902/0961"}
    assert arrival.reasons == {"MVT/AA": "line 14: time must be HHMM or DDHHMM"}


CORPUS = Path(__file__).parents[2] / "data" / "feeds"


def test_mva_relayed_from_acars_reads_past_its_air_ground_heading() -> None:
    (update,) = parse_mvt(
        (CORPUS / "mvt" / "skyreader_mva_jq3123_04.txt").read_bytes(),
        received_at=datetime(2024, 12, 20, 21, 50, tzinfo=UTC),
    )
    assert where(update) == ("JQ", "3123", "2024-12-20", "MEL", "OOL")
    assert fields_of(update) == {
        "registration": "AOTGR",
        "times.off_block.actual": "2024-12-20T21:33:00Z",
        "times.take_off.actual": "2024-12-20T21:47:00Z",
        "times.on_block.estimated": "2024-12-20T23:28:00Z",
    }
    assert update.unknown == {}


def test_a_dash_without_an_air_ground_heading_stays_in_the_text() -> None:
    text = "MVT\nBA117/01.GABCD.LHR\n-\nAD0900/0912\n"
    (update,) = parse_mvt(text, received_at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    assert fields_of(update)["times.off_block.actual"] == "2026-11-01T09:00:00Z"
    assert "-" in str(update.unknown)


def test_flight_line_with_month_year_and_a_padded_registration() -> None:
    (update,) = parse_mvt(
        (CORPUS / "mvt" / "skyreader_mva_qf1652_15.txt").read_bytes(),
        received_at=datetime(2024, 12, 26, 23, 40, tzinfo=UTC),
    )
    assert where(update) == ("QF", "1652", "2024-12-26", "PER", "BME")
    assert fields_of(update)["registration"] == "VH8NZ"
    assert fields_of(update)["times.on_block.estimated"] == "2024-12-27T01:47:00Z"
    # The year is taken as written, however far from when the message arrived.
    (later,) = parse_mvt(
        "MVT\nQF1652/26DEC24.VH8NZ.PER\nAD2324/2338\n",
        received_at=datetime(2026, 12, 26, 23, 40, tzinfo=UTC),
    )
    assert later.origin_date.isoformat() == "2024-12-26"


def test_asm_leg_times_with_the_day_of_month() -> None:
    (update,) = parse_asm(
        (CORPUS / "asm" / "ram_asm_lt_rpl_at651.txt").read_bytes(),
        received_at=datetime(2025, 7, 13, 21, 45, tzinfo=UTC),
    )
    assert where(update) == ("AT", "651", "2025-07-13", "CDG", "OUD")
    # 23:30 local time at CDG on the 13th, in summer.
    assert fields_of(update)["times.off_block.scheduled"] == "2025-07-13T21:30:00Z"
    assert update.unknown == {}


def test_asm_leg_day_far_from_the_flight_is_refused() -> None:
    text = "ASM\nUTC\nRPL\nAT651/13JUL25\nJ 320 .Y180\nCDG202330 OUD140110\n"
    with pytest.raises(ParseError, match="within two days"):
        parse_asm(text, received_at=datetime(2025, 7, 13, 12, 0, tzinfo=UTC))
    text = "ASM\nUTC\nRPL\nAT651/13JUL25\nJ 320 .Y180\nCDG132360 OUD140110\n"
    with pytest.raises(ParseError, match="time must be HHMM"):
        parse_asm(text, received_at=datetime(2025, 7, 13, 12, 0, tzinfo=UTC))


def test_an_envelope_without_a_priority_code() -> None:
    text = "MOWKK1H\n.TJMRMUT 210507\nMVT\nUT422/21.VQBJK.UFA\nAD0507/0519 EA0830 AER\n"
    (update,) = parse_mvt(text, received_at=datetime(2021, 1, 21, 6, 0, tzinfo=UTC))
    assert where(update) == ("UT", "422", "2021-01-21", "UFA", "AER")
    assert update.source_time == datetime(2021, 1, 21, 5, 7, tzinfo=UTC)
    assert update.unknown == {}
