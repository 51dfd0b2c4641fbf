"""A Distributed Map in the durable engine, on SQLite and PostgreSQL: items from the configured
object store, results written back, a crashed worker's map resumed without redoing items."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.storage.db import create_database_engine
from jetbridge.storage.migrate import upgrade
from jetbridge.storage.schema import executions
from jetbridge.workflows.engine import WorkflowEngine

DEFINITION = {
    "StartAt": "Legs",
    "States": {
        "Legs": {
            "Type": "Map",
            "MaxConcurrency": 1,
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "CSV"},
                "Parameters": {"Bucket": "ops", "Key.$": "$.key"},
            },
            "ItemBatcher": {"MaxItemsPerBatch": 2},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Notify",
                "States": {"Notify": {"Type": "Task", "Resource": "Notify", "End": True}},
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "ops", "Prefix": "out"},
            },
            "End": True,
        }
    },
}


class Crash(BaseException):
    """Stands for the worker process dying in the middle of a batch."""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_resumed_distributed_map_redoes_no_batch_and_writes_its_results(
    engine: Engine, tmp_path: Path
) -> None:
    bucket = tmp_path / "ops"
    bucket.mkdir()
    (bucket / "legs.csv").write_text("flight,gate\nLX1,A1\nLX2,A2\nLX3,B1\n")
    seen: list[Any] = []
    crash = [True]

    def notify(batch: Any) -> Any:
        seen.append([row["flight"] for row in batch["Items"]])
        if len(seen) == 2 and crash[0]:
            crash[0] = False
            raise Crash
        return len(batch["Items"])

    workflows = WorkflowEngine(engine, {"Notify": notify}, lease_seconds=60, object_store=tmp_path)
    workflows.start(name="legs-1", definition=DEFINITION, input={"key": "legs.csv"})
    with pytest.raises(Crash):
        workflows.run_one()
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))
    assert workflows.run_one() is True
    done = workflows.describe(name="legs-1")
    assert done["status"] == "SUCCEEDED", done
    assert seen == [["LX1", "LX2"], ["LX3"], ["LX3"]]
    key = done["output"]["ResultWriterDetails"]["Key"]
    manifest = json.loads((bucket / key).read_text())
    results = json.loads((bucket / manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]).read_text())
    assert [json.loads(row["Output"]) for row in results] == [2, 1]


def test_the_object_store_directory_comes_from_the_settings(
    sqlite_url: str, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=sqlite_url, object_store_dir=tmp_path))
    assert app.state.platform.workflows.object_store == tmp_path
