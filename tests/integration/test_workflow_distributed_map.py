"""A Distributed Map in the durable engine, on SQLite and PostgreSQL: each item (or batch) runs
as a child execution of its own under a Map Run, bounded by MaxConcurrency; a resumed parent
starts no child twice; failures count against the tolerance; a redrive of the parent redrives
only the failed children; Express children run in memory; the API keeps tenants apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from jetbridge.app import create_app
from jetbridge.config import Settings
from jetbridge.storage.schema import executions
from jetbridge.workflows import TaskFailed
from jetbridge.workflows.engine import WorkflowEngine
from support.auth import bearer

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
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"source.$": "$.key"}},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Notify",
                "States": {
                    "Notify": {
                        "Type": "Task",
                        "Resource": "Notify",
                        "Parameters": {"batch.$": "$", "execution.$": "$$.Execution.Name"},
                        "End": True,
                    }
                },
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "ops", "Prefix": "out"},
            },
            "Next": "After",
        },
        "After": {"Type": "Task", "Resource": "After", "ResultPath": "$.after", "End": True},
    },
}


def flat(processor_type: str = "STANDARD", **fields: Any) -> dict[str, Any]:
    """A Distributed Map over the input's array, each item a child running `work`."""
    state = {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": processor_type},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "work", "End": True}},
        },
        "End": True,
        **fields,
    }
    return {"StartAt": "M", "States": {"M": state}}


class Crash(BaseException):
    """Stands for the worker process dying."""


def settle(workflows: WorkflowEngine, name: str, within: float = 60.0) -> dict[str, Any]:
    """Run due executions (the parent and its children) until `name` ends."""
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        described = workflows.describe(name=name)
        if described["status"] != "RUNNING":
            return described
        if not workflows.run_one():
            time.sleep(0.02)
    raise AssertionError(f"{name} still runs: {workflows.describe(name=name)}")


def lapse(engine: Engine) -> None:
    """Every lease runs out, as when the worker holding it died."""
    with engine.begin() as conn:
        conn.execute(update(executions).values(lease_until=time.time() - 1))


def map_run_of(workflows: WorkflowEngine, name: str) -> dict[str, Any]:
    (run,) = workflows.list_map_runs(name=name)
    return workflows.describe_map_run(map_run=run["mapRunId"])


