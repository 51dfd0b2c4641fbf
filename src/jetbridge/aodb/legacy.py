"""The legacy AODB schema the simulator writes: upper-case names, local times, status codes.

It stands for the kind of table a real AODB exposes; the CDC mapping file
(`aodb/mapping.toml`) translates it to the canonical flight model.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table

legacy_metadata = MetaData()

movements = Table(
    "FLIGHT_MOVEMENTS",
    legacy_metadata,
    Column("MVT_ID", Integer, primary_key=True, autoincrement=False),
    Column("AL_CODE", String(3), nullable=False),
    Column("FLT_NO", String(5), nullable=False),
    Column("SCHED_DATE", String(10), nullable=False),
    Column("DEP_AP", String(3), nullable=False),
    Column("ARR_AP", String(3), nullable=False),
    Column("FLT_STATUS", String(3), nullable=True),
    Column("STD_UTC", DateTime, nullable=True),
    Column("ETD_UTC", DateTime, nullable=True),
    Column("ATD_UTC", DateTime, nullable=True),
    Column("STA_UTC", DateTime, nullable=True),
    Column("ETA_UTC", DateTime, nullable=True),
    Column("ATA_UTC", DateTime, nullable=True),
    Column("TKO_UTC", DateTime, nullable=True),
    Column("TDN_UTC", DateTime, nullable=True),
    Column("BRD_START_UTC", DateTime, nullable=True),
    Column("FINAL_CALL_UTC", DateTime, nullable=True),
    Column("GATE_CLOSE_UTC", DateTime, nullable=True),
    Column("TERMINAL", String(4), nullable=True),
    Column("ARR_TERMINAL", String(4), nullable=True),
    Column("GATE", String(6), nullable=True),
    Column("STAND", String(6), nullable=True),
    Column("CHECKIN_DESKS", String(32), nullable=True),
    Column("BELT", String(4), nullable=True),
    Column("AC_TYPE", String(4), nullable=True),
    Column("AC_REG", String(10), nullable=True),
    Column("DLY_CODE1", String(3), nullable=True),
    Column("DLY_MIN1", Integer, nullable=True),
    Column("DLY_CODE2", String(3), nullable=True),
    Column("DLY_MIN2", Integer, nullable=True),
    Column("DIV_AP", String(3), nullable=True),
    Column("CODESHARES", String(64), nullable=True),
    Column("REMARK", String(64), nullable=True),
    Column("LAST_UPD", DateTime, nullable=False, index=True),
    Column("ROW_VER", Integer, nullable=False),
)
