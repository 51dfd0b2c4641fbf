"""An AIDX message inside an airport's or vendor's own envelope (as Noida's AODB sends it: the
AIDX message beside a header with the sequence number and the originator's time)."""

from __future__ import annotations

import pytest

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.errors import ParseError

LEG = """<aidx:IATA_AIDX_FlightLegNotifRQ Version="21.3"{stamp}><aidx:FlightLeg><aidx:LegIdentifier>
<aidx:Airline>SG</aidx:Airline><aidx:FlightNumber>1225</aidx:FlightNumber>
<aidx:DepartureAirport>DXN</aidx:DepartureAirport><aidx:ArrivalAirport>HSR</aidx:ArrivalAirport>
<aidx:OriginDate>2024-11-11</aidx:OriginDate></aidx:LegIdentifier></aidx:FlightLeg>
</aidx:IATA_AIDX_FlightLegNotifRQ>"""
ENVELOPE = """<y:Notif xmlns:y="urn:example:airport" xmlns:aidx="http://www.iata.org/IATA/2007/00">
<y:Header>{header}</y:Header>{leg}</y:Notif>"""
HEADER = (
    "<y:SequenceNumber>127824</y:SequenceNumber>"
    "<y:OriginatorTimeStamp>2024-11-11T09:02:30.891Z</y:OriginatorTimeStamp>"
)


def test_the_envelope_gives_the_time_and_order_the_message_lacks() -> None:
    (update,) = parse_aidx(ENVELOPE.format(header=HEADER, leg=LEG.format(stamp="")))
    assert update.identity.key == "SG1225-2024-11-11-DXN-HSR"
    assert update.source_time.isoformat() == "2024-11-11T09:02:30.891000+00:00"
    assert update.sequence == 127824


def test_the_messages_own_time_and_order_win() -> None:
    leg = LEG.format(stamp=' TimeStamp="2024-11-11T10:00:00Z" SequenceNmbr="7"')
    (update,) = parse_aidx(ENVELOPE.format(header=HEADER, leg=leg))
    assert update.source_time.isoformat() == "2024-11-11T10:00:00+00:00"
    assert update.sequence == 7


@pytest.mark.parametrize(
    ("document", "reason", "where"),
    [
        (ENVELOPE.format(header="", leg=LEG.format(stamp="")), "TimeStamp is required", "Notif/"),
        (
            ENVELOPE.format(
                header="<y:OriginatorTimeStamp>yesterday</y:OriginatorTimeStamp>",
                leg=LEG.format(stamp=""),
            ),
            "not an ISO 8601 date-time",
            "Notif//OriginatorTimeStamp",
        ),
        (ENVELOPE.format(header=HEADER, leg="<y:Other/>"), "not an AIDX flight leg", "Notif"),
        (
            ENVELOPE.format(header=HEADER, leg=f"<y:Deeper>{LEG.format(stamp='')}</y:Deeper>"),
            "not an AIDX flight leg",
            "Notif",
        ),
    ],
)
def test_an_envelope_that_does_not_say_enough_is_refused_naming_where(
    document: str, reason: str, where: str
) -> None:
    with pytest.raises(ParseError) as refused:
        parse_aidx(document, file="noida.xml")
    assert reason in str(refused.value)
    assert refused.value.location.startswith(where)