def test_children_are_executions_of_their_own_bounded_by_max_concurrency(
    engine: Engine, tmp_path: Path
) -> None:
    bucket = tmp_path / "ops"
    bucket.mkdir()
    (bucket / "legs.csv").write_text("flight,gate\nLX1,A1\nLX2,A2\nLX3,B1\n")
    seen: list[Any] = []

    def notify(payload: Any) -> Any:
        seen.append(payload)
        return len(payload["batch"]["Items"])

    handlers = {"Notify": notify, "After": lambda payload: "done"}
    workflows = WorkflowEngine(engine, handlers, lease_seconds=60, object_store=tmp_path)
    workflows.start(name="legs-1", definition=DEFINITION, input={"key": "legs.csv"}, tenant="LX")
    lease = workflows.claim_named("legs-1")
    assert lease is not None and workflows.resume(lease) is None  # parked: children run
    run = map_run_of(workflows, "legs-1")
    assert run["executionCounts"]["total"] == 2 and run["itemCounts"]["total"] == 3
    # MaxConcurrency 1: one child was started, the other waits for it.
    assert len(workflows.list(map_run=run["mapRunId"])) == 1
    assert run["executionCounts"]["pending"] == 2 and run["tenant"] == "LX"
    # Another worker (a process started afresh) resumes the parent: it starts no child again
    # and, one still running, none more.
    lapse(engine)
    other = WorkflowEngine(engine, handlers, lease_seconds=60, object_store=tmp_path)
    again = other.claim_named("legs-1")
    assert again is not None and other.resume(again) is None
    assert len(other.list(map_run=run["mapRunId"])) == 1

    done = settle(workflows, "legs-1")
    assert done["status"] == "SUCCEEDED", done
    children = workflows.list(map_run=run["mapRunId"])
    names = sorted(child["name"] for child in children)
    assert names == [f"{run['mapRunId']}:0", f"{run['mapRunId']}:1"]
    assert all(child["tenant"] == "LX" and child["mapRun"] == run["mapRunId"] for child in children)
    # Each child has its own $$.Execution and its batch (with BatchInput) as input.
    assert [payload["execution"] for payload in seen] == names
    assert [payload["batch"] for payload in seen] == [
        {"BatchInput": {"source": "legs.csv"}, "Items": [{"flight": "LX1", "gate": "A1"}, {"flight": "LX2", "gate": "A2"}]},
        {"BatchInput": {"source": "legs.csv"}, "Items": [{"flight": "LX3", "gate": "B1"}]},
    ]  # fmt: skip
    child_history = workflows.history(name=names[0])
    assert child_history[0]["type"] == "ExecutionStarted"
    assert child_history[-1]["type"] == "ExecutionSucceeded"

    history = workflows.history(name="legs-1")
    kinds = [event["type"] for event in history]
    assert "MapIterationStarted" not in kinds
    started = kinds.index("MapRunStarted")
    assert kinds[started - 1] == "MapStateStarted"
    assert kinds[started + 1 : started + 3] == ["MapRunSucceeded", "MapStateSucceeded"]
    ended = workflows.describe_map_run(map_run=run["mapRunId"])
    assert ended["status"] == "SUCCEEDED"
    assert ended["executionCounts"] == {
        "pending": 0, "running": 0, "succeeded": 2, "failed": 0, "timedOut": 0, "aborted": 0,
        "total": 2,
    }  # fmt: skip
    assert ended["itemCounts"]["succeeded"] == 3 and ended["maxConcurrency"] == 1
    (run_started,) = [event for event in history if event["type"] == "MapRunStarted"]
    assert run_started["mapRunStartedEventDetails"]["mapRunArn"] == ended["mapRunArn"]

    key = done["output"]["ResultWriterDetails"]["Key"]
    manifest = json.loads((bucket / key).read_text())
    assert manifest["MapRunArn"] == done["output"]["MapRunArn"]
    assert manifest["MapRunArn"].endswith(run["mapRunId"])
    results = json.loads((bucket / manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]).read_text())
    assert [json.loads(row["Output"]) for row in results] == [2, 1]
    assert [row["Name"] for row in results] == names


def test_a_resumed_parent_starts_no_child_twice(engine: Engine) -> None:
    calls: list[int] = []
    crash = {"child": True, "parent": True}

    def work(item: int) -> int:
        calls.append(item)
        if item == 2 and crash["child"]:
            crash["child"] = False
            raise Crash  # the worker running child 2 dies mid-task
        return item * 10

    def after(payload: Any) -> str:
        if crash["parent"]:
            crash["parent"] = False
            raise Crash  # the worker running the parent dies after its Map Run
        return "after"

    definition = flat(MaxConcurrency=2, ItemsPath="$.items")
    definition["States"]["M"].update({"End": False, "Next": "After", "ResultPath": "$.results"})
    definition["States"]["After"] = {
        "Type": "Task", "Resource": "After", "ResultPath": "$.after", "End": True,
    }  # fmt: skip
    workflows = WorkflowEngine(engine, {"work": work, "After": after}, lease_seconds=60)
    workflows.start(name="resume-1", definition=definition, input={"items": [1, 2, 3]})
    give_up = time.monotonic() + 60
    while workflows.describe(name="resume-1")["status"] == "RUNNING":
        assert time.monotonic() < give_up
        try:
            if not workflows.run_one():
                time.sleep(0.02)
        except Crash:
            lapse(engine)
    done = workflows.describe(name="resume-1")
    assert done["status"] == "SUCCEEDED", done
    assert done["output"] == {"items": [1, 2, 3], "results": [10, 20, 30], "after": "after"}
    assert sorted(calls) == [1, 2, 2, 3]  # only the task the dead worker held ran again
    with engine.connect() as conn:
        names = conn.execute(
            select(executions.c.name).where(executions.c.map_run.isnot(None))
        ).scalars()
        assert len(list(names)) == 3
    assert workflows.list_map_runs(name="resume-1")[0]["stateName"] == "M"


