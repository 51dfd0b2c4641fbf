"""AIDX, MVT and ASM parsers: realistic messages, and hostile ones refused with precise errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.errors import ParseError
from jetbridge.flights.feeds.mvt import parse_mvt

DATA = Path(__file__).parent / "data"
RECEIVED = datetime(2026, 11, 24, 7, 50, tzinfo=UTC)


def test_aidx_from_an_aodb() -> None:
    (update,) = parse_aidx((DATA / "aidx_departure.xml").read_bytes())
    assert update.identity.key == "LX0318-2026-11-24-ZRH-LHR"
    assert update.source_time == datetime(2026, 11, 24, 6, 41, 12, 345000, tzinfo=UTC)
    assert update.sequence == 10442
    fields = update.to_json()["fields"]
    assert fields["status"] == "delayed"
    assert fields["gate"] == "E24"
    assert fields["terminal"] == "2"
    assert fields["times.off_block.estimated"] == "2026-11-24T07:35:00Z"
    assert fields["times.boarding_start.target"] == "2026-11-24T06:55:00Z"
    assert fields["codeshares"] == "LH5731,UA9012"
    assert (fields["delays.0.code"], fields["delays.0.minutes"], fields["delays.1.minutes"]) == (
        "93",
        20,
        10,
    )


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z">&lol2;</IATA_AIDX_FlightLegNotifRQ>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z">&xxe;</IATA_AIDX_FlightLegNotifRQ>"""
NO_STAMP = "<IATA_AIDX_FlightLegNotifRQ><FlightLeg/></IATA_AIDX_FlightLegNotifRQ>"
BAD_AIRLINE = """<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z"><FlightLeg><LegIdentifier>
<Airline>L$</Airline><FlightNumber>1</FlightNumber><DepartureAirport>ZRH</DepartureAirport>
<ArrivalAirport>LHR</ArrivalAirport><OriginDate>2026-11-24</OriginDate></LegIdentifier></FlightLeg></IATA_AIDX_FlightLegNotifRQ>"""


