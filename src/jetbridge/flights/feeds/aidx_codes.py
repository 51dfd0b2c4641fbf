"""The IATA PADIS codes AIDX messages carry, and what each means for the canonical flight leg.

OperationQualifier comes from codeset 9750 (some senders name 2005 in CodeContext for the same
codes), TimeType from 2005, OperationalStatus from 1245, 2005 and the 9750 A-CDM lifecycle, as
the PADIS Code Set Directory (17.1) lists them; the AIDX schema types all three as
`IATA_CodeType`, any code. Codes IATA defines that have no canonical field are known, so that
they are read past; a code outside these lists (a local or newer one) is kept raw on the flight
and reported as a warning.
"""

from __future__ import annotations

MILESTONES = {
    "OFB": "off_block",
    "TKO": "take_off",
    "TDN": "touchdown",
    "ONB": "on_block",
    "CHK": "check_in_open",
    "CHC": "check_in_close",
    "GTO": "gate_open",
    "BST": "boarding_start",
    "FCT": "final_call",
    "GCL": "gate_close",
}
# The other flight events of codeset 9750 (PADIS Code Set Directory 17.1): understood, and no
# canonical field holds them.
UNMAPPED_MILESTONES = frozenset(
    {
        "ABA", "ABD", "ADC", "ATC", "BAG", "BCL", "BEN", "BUS", "CGT", "CRD", "CTO", "DCL",
        "DIC", "DIE", "DIR", "DIS", "DIV", "DOP", "ENG", "FBA", "FBG", "FCL", "FIN", "FIR",
        "FND", "FST", "GFR", "GRD", "GTG", "HEN", "HST", "JET", "LAN", "LBA", "LBG", "MND",
        "MST", "MZC", "MZO", "OFS", "ONS", "PBK", "RDT", "RFA", "RST", "SAT", "SPE", "SRT",
        "STE", "STK", "STX", "TDP", "TEN", "THM", "UNS", "WAB",
    }
)  # fmt: skip
TIME_TYPES = {"SCT": "scheduled", "EST": "estimated", "ACT": "actual", "TAR": "target"}
# The same in the local time of the airport where the milestone happens (the departure airport's
# for departure milestones, the arrival airport's for touchdown and on-block): converted to UTC
# with that airport's time zone from the reference data.
LOCAL_TIME_TYPES = {"SCL": "scheduled", "ESL": "estimated", "ACL": "actual"}
# The other time types of codeset 2005: planned, calculated (e.g. a CTOT), the local-time
# variants of the types below, earliest, latest, allocated, confirmed, hidden, next
# information, elapsed and ground times.
UNMAPPED_TIME_TYPES = frozenset(
    {
        "PLN", "CAL", "ALL", "ALT", "COL", "COT", "EAL", "EAT", "EET", "ENL", "ENT",
        "FLT", "GRT", "HEL", "HET", "HIL", "HIT", "HNL", "HNT", "LAL", "LAT", "MNG",
        "NIL", "NIT", "REL", "RET", "SCA", "SCD", "STL", "STT",
    }
)  # fmt: skip

STATUS = {
    # 1245 and the 9750 A-CDM lifecycle
    "SCH": "scheduled",
    "SQ": "scheduled",  # reinstated
    "OP": "operating",
    "NOP": "not_operating",
    "INI": "operating",  # flight plan activated
    "SEQ": "operating",
    "RDT": "operating",
    "DIR": "operating",
    "DIC": "operating",
    "BST": "boarding",
    "BEN": "boarding",
    "GCL": "boarding",
    "FCL": "boarding",
    "OFB": "departed",
    "TKO": "departed",
    "FIR": "departed",
    "FIN": "departed",
    "THM": "departed",
    "TEN": "departed",
    "STE": "departed",
    "STX": "departed",
    "LAN": "arrived",
    "ONB": "arrived",
    "EAR": "operating",
    "SCT": "scheduled",
    "DEL": "delayed",
    # 2005 irregular operations
    "DX": "cancelled",
    "DV": "diverted",
    "RT": "operating",  # re-routed
    "GRT": "operating",  # ground return
    # Common AODB spellings
    "OPR": "operating",
    "BRD": "boarding",
    "DEP": "departed",
    "AIR": "departed",
    "ARR": "arrived",
    "LND": "arrived",
    "CNX": "cancelled",
    "CXX": "cancelled",
    "CAN": "cancelled",
    "DIV": "diverted",
}
# When a leg carries several statuses, the one that says most wins.
STATUS_RANK = {
    "scheduled": 0,
    "operating": 1,
    "delayed": 2,
    "boarding": 3,
    "departed": 4,
    "arrived": 5,
    "not_operating": 6,
    "diverted": 7,
    "cancelled": 8,
}
