"""Messages as real systems send them, applied to the hub: what is not understood is kept on the
flight and logged as a warning; corrections supersede, possible duplicates change nothing
known; day-less times follow the flight's schedule; an EA elsewhere or a DIV is a diversion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.flights.hub import FlightHub, list_errors, load_state
from jetbridge.flights.ingest import ingest
from jetbridge.flights.merge import FlightState

AIDX = """<IATA_AIDX_FlightLegNotifRQ xmlns="http://www.iata.org/IATA/2007/00"
 TimeStamp="{stamp}" Version="22.1"><FlightLeg><LegIdentifier><Airline>SD</Airline>
<FlightNumber>200</FlightNumber><DepartureAirport>CDG</DepartureAirport>
<ArrivalAirport>{arrival}</ArrivalAirport><OriginDate>2026-11-21</OriginDate></LegIdentifier>
<LegData><OperationalStatus>{status}</OperationalStatus>
<OperationTime OperationQualifier="OFB" TimeType="SCT">2026-11-21T{std}:00Z</OperationTime>
<OperationTime OperationQualifier="ONB" TimeType="SCT">2026-11-21T{sta}:00Z</OperationTime>
<OperationTime OperationQualifier="CMA" TimeType="ACT">2026-11-21T09:40:00Z</OperationTime>
<AirportResources Usage="Planned"><Resource DepartureOrArrival="Departure">
<PassengerGate>K41</PassengerGate></Resource></AirportResources></LegData></FlightLeg>
</IATA_AIDX_FlightLegNotifRQ>"""
KEY = "SD0200-2026-11-21-CDG-LHR"
RECEIVED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[FlightHub]:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with TestClient(app):
        yield FlightHub(app.state.platform.backbone)


@pytest.fixture
def any_hub(database_url: str) -> Iterator[FlightHub]:
    """On SQLite and on PostgreSQL."""
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with TestClient(app):
        yield FlightHub(app.state.platform.backbone)


def schedule(
    hub: FlightHub, *, std: str = "10:50", sta: str = "12:10", status: str = "SCH"
) -> None:
    document = AIDX.format(
        stamp="2026-11-20T06:00:00Z", arrival="LHR", status=status, std=std, sta=sta
    )
    ingest(hub, "aidx", document, received_at=RECEIVED, origin="aodb")


def state(hub: FlightHub, key: str = KEY) -> FlightState:
    with hub.backbone.reading() as conn:
        found = load_state(conn, key)
    assert found is not None
    return found


def warnings(hub: FlightHub) -> list[dict[str, object]]:
    with hub.backbone.reading() as conn:
        rows = list_errors(conn, source=None, after_id=0, limit=100)
    return [row for row in rows if row["level"] == "warning"]


def test_unknown_aidx_code_is_kept_on_the_flight_and_logged_as_a_warning(
    any_hub: FlightHub,
) -> None:
    hub = any_hub
    document = AIDX.format(
        stamp="2026-11-21T09:41:00Z", arrival="LHR", status="XBRD", std="10:50", sta="12:10"
    )
    result = ingest(hub, "aidx", document, received_at=RECEIVED, origin="aodb")
    (applied,) = result.applied
    assert applied["version"] == 1
    flight = state(hub)
    assert flight.fields["gate"] == "K41"  # the rest of the message is applied
    assert flight.fields["times.off_block.scheduled"] == "2026-11-21T10:50:00Z"
    path = "LegData/OperationTime[@OperationQualifier='CMA'][@TimeType='ACT']/@OperationQualifier"
    assert flight.unknown[path] == ("aidx", "2026-11-21T09:41:00+00:00", "2026-11-21T09:40:00Z")
    assert flight.unknown["LegData/OperationalStatus[.='XBRD']"][2] == "XBRD"
    logged = warnings(hub)
    assert {row["location"] for row in logged} == {
        f"aodb {path}",
        "aodb LegData/OperationalStatus[.='XBRD']",
    }
    assert all("code not in the AIDX code list" in str(row["message"]) for row in logged)
    # The same message again: nothing changes, no version.
    again = ingest(hub, "aidx", document, received_at=RECEIVED, origin="aodb")
    assert again.applied[0]["version"] is None
    assert state(hub).version == 1


def test_the_issue_example_day_and_mvt_elements_land_on_the_flight(hub: FlightHub) -> None:
    schedule(hub)
    text = "MVT\nSD200/21.PMDFG.CDG\nAD1100/1115 EA1210 LHR\nDL93/0010\nPX154\nSI LATE INBOUND"
    result = ingest(hub, "mvt", text, received_at=RECEIVED, origin="ops")
    assert result.applied[0]["flight_key"] == KEY
    fields = state(hub).fields
    assert fields["times.off_block.actual"] == "2026-11-21T11:00:00Z"  # the 21st, not the 22nd
    assert fields["times.take_off.actual"] == "2026-11-21T11:15:00Z"
    assert fields["times.on_block.estimated"] == "2026-11-21T12:10:00Z"
    assert (fields["delays.0.code"], fields["delays.0.minutes"]) == ("93", 10)
    assert fields["registration"] == "PMDFG"
    assert fields["remarks"] == "LATE INBOUND"
    assert result.warnings == []


def test_a_late_flight_leaves_after_midnight_and_arrives_the_next_day(hub: FlightHub) -> None:
    schedule(hub, std="23:50", sta="23:59")
    ingest(hub, "mvt", "MVT\nSD200/21.PMDFG.CDG\nAD0020", received_at=RECEIVED, origin="ops")
    ingest(hub, "mvt", "MVT\nSD200/21.PMDFG.LHR\nAA0105/0112", received_at=RECEIVED, origin="ops")
    fields = state(hub).fields
    assert fields["times.off_block.actual"] == "2026-11-22T00:20:00Z"
    assert fields["times.touchdown.actual"] == "2026-11-22T01:05:00Z"
    assert fields["times.on_block.actual"] == "2026-11-22T01:12:00Z"


def test_correction_supersedes_and_possible_duplicate_changes_nothing_known(
    hub: FlightHub,
) -> None:
    schedule(hub)
    sent = "QU PARKKSD\n.CDGKKSD 211102\nMVT\nSD200/21.PMDFG.CDG\nAD1100/1115"
    ingest(hub, "mvt", sent, received_at=RECEIVED, origin="ops")
    corrected = "QU PARKKSD\n.CDGKKSD 211102\nMVT COR\nSD200/21.PMDFG.CDG\nAD1105/1115"
    ingest(hub, "mvt", corrected, received_at=RECEIVED, origin="ops")
    assert state(hub).fields["times.off_block.actual"] == "2026-11-21T11:05:00Z"
    version = state(hub).version
    # A possible duplicate of the first message, received later without an envelope.
    duplicate = "MVT\nPDM\nSD200/21.PMDFG.CDG\nAD1100/1115\nNI1300"
    result = ingest(hub, "mvt", duplicate, received_at=RECEIVED, origin="ops")
    fields = state(hub).fields
    assert fields["times.off_block.actual"] == "2026-11-21T11:05:00Z"
    assert fields["next_information"] == "2026-11-21T13:00:00Z"  # nothing had said it yet
    assert result.applied[0]["version"] == version + 1
    again = ingest(hub, "mvt", duplicate, received_at=RECEIVED, origin="ops")
    assert again.applied[0]["version"] is None


def test_unknown_mvt_elements_are_kept_and_reported_and_the_rest_applied(
    hub: FlightHub,
) -> None:
    schedule(hub)
    text = "MVT\nSD200/21.PMDFG.CDG\nAD1100/1115\nFOB 12400\nDL9X/0010"
    result = ingest(hub, "mvt", text, received_at=RECEIVED, origin="ops")
    flight = state(hub)
    assert flight.fields["times.off_block.actual"] == "2026-11-21T11:00:00Z"
    assert flight.unknown["MVT/FO"][2] == "FOB 12400"
    assert flight.unknown["MVT/DL"][2] == "DL9X/0010"
    assert [w["location"] for w in result.warnings] == ["ops MVT/FO", "ops MVT/DL"]
    assert "line 4: unknown MVT element" in result.warnings[0]["message"]
    assert len(warnings(hub)) == 3  # and the schedule's CMA code


def test_an_estimate_for_another_airport_is_a_diversion(hub: FlightHub) -> None:
    schedule(hub)
    text = "MVT\nSD200/21.PMDFG.CDG\nAD1100/1115 EA1230 BRU"
    result = ingest(hub, "mvt", text, received_at=RECEIVED, origin="ops")
    assert result.refused == []
    fields = state(hub).fields
    assert fields["diversion_airport"] == "BRU"
    assert fields["status"] == "diverted"


def test_a_div_message_diverts_the_flight(hub: FlightHub) -> None:
    schedule(hub)
    text = "DIV\nSD200/21.PMDFG.LHR\nEA1250 STN\nDR WX\nSI FOG AT LHR"
    result = ingest(hub, "mvt", text, received_at=RECEIVED, origin="ops")
    assert result.refused == []
    flight = state(hub)
    assert flight.fields["diversion_airport"] == "STN"
    assert flight.fields["times.touchdown.estimated"] == "2026-11-21T12:50:00Z"
    assert flight.fields["remarks"] == "FOG AT LHR"
    assert flight.unknown["DIV/DR"][2] == "DR WX"
    assert state(hub).status == "diverted"
