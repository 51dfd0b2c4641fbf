"""The IATA PADIS codes AIDX messages carry, and what each means for the canonical flight leg.

OperationQualifier comes from codeset 9750 (some senders name 2005 in CodeContext for the same
codes), TimeType from 2005, OperationalStatus from 1245, 2005 and the 9750 A-CDM lifecycle.
Codes IATA defines that have no canonical field are known, so that they are skipped rather
than refused; a code outside these lists is refused as malformed.
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
UNMAPPED_MILESTONES = frozenset(
    {
        "BEN",  # final boarding
        "FCL",  # flight closed
        "THM",  # in range
        "TEN",  # approach
        "CGT",  # commence ground handling
        "FBG",  # first bag unloaded
        "LBG",  # last bag unloaded
        "FBA",  # first bag arrived
        "LBA",  # last bag arrived
        "ABA",  # air bridge attached
        "ABD",  # air bridge detached
        "RDT",  # ready
        "SRT",  # start-up request
        "SAT",  # start-up approval
        "DIC",  # de-icing start
        "DIE",  # de-icing end
    }
)
TIME_TYPES = {"SCT": "scheduled", "EST": "estimated", "ACT": "actual", "TAR": "target"}
UNMAPPED_TIME_TYPES = frozenset({"PLN", "CAL"})  # planned, calculated (e.g. a CTOT)

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
