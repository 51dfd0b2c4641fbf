"""The raw values kept from what sources sent and jetbridge did not understand are shown with
the flight, beside where each field came from, to operations staff: over HTTP, and named in the
ingest log's warning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jetbridge.app import create_app
from jetbridge.config import Settings
from support.auth import bearer

AIDX = """<IATA_AIDX_FlightLegNotifRQ xmlns="http://www.iata.org/IATA/2007/00"
 TimeStamp="2026-11-20T06:00:00Z" Version="22.1"><FlightLeg><LegIdentifier><Airline>SD</Airline>
<FlightNumber>200</FlightNumber><DepartureAirport>CDG</DepartureAirport>
<ArrivalAirport>LHR</ArrivalAirport><OriginDate>2026-11-21</OriginDate></LegIdentifier>
<LegData><OperationalStatus>SCH</OperationalStatus>
<OperationTime OperationQualifier="OFB" TimeType="SCT">2026-11-21T10:50:00Z</OperationTime>
<OperationTime OperationQualifier="ONB" TimeType="SCT">2026-11-21T12:10:00Z</OperationTime>
<OperationTime OperationQualifier="CMA" TimeType="ACT">2026-11-21T09:40:00Z</OperationTime>
</LegData></FlightLeg></IATA_AIDX_FlightLegNotifRQ>"""
MVT = "MVT\nSD200/21.FHBXA.CDG\nAD1055 EA1215 LHR\nFO NEW ELEMENT\n"
KEY = "SD0200-2026-11-21-CDG-LHR"
CMA = "LegData/OperationTime[@OperationQualifier='CMA'][@TimeType='ACT']/@OperationQualifier"


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=sqlite_url, run_workers=False))
    with TestClient(app) as client:
        yield client


def as_role(client: TestClient, role: str) -> dict[str, str]:
    return bearer(client.app, roles=(role,))  # type: ignore[attr-defined]


def pushed(client: TestClient) -> None:
    feeds = as_role(client, "service")
    for kind, body in (("aidx", AIDX), ("mvt", MVT)):
        answer = client.post(f"/api/ingest/{kind}", content=body, headers=feeds)
        assert answer.status_code == 200, answer.text


def test_operations_see_each_fields_source_and_the_raw_values_kept(client: TestClient) -> None:
    pushed(client)
    answer = client.get(f"/api/flights/{KEY}/provenance", headers=as_role(client, "operations"))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["flight_key"] == KEY
    assert body["fields"]["times.off_block.scheduled"] == {
        "value": "2026-11-21T10:50:00Z",
        "source": "aidx",
        "source_time": "2026-11-20T06:00:00+00:00",
        "sequence": 0,
    }
    assert body["fields"]["times.off_block.actual"]["source"] == "mvt"
    assert body["fields"]["times.off_block.actual"]["value"] == "2026-11-21T10:55:00Z"
    kept = {item["path"]: item for item in body["unknown"]}
    assert kept[CMA]["raw"] == "2026-11-21T09:40:00Z"
    assert kept[CMA]["source"] == "aidx"
    assert kept["MVT/FO"]["raw"] == "FO NEW ELEMENT"
    assert kept["MVT/FO"]["source"] == "mvt"


def test_the_ingest_warning_names_the_raw_value_and_where_the_flight_shows_it(
    client: TestClient,
) -> None:
    pushed(client)
    logged = client.get(
        "/api/ingest/errors", params={"source": "mvt"}, headers=as_role(client, "operations")
    ).json()
    (warning,) = [entry for entry in logged if entry["level"] == "warning"]
    assert warning["location"] == "http MVT/FO"
    assert "'FO NEW ELEMENT'" in warning["message"]
    assert f"GET /api/flights/{KEY}/provenance" in warning["message"]


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("agent", 403), ("service", 403)])
def test_only_operations_and_admins_see_provenance(
    client: TestClient, role: str | None, status: int
) -> None:
    pushed(client)
    headers = as_role(client, role) if role else {}
    answer = client.get(f"/api/flights/{KEY}/provenance", headers=headers)
    assert answer.status_code == status
    assert "FO NEW ELEMENT" not in answer.text


@pytest.mark.parametrize(
    "key", ["NO0000-2026-11-21-CDG-LHR", "x" * 300, "SD0200-2026-11-21-CDG-LHR%00", "'; --"]
)
def test_unknown_or_hostile_keys_are_not_found(client: TestClient, key: str) -> None:
    answer = client.get(f"/api/flights/{key}/provenance", headers=as_role(client, "admin"))
    assert answer.status_code == 404
    assert "does not exist" in answer.json()["message"]


LOCAL = """<IATA_AIDX_FlightLegNotifRQ xmlns="http://www.iata.org/IATA/2007/00"
 TimeStamp="2026-03-28T06:00:00Z" Version="21.3"><FlightLeg><LegIdentifier><Airline>LX</Airline>
<FlightNumber>16</FlightNumber><DepartureAirport>ZRH</DepartureAirport>
<ArrivalAirport>JFK</ArrivalAirport><OriginDate>2026-03-29</OriginDate></LegIdentifier><LegData>
<OperationTime OperationQualifier="OFB" TimeType="SCL">2026-03-29T03:30:00</OperationTime>
<OperationTime OperationQualifier="OFB" TimeType="ESL">2026-03-29T02:30:00</OperationTime>
</LegData></FlightLeg></IATA_AIDX_FlightLegNotifRQ>"""


def test_a_local_time_in_the_skipped_hour_is_kept_and_the_warning_says_why(
    client: TestClient,
) -> None:
    answer = client.post("/api/ingest/aidx", content=LOCAL, headers=as_role(client, "service"))
    assert answer.status_code == 200, answer.text
    (warning,) = answer.json()["warnings"]
    assert "does not exist at ZRH (Europe/Zurich): the clocks went forward" in warning["message"]
    key = "LX0016-2026-03-29-ZRH-JFK"
    shown = client.get(f"/api/flights/{key}/provenance", headers=as_role(client, "operations"))
    body = shown.json()
    assert body["fields"]["times.off_block.scheduled"]["value"] == "2026-03-29T01:30:00Z"
    assert "times.off_block.estimated" not in body["fields"]
    assert [(u["path"], u["raw"]) for u in body["unknown"]] == [
        (
            "LegData/OperationTime[@OperationQualifier='OFB'][@TimeType='ESL']",
            "2026-03-29T02:30:00",
        )
    ]