def test_failures_count_against_the_tolerance_and_a_redrive_reruns_only_failed_children(
    engine: Engine,
) -> None:
    calls: list[int] = []
    failing = {3}

    def work(item: int) -> int:
        calls.append(item)
        if item in failing:
            raise TaskFailed("Item.Failed", f"item {item} failed")
        return item

    workflows = WorkflowEngine(engine, {"work": work}, lease_seconds=60)
    workflows.start(name="tol-1", definition=flat(ToleratedFailureCount=1), input=[1, 2, 3])
    tolerated = settle(workflows, "tol-1")
    assert tolerated["status"] == "SUCCEEDED", tolerated
    assert tolerated["output"] == [1, 2, {"Error": "Item.Failed", "Cause": "item 3 failed"}]
    assert map_run_of(workflows, "tol-1")["executionCounts"]["failed"] == 1

    failing.add(2)
    calls.clear()
    workflows.start(name="tol-2", definition=flat(ToleratedFailureCount=1), input=[1, 2, 3])
    failed = settle(workflows, "tol-2")
    assert failed["status"] == "FAILED"
    assert failed["error"] == "States.ExceedToleratedFailureThreshold"
    run = map_run_of(workflows, "tol-2")
    assert (run["status"], run["executionCounts"]["failed"]) == ("FAILED", 2)
    kinds = [event["type"] for event in workflows.history(name="tol-2")]
    assert "MapRunFailed" in kinds and kinds[-1] == "ExecutionFailed"

    failing.clear()
    calls.clear()
    workflows.redrive(name="tol-2")
    redriven = settle(workflows, "tol-2")
    assert redriven["status"] == "SUCCEEDED", redriven
    assert redriven["output"] == [1, 2, 3]
    assert sorted(calls) == [2, 3]  # the child that succeeded was not run again
    again = map_run_of(workflows, "tol-2")
    assert again["status"] == "SUCCEEDED" and again["redriveCount"] == 1
    assert again["executionCounts"]["succeeded"] == 3


def test_express_children_run_in_memory_and_are_not_stored(engine: Engine) -> None:
    calls: list[int] = []
    workflows = WorkflowEngine(
        engine, {"work": lambda item: calls.append(item) or item + 1}, lease_seconds=60
    )
    definition = flat("EXPRESS")
    # A Wait after the Map parks the parent: resumed, it replays the Map from its record.
    definition["States"]["M"].update({"End": False, "Next": "Later"})
    definition["States"]["Later"] = {"Type": "Wait", "Seconds": 1, "End": True}
    workflows.start(name="express-1", definition=definition, input=[1, 2, 3])
    done = settle(workflows, "express-1")
    assert done["status"] == "SUCCEEDED" and done["output"] == [2, 3, 4]
    assert sorted(calls) == [1, 2, 3]
    run = map_run_of(workflows, "express-1")
    assert run["executionType"] == "EXPRESS"
    assert run["executionCounts"]["succeeded"] == 3
    assert workflows.list(map_run=run["mapRunId"]) == []  # no execution of its own stored


def test_express_children_lost_with_their_worker_are_not_run_again(engine: Engine) -> None:
    calls: list[int] = []

    def work(item: int) -> int:
        calls.append(item)
        if len(calls) == 1:
            raise Crash
        return item

    workflows = WorkflowEngine(engine, {"work": work}, lease_seconds=60)
    definition = flat("EXPRESS", MaxConcurrency=1)
    workflows.start(name="express-2", definition=definition, input=[1, 2])
    with pytest.raises(Crash):
        workflows.run_one()
    lapse(engine)
    failed = settle(workflows, "express-2")
    assert failed["status"] == "FAILED" and "at most once" in failed["cause"]
    assert calls == [1]