SOAP = '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">{}</s:Envelope>'
LEG = """<FlightLeg><LegIdentifier><Airline>LX</Airline><FlightNumber>1</FlightNumber>
<DepartureAirport>ZRH</DepartureAirport><ArrivalAirport>LHR</ArrivalAirport>
<OriginDate>2026-11-24</OriginDate></LegIdentifier><LegData>{}</LegData></FlightLeg>"""
NOTIF = (
    '<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z">{}</IATA_AIDX_FlightLegNotifRQ>'
)
FULL_SOAP = SOAP.format(
    "\n<s:Body>\n" + NOTIF.format(LEG.format("<OperationalStatus>DEL</OperationalStatus>"))
)
TRUNCATED_SOAP = FULL_SOAP[: FULL_SOAP.index("<LegData>")]
SOAP_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<IATA_AIDX_FlightLegNotifRQ TimeStamp="2026-11-24T06:00:00Z">&lol2;</IATA_AIDX_FlightLegNotifRQ>
</s:Body></s:Envelope>"""


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (BILLION_LAUGHS, "unsafe XML"),
        (SOAP_LAUGHS, "unsafe XML"),
        (
            TRUNCATED_SOAP,
            "malformed XML: no element found at '<FlightLeg>'",
        ),
        (TRUNCATED_SOAP, "feed.xml:line 5 column 51:"),
        (
            FULL_SOAP[: FULL_SOAP.index("<OriginDate>") + 8],
            "feed.xml:line 5 column 0: malformed XML: unclosed token at '<OriginD'",
        ),
        (SOAP.format("<s:Body/>"), "feed.xml:Envelope/Body: SOAP Body holds no AIDX"),
        (
            SOAP.format("<s:Body><Ping/></s:Body>"),
            "Envelope/Body: SOAP Body holds no AIDX flight leg message at 'Ping'",
        ),
        (SOAP.format("<s:Header/>"), "feed.xml:Envelope: SOAP envelope without a Body"),
        (
            SOAP.format(
                "<s:Body><s:Fault><faultcode>s:Server</faultcode>"
                "<faultstring>AODB unavailable</faultstring></s:Fault></s:Body>"
            ),
            "Envelope/Body/Fault: the sender answered with a SOAP fault at 'AODB unavailable'",
        ),
        ('<Envelope xmlns="urn:example:other"><Body/></Envelope>', "at 'Envelope'"),
        (
            '<IATA_AIDX_FlightLegRS><Errors><Error Type="294">Invalid format</Error></Errors>'
            "</IATA_AIDX_FlightLegRS>",
            "IATA_AIDX_FlightLegRS/Errors: the sender answered with errors at 'Invalid format'",
        ),
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n<a>Z\xfcrich</a>'.encode("latin-1"),
            "feed.xml:line 2 column 4: malformed XML: not well-formed (invalid token) at",
        ),
        (
            '<?xml version="1.0" encoding="x-unknown"?>\n<a>\xfc</a>'.encode("latin-1"),
            "unknown encoding",
        ),
        ("<IATA_AIDX_FlightLegNotifRQ TimeStamp='2026-11-24T06:00:00Z'/>", "no FlightLeg element"),
        (XXE, "unsafe XML"),
        (NO_STAMP, "TimeStamp is required"),
        ("<IATA_AIDX_FlightLegNotifRQ TimeStamp='x'", "malformed XML"),
        ("<Other TimeStamp='2026-11-24T06:00:00Z'/>", "'Other'"),
        (BAD_AIRLINE, "LegIdentifier/airline"),
        (
            "<IATA_AIDX_FlightLegNotifRQ TimeStamp='yesterday'><FlightLeg/></IATA_AIDX_FlightLegNotifRQ>",
            "'yesterday'",
        ),
        ("<a>" + "x" * 2_000_000 + "</a>", "byte limit"),
    ],
)
def test_hostile_aidx_is_refused(text: str | bytes, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_aidx(text, file="feed.xml")
    assert fragment in str(caught.value)


def test_mvt_departure_as_sent() -> None:
    (update,) = parse_mvt(
        (DATA / "mvt_departure.txt").read_text(), received_at=RECEIVED, file="mvt.txt"
    )
    assert (update.departure_airport, update.arrival_airport) == ("ZRH", "LHR")
    assert update.source_time == datetime(2026, 11, 24, 7, 44, tzinfo=UTC)
    body = update.to_json()["fields"]
    assert body["times.off_block.actual"] == "2026-11-24T07:38:00Z"
    assert body["times.take_off.actual"] == "2026-11-24T07:49:00Z"
    assert body["times.on_block.estimated"] == "2026-11-24T09:02:00Z"
    assert (
        body["delays.0.code"],
        body["delays.0.minutes"],
        body["delays.1.code"],
        body["delays.1.minutes"],
    ) == ("93", 20, "81", 13)
    assert body["registration"] == "HBJDA"
    assert body["remarks"] == "LATE INBOUND FROM LHR"
    assert update.to_update().identity.key == "LX0318-2026-11-24-ZRH-LHR"


def test_mvt_arrival_names_only_its_station() -> None:
    (update,) = parse_mvt((DATA / "mvt_arrival_cor.txt").read_text(), received_at=RECEIVED)
    assert (update.departure_airport, update.arrival_airport) == (None, "LHR")
    assert update.fields["times.on_block.actual"] == datetime(2026, 11, 24, 9, 1, tzinfo=UTC)
    assert not update.complete()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("MVT\nLX318-24.ZRH", "'LX318-24.ZRH'"),
        ("MVX\nLX318/24.HBJDA.ZRH", "'MVX'"),
        ("MVT\nLX318/32.HBJDA.ZRH", "'32'"),
        ("MVT\nLX318/24.HBJDA.ZRH\nSI caf\u00e9", "printable ASCII"),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nAD07\x0738",
            "mvt.txt:line 3: telex text must be printable ASCII at '\\x07'",
        ),
        ("", "empty"),
        ("QU ZRHKKLX\n.FRAKKLH 241530/0A1B\n", "empty"),
    ],
)
def test_bad_mvt_names_line_and_token(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_mvt(text, received_at=RECEIVED, file="mvt.txt")
    assert fragment in str(caught.value)
    assert "mvt.txt" in str(caught.value) or fragment == "empty"


def test_asm_new_for_two_dates() -> None:
    updates = parse_asm((DATA / "asm_new.txt").read_text(), received_at=RECEIVED)
    assert [u.to_update().identity.key for u in updates] == [
        "LX1120-2026-11-30-ZRH-CDG",
        "LX1120-2026-12-01-ZRH-CDG",
    ]
    assert updates[0].fields["aircraft_type"] == "320"
    assert updates[0].fields["status"] == "scheduled"
    assert updates[0].fields["times.off_block.scheduled"] == datetime(
        2026, 11, 30, 6, 40, tzinfo=UTC
    )


def test_asm_local_times_are_converted_to_utc() -> None:
    (update,) = parse_asm((DATA / "asm_cnl_lt.txt").read_text(), received_at=RECEIVED)
    assert update.fields["times.off_block.scheduled"] == datetime(2026, 11, 28, 7, 5, tzinfo=UTC)
    assert update.fields["times.on_block.scheduled"] == datetime(2026, 11, 28, 8, 45, tzinfo=UTC)


def test_asm_cancellation_without_legs() -> None:
    (update,) = parse_asm("ASM\nCNL\nLX318/28NOV26\n", received_at=RECEIVED)
    assert update.fields["status"] == "cancelled"
    assert not update.complete()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ASM\nNEW\nLX1/31NOV26\nZRH0640 CDG0800", "'31NOV26'"),
        ("ASM\nNEW\nLX1/24NOV26\nZRH2640 CDG0800", "'2640'"),
        ("ASM\nNEW\n???", "'???'"),
        ("NOTASM", "'NOTASM'"),
        (
            "ASM\nNEW\nLX1/24NOV26\nZRH0640 CDG0800\n//\n//\nCNL\nLX2/24NOV26",
            "asm.txt:line 5: missing the action line",
        ),
        (
            "ASM\nNEW\nLX1\nZRH0640 CDG0800",
            "line 3: a flight needs a date (BA123/24NOV26) or a period line at 'LX1'",
        ),
        (
            "SSM\nNEW\nLX1\n30NOV26 20NOV26 1357\nZRH0640 CDG0800",
            "line 4: a period must not end before it begins at '20NOV26'",
        ),
        (
            "SSM\nNEW\nLX1\n01JAN26 31DEC27 1234567\nZRH0640 CDG0800",
            "line 4: the period covers 730 days, more than the 230 a period may cover",
        ),
        (
            "SSM\nNEW\nLX1\n05DEC26 20DEC26 1389\nZRH0640 CDG0800",
            "line 3: a flight needs a date (BA123/24NOV26) or a period line at 'LX1'",
        ),
        (
            "ASM\nNEW\nLX1/24XXX26\nZRH0640 CDG0800",
            "date must look like 24NOV26, 24NOV or 24 at '24XXX26'",
        ),
    ],
)
def test_bad_asm_names_line_and_token(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_asm(text, received_at=RECEIVED, file="asm.txt")
    assert fragment in str(caught.value)


def test_aidx_in_a_soap_operation_and_a_soap_12_fault() -> None:
    wrapped = SOAP.format(
        '<s:Body><op:Notify xmlns:op="urn:example:aodb">'
        + NOTIF.format(LEG.format("<PublicStatus>CNX</PublicStatus>"))
        + "</op:Notify></s:Body>"
    )
    (update,) = parse_aidx(wrapped)
    assert update.identity.key == "LX0001-2026-11-24-ZRH-LHR"
    assert update.to_json()["fields"] == {"status": "cancelled"}  # PublicStatus when alone
    fault = (
        '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault>'
        "<e:Code><e:Value>e:Receiver</e:Value></e:Code>"
        '<e:Reason><e:Text xml:lang="en">Flight not found</e:Text></e:Reason>'
        "</e:Fault></e:Body></e:Envelope>"
    )
    with pytest.raises(ParseError, match="SOAP fault at 'Flight not found'"):
        parse_aidx(fault)


def test_mvt_revised_arrival_comes_from_the_arrival_station() -> None:
    (revised,) = parse_mvt("MVT\nLX318/24.HBJDA.LHR\nEA0915", received_at=RECEIVED)
    assert (revised.departure_airport, revised.arrival_airport) == (None, "LHR")
    assert revised.fields["times.on_block.estimated"] == datetime(2026, 11, 24, 9, 15, tzinfo=UTC)
    (late,) = parse_mvt("MVT\nLX318/24.HBJDA.ZRH\nEO0810", received_at=RECEIVED)
    assert (late.departure_airport, late.arrival_airport) == ("ZRH", None)
    assert late.fields == {
        "registration": "HBJDA",
        "times.take_off.estimated": datetime(2026, 11, 24, 8, 10, tzinfo=UTC),
    }


@pytest.mark.parametrize("encoding", ["UTF-16", "windows-1252"])
def test_aidx_in_other_declared_encodings(encoding: str) -> None:
    document = f'<?xml version="1.0" encoding="{encoding}"?>\n' + NOTIF.format(
        LEG.format("<RemarkFreeText>Enteisung \u20ac 12, Gep\u00e4ck</RemarkFreeText>")
    )
    (update,) = parse_aidx(document.encode(encoding))
    assert update.to_json()["fields"] == {"remarks": "Enteisung \u20ac 12, Gep\u00e4ck"}


def test_telex_cr_cr_lf_is_one_line_end() -> None:
    (update,) = parse_mvt(b"MVT\r\r\nLX318/24.HBJDA.ZRH\r\r\nAD0738\r\r\n", received_at=RECEIVED)
    assert update.fields["times.off_block.actual"] == datetime(2026, 11, 24, 7, 38, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ("MVT\nLX318/24.HBJDA.ZRH\nAD2561", "MVT/AD", "line 3: time must be HHMM or DDHHMM"),
        ("MVT\nLX318/24.HBJDA.ZRH\nZZ1234", "MVT/ZZ", "line 3: unknown MVT element"),
        ("MVT\nLX318/24.HBJDA.ZRH\nDL93/0099", "MVT/DL", "line 3: delay duration must be HHMM"),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nAD0738 EA0902 L1R",
            "MVT/AD",
            "line 3: airport must be a 3-letter IATA code",
        ),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nDL7/0030",
            "MVT/DL",
            "line 3: delay must look like DL72/0030 or DL72/93/0030/0015",
        ),
        ("MVT\nLX318/24.HBJDA.ZRH\nDL72/00X5", "MVT/DL", "line 3: delay must look like DL72/0030"),
        ("MVT\nLX318/24.HBJDA.ZRH\nDL72/0075", "MVT/DL", "line 3: delay duration must be HHMM"),
        ("MVT\nLX318/24.HBJDA.ZRH\nDL93/0010\nEDL81/5", "MVT/EDL", "line 4: delay must look like"),
        ("MVT XYZ\nLX318/24.HBJDA.ZRH", "MVT/header", "line 1: only COR, REV or PDM may follow"),
        ("MVT\nLX318/24.HBJDA.ZRH\nSI LATE\n\nXX12", "MVT/XX", "line 5: unknown MVT element"),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nAD0738\nNNNN\nMVT\nLX318/24.HBJDA.LHR\nAA0855/2599",
            "MVT/AA",
            "line 7: time must be HHMM or DDHHMM",
        ),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nEA09O2 LHR",
            "MVT/EA",
            "line 3: estimated arrival must look like EA0902 LHR",
        ),
        (
            "MVT\nLX318/24.HBJDA.ZRH\nDL72/93/0030/0015/0010",
            "MVT/DL",
            "line 3: delay must look like",
        ),
    ],
)
def test_bad_mvt_elements_are_kept_and_reported(text: str, path: str, reason: str) -> None:
    """A malformed or unknown element loses neither the message nor the raw line: it is kept
    with the line and the reason, and the rest is applied."""
    updates = parse_mvt(text, received_at=RECEIVED, file="mvt.txt")
    update = updates[-1]
    assert path in update.unknown
    assert update.reasons[path].startswith(reason)
    assert update.unknown[path] in text.replace("\\n", "\n")
    assert update.fields.get("registration") == "HBJDA"


def test_unknown_aidx_codes_are_kept_and_the_rest_applied() -> None:
    document = NOTIF.format(
        LEG.format(
            "<OperationalStatus>ZZZ</OperationalStatus>"
            '<OperationTime OperationQualifier="XYZ" TimeType="ACT">2026-11-24T06:00:00Z</OperationTime>'
            '<OperationTime OperationQualifier="OFB" TimeType="XXX">2026-11-24T07:00:00Z</OperationTime>'
            '<OperationTime OperationQualifier="OFB" TimeType="SCT">2026-11-24</OperationTime>'
            '<OperationTime OperationQualifier="OFB" TimeType="EST">2026-11-24T07:35:00Z</OperationTime>'
            '<IrregularityDelay DepartureOrArrival="Departure"><ReasonCode>93</ReasonCode>'
            "<Duration>20 min</Duration></IrregularityDelay>"
            "<FutureElement Kind='new'>value <Inner>1</Inner></FutureElement>"
        )
    )
    (update,) = parse_aidx(document)
    assert update.fields["times.off_block.estimated"] == datetime(2026, 11, 24, 7, 35, tzinfo=UTC)
    assert update.fields["delays.0.code"] == "93"
    assert update.unknown == {
        "LegData/OperationalStatus[.='ZZZ']": "ZZZ",
        "LegData/OperationTime[@OperationQualifier='XYZ'][@TimeType='ACT']/@OperationQualifier": (
            "2026-11-24T06:00:00Z"
        ),
        "LegData/OperationTime[@OperationQualifier='OFB'][@TimeType='XXX']/@TimeType": (
            "2026-11-24T07:00:00Z"
        ),
        "LegData/OperationTime[@OperationQualifier='OFB'][@TimeType='SCT']": "2026-11-24",
        "LegData/IrregularityDelay[1]/Duration": "20 min",
        "LegData/FutureElement": "Kind=new value 1",
    }
    assert "status" not in update.fields


@pytest.mark.parametrize(
    ("text", "path", "raw", "reason"),
    [
        ("ASM\nADD\nLX1/24NOV26", "ASM/action", "ADD", "line 2: action not in SSIM"),
        ("ASM\nUTC\nTIM/XYZ WEAT\nLX1/24NOV26", "ASM/action", "XYZ", "line 3: action not in"),
        (
            "ASM\nCNL\nLX1/24NOV26 ZRH-GVA",
            "ASM/flight",
            "ZRH-GVA",
            "line 3: unrecognised flight line element",
        ),
        (
            "ASM\nNEW\nLX1/24NOV26\nZRH0640 CDG0800/Q",
            "ASM/line",
            "ZRH0640 CDG0800/Q",
            "line 4: unrecognised ASM line",
        ),
    ],
)
def test_unknown_asm_parts_are_kept_and_reported(
    text: str, path: str, raw: str, reason: str
) -> None:
    (update,) = parse_asm(text, received_at=RECEIVED, file="asm.txt")
    assert (update.airline, update.flight_number) == ("LX", "1")
    assert update.unknown[path] == raw
    assert update.reasons[path].startswith(reason)


def test_mvt_correction_with_sub_coded_delays_and_arrival_in_one_message() -> None:
    """As an airline's operations system logs it: COR before the identifier, AD with days,
    DL, PX, DLA with an AHM 731 sub-code and empty positions, and AA in the same message."""
    text = "COR\nMVT\nG9536/12.A6ABC.SHJ\nAD120435/120438 EA0840 KTM\nDL81/0010\nPX132\nDLA81A///\nAA120838/120840\n"
    (update,) = parse_mvt(text, received_at=datetime(2025, 6, 12, 9, 0, tzinfo=UTC))
    assert update.correction
    assert update.unknown == {}
    assert update.fields["delays.0.code"] == "81A"
    assert update.fields["times.off_block.actual"] == datetime(2025, 6, 12, 4, 35, tzinfo=UTC)
    assert update.fields["times.on_block.actual"] == datetime(2025, 6, 12, 8, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("=PRIORITY\nQU\n=TEXT\n", "empty message"),
        ("COR\n", "line 1: expected the MVT, MVA or DIV message identifier at 'COR'"),
        ("PDM\nCOR\n\n", "expected the MVT, MVA or DIV message identifier"),
        ("=SMI\nMVT\n=TEXT\nLX318/2X.HBJDA.ZRH\n", "line 4: flight identification must look like"),
        ("=HEADER\n=TEXT\nMVT\n", "line 3: missing the flight identification line"),
        ("=" + "A" * 40 + "\nMVT\nLX318/24.HBJDA.ZRH", "line 1: expected the MVT"),
    ],
)
def test_hostile_sitatex_and_flag_lines_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_mvt(text, received_at=RECEIVED, file="mvt.txt")
    assert fragment in str(caught.value)


def test_sitatex_envelope_values_are_not_message_text() -> None:
    text = (
        "=PRIORITY\nQU\n=DESTINATION TYPE B\nSTX,ZRHKKLX\n=ORIGIN\nLHRKKBA\n=MSGID\n240744\n"
        "=TEXT\nMVT\nLX318/24.HBJDA.ZRH\nAD0738/0749\n=PRIORITY\nQU\n=MSGID\nNOTATIME\n"
        "=SMI\nMVT\n=TEXT\nLX319/24.HBJDA.LHR\nAA0901/0909\n"
    )
    departure, arrival = parse_mvt(text, received_at=RECEIVED, file="mvt.txt")
    assert departure.source_time == datetime(2026, 11, 24, 7, 44, tzinfo=UTC)  # =MSGID
    assert departure.fields["times.take_off.actual"] == datetime(2026, 11, 24, 7, 49, tzinfo=UTC)
    assert arrival.source_time == RECEIVED  # an =MSGID that is no time is not one
    assert arrival.fields["times.on_block.actual"] == datetime(2026, 11, 24, 9, 9, tzinfo=UTC)
    assert departure.unknown == arrival.unknown == {}
