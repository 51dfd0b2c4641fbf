"""Feed parsing throughput (messages/s) per format, against the bare parse of the same bytes.

Baselines in the same run: `defusedxml.ElementTree.fromstring` for AIDX (the XML parse alone)
and splitting the telex into lines for MVT and ASM.

    python bench/bench_feeds.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from defusedxml.ElementTree import fromstring

from jetbridge.flights.feeds.aidx import parse_aidx
from jetbridge.flights.feeds.asm import parse_asm
from jetbridge.flights.feeds.mvt import parse_mvt

DATA = Path(__file__).parents[1] / "tests" / "unit" / "flights" / "data"
RECEIVED = datetime(2026, 11, 24, 7, 50, tzinfo=UTC)


def rate(function: Callable[[], object], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            function()
        count += 100
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    seconds = 0.5 if parser.parse_args().quick else 3.0
    aidx = (DATA / "aidx_departure.xml").read_bytes()
    mvt = (DATA / "mvt_departure.txt").read_text()
    asm = (DATA / "asm_new.txt").read_text()
    real = DATA / "real"
    soap = (real / "aidx_soap12_prefixed_bom_crlf.xml").read_bytes()
    typeb = (real / "mvt_typeb_crlf.txt").read_bytes()
    batch = (real / "asm_typeb_submessages.txt").read_bytes()
    cases = [
        ("AIDX (one FlightLeg, 2.3 KB)", lambda: parse_aidx(aidx), lambda: fromstring(aidx)),
        (
            "AIDX (SOAP 1.2, prefixed, four legs, 9.1 KB)",
            lambda: parse_aidx(soap),
            lambda: fromstring(soap),
        ),
        (
            "MVT (envelope, AD, DL, PX, SI)",
            lambda: parse_mvt(mvt, received_at=RECEIVED),
            lambda: mvt.splitlines(),
        ),
        (
            "MVT (SITA Type B envelope, CRLF, two delays)",
            lambda: parse_mvt(typeb, received_at=RECEIVED),
            lambda: typeb.splitlines(),
        ),
        (
            "ASM (NEW, two dates)",
            lambda: parse_asm(asm, received_at=RECEIVED),
            lambda: asm.splitlines(),
        ),
        (
            "ASM (Type B, five sub-messages)",
            lambda: parse_asm(batch, received_at=RECEIVED),
            lambda: batch.splitlines(),
        ),
    ]
    print(
        "| format | messages/s | baseline messages/s | baseline | share of time in the bare parse |"
    )
    print("|---|---|---|---|---|")
    for name, full, bare in cases:
        parsed, baseline = rate(full, seconds), rate(bare, seconds)
        label = "XML parse" if name.startswith("AIDX") else "split lines"
        print(f"| {name} | {parsed:,.0f} | {baseline:,.0f} | {label} | {parsed / baseline:.1%} |")


if __name__ == "__main__":
    main()