def test_stopping_the_parent_aborts_its_running_children(engine: Engine) -> None:
    workflows = WorkflowEngine(engine, {"work": lambda item: item}, lease_seconds=60)
    workflows.start(name="stop-1", definition=flat(), input=[1, 2])
    lease = workflows.claim_named("stop-1")
    assert lease is not None and workflows.resume(lease) is None
    workflows.stop(name="stop-1")
    run = map_run_of(workflows, "stop-1")
    assert run["status"] == "ABORTED" and run["executionCounts"]["aborted"] == 2
    assert {c["status"] for c in workflows.list(map_run=run["mapRunId"])} == {"ABORTED"}


def test_a_parent_that_times_out_aborts_its_map_run(engine: Engine) -> None:
    definition = flat()
    definition["TimeoutSeconds"] = 1
    definition["States"]["M"]["ItemProcessor"]["States"] = {
        "Work": {"Type": "Wait", "Seconds": 3600, "End": True}
    }
    workflows = WorkflowEngine(engine, {}, lease_seconds=60)
    workflows.start(name="timeout-1", definition=definition, input=[1, 2])
    ended = settle(workflows, "timeout-1")
    assert ended["status"] == "TIMED_OUT"
    run = map_run_of(workflows, "timeout-1")
    assert run["status"] == "ABORTED" and run["executionCounts"]["aborted"] == 2


def test_the_api_describes_map_runs_to_their_tenant_only(database_url: str) -> None:
    settings = Settings(database_url=database_url)
    app = create_app(settings, handlers={"work": lambda item: item * 2})
    with TestClient(app, raise_server_exceptions=False) as client:
        lx = bearer(app, roles=("operations",), tenant="LX")
        other = bearer(app, roles=("operations",), tenant="BA")
        body = {"name": "api-map-1", "definition": flat(), "input": [1, 2]}
        started = client.post("/api/workflows/executions", json=body, headers=lx)
        assert started.status_code == 201, started.text
        url = "/api/workflows/executions/api-map-1"
        give_up = time.monotonic() + 60
        while client.get(url, headers=lx).json()["status"] == "RUNNING":
            assert time.monotonic() < give_up
            time.sleep(0.05)
        assert client.get(url, headers=lx).json()["output"] == [2, 4]

        runs = client.get(f"{url}/map-runs", headers=lx)
        assert runs.status_code == 200
        (run,) = runs.json()
        run_url = f"/api/workflows/map-runs/{run['mapRunId']}"
        described = client.get(run_url, headers=lx).json()
        assert described["status"] == "SUCCEEDED"
        assert described["executionCounts"]["succeeded"] == 2
        children = client.get(f"{run_url}/executions", headers=lx).json()
        assert sorted(c["output"] for c in children) == [2, 4]
        child = client.get(f"/api/workflows/executions/{children[0]['name']}", headers=lx)
        assert child.status_code == 200

        assert client.get(run_url, headers=other).status_code == 404
        assert client.get(f"{run_url}/executions", headers=other).status_code == 404
        assert client.get(f"{url}/map-runs", headers=other).status_code == 404
        assert client.get(run_url).status_code == 401
        listed = client.get("/api/workflows/executions", headers=other).json()
        assert listed == []
        mine = client.get(
            "/api/workflows/executions", params={"map_run": run["mapRunId"]}, headers=lx
        ).json()
        assert sorted(c["name"] for c in mine) == sorted(c["name"] for c in children)
        theirs = client.get(
            "/api/workflows/executions", params={"map_run": run["mapRunId"]}, headers=other
        )
        assert theirs.json() == []
        assert client.get("/api/workflows/map-runs/not-a-run", headers=lx).status_code == 422
        bad = client.get("/api/workflows/executions", params={"map_run": "x'--"}, headers=lx)
        assert bad.status_code == 422
        missing = "/api/workflows/map-runs/00000000-0000-0000-0000-000000000000"
        assert client.get(missing, headers=lx).status_code == 404
        nowhere = client.get("/api/workflows/executions/none/map-runs", headers=lx)
        assert nowhere.status_code == 404 and "'none' does not exist" in nowhere.text


def test_the_cli_describes_and_lists_map_runs(tmp_path: Path) -> None:
    env = {**os.environ, "JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}"}
    definition = flat()
    processor = definition["States"]["M"]["ItemProcessor"]
    processor.update({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})

    def jetbridge(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jetbridge.cli", "workflows", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    ran = jetbridge("run", "--name", "cli-map", "--definition", json.dumps(definition),
                    "--input", "[1, 2, 3]")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == [1, 2, 3]
    runs = jetbridge("list-map-runs", "--name", "cli-map")
    assert runs.returncode == 0, runs.stderr
    run_id = json.loads(runs.stdout)[0]["mapRunId"]
    described = json.loads(jetbridge("describe-map-run", "--map-run", run_id).stdout)
    assert described["executionCounts"]["succeeded"] == 3
    children = json.loads(jetbridge("list", "--map-run", run_id).stdout)
    assert sorted(child["name"] for child in children) == [f"{run_id}:{i}" for i in range(3)]
    missing = jetbridge("describe-map-run", "--map-run", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_the_object_store_directory_comes_from_the_settings(
    sqlite_url: str, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=sqlite_url, object_store_dir=tmp_path))
    assert app.state.platform.workflows.object_store == tmp_path


def test_child_executions_write_json_lines_flattened_from_a_pipe_delimited_object(
    engine: Engine, tmp_path: Path
) -> None:
    bucket = tmp_path / "ops"
    bucket.mkdir()
    (bucket / "crews.csv").write_text("flight|crew\nLX1|ann,bo\nLX2|cy\nLX3|\n")

    def work(item: Any) -> Any:
        if not item["crew"]:
            raise TaskFailed("Crew.Missing", f"no crew on {item['flight']}")
        return [{"flight": item["flight"], "member": name} for name in item["crew"].split(",")]

    definition = flat(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVDelimiter": "PIPE"},
            "Parameters": {"Bucket": "ops", "Key": "crews.csv"},
        },
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "ops", "Prefix": "crews"},
            "WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSONL"},
        },
        ToleratedFailureCount=1,
    )
    workflows = WorkflowEngine(engine, {"work": work}, lease_seconds=60, object_store=tmp_path)
    workflows.start(name="crews-1", definition=definition, input={})
    done = settle(workflows, "crews-1")
    assert done["status"] == "SUCCEEDED", done
    manifest = json.loads((bucket / done["output"]["ResultWriterDetails"]["Key"]).read_text())
    (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
    assert succeeded["Key"].endswith("/SUCCEEDED_0.jsonl")
    lines = (bucket / succeeded["Key"]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"flight": "LX1", "member": "ann"},
        {"flight": "LX1", "member": "bo"},
        {"flight": "LX2", "member": "cy"},
    ]
    (failed_file,) = manifest["ResultFiles"]["FAILED"]
    (failed,) = [
        json.loads(line) for line in (bucket / failed_file["Key"]).read_text().splitlines()
    ]
    assert (failed["Status"], failed["Error"]) == ("FAILED", "Crew.Missing")
    assert json.loads(failed["Input"]) == {"flight": "LX3", "crew": ""}


def test_writer_config_alone_shapes_the_output_of_durable_children(
    engine: Engine, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    workflows = WorkflowEngine(
        engine, {"work": lambda item: [item, item * 10]}, lease_seconds=60, object_store=store
    )
    definition = flat(ResultWriter={"WriterConfig": {"Transformation": "FLATTEN"}})
    workflows.start(name="shape-1", definition=definition, input=[1, 2])
    done = settle(workflows, "shape-1")
    assert done["status"] == "SUCCEEDED" and done["output"] == [1, 10, 2, 20]
    assert list(store.iterdir()) == []  # nothing written
