"""The jetbridge command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def jetbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_test_pattern_exit_codes(tmp_path: Path) -> None:
    pattern = tmp_path / "pattern.json"
    pattern.write_text(json.dumps({"detail": {"gate": [{"prefix": "A"}]}}))
    matching = json.dumps({"detail": {"gate": "A12"}})
    other = json.dumps({"detail": {"gate": "B3"}})
    assert (
        jetbridge(
            "events", "test-pattern", "--pattern", str(pattern), "--event", matching
        ).returncode
        == 0
    )
    assert (
        jetbridge("events", "test-pattern", "--pattern", str(pattern), "--event", other).returncode
        == 1
    )
    invalid = jetbridge(
        "events", "test-pattern", "--pattern", '{"detail": {"gate": "A"}}', "--event", other
    )
    assert invalid.returncode == 2
    assert "detail.gate" in invalid.stderr


def test_test_pattern_reports_unreadable_input(tmp_path: Path) -> None:
    result = jetbridge(
        "events", "test-pattern", "--pattern", str(tmp_path / "missing.json"), "--event", "{}"
    )
    assert result.returncode == 2
    assert "--pattern" in result.stderr
    broken = jetbridge("events", "test-pattern", "--pattern", "{", "--event", "{}")
    assert broken.returncode == 2
    assert "line 1" in broken.stderr


TESTS = str(Path(__file__).parents[1])


def test_rules_put_events_and_dead_letters_from_the_shell(tmp_path: Path) -> None:
    env = {
        "JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "JETBRIDGE_HANDLER_PLUGINS": "support.handlers",
        "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
    }
    rule = {
        "name": "gates",
        "event_pattern": {"source": ["cli"]},
        "targets": [{"id": "t", "kind": "python", "handler": "record"}],
    }
    put = jetbridge("rules", "put", "--spec", json.dumps(rule), env=env)
    assert put.returncode == 0, put.stderr
    listed = json.loads(jetbridge("rules", "list", env=env).stdout)
    assert "gates" in [r["name"] for r in listed]
    published = jetbridge(
        "events", "put", json.dumps({"specversion": "1.0", "source": "cli", "type": "x"}), env=env
    )
    assert json.loads(published.stdout)[0]["deliveries"] == 1
    bad = jetbridge(
        "rules", "put", "--spec", json.dumps({**rule, "event_pattern": {"source": "cli"}}), env=env
    )
    assert bad.returncode == 2
    assert "source" in bad.stderr
    assert json.loads(jetbridge("dlq", "list", env=env).stdout) == []
    unnamed = jetbridge("dlq", "discard", env=env)
    assert unnamed.returncode != 0 and "--id" in unnamed.stderr
    unknown = jetbridge("dlq", "discard", "--id", "5", env=env)
    assert unknown.returncode != 0 and "dead letter 5 does not exist" in unknown.stderr


def test_the_shell_names_no_code_and_claims_no_platform_source(tmp_path: Path) -> None:
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    rule = {
        "name": "shell",
        "event_pattern": {"source": ["cli"]},
        "targets": [{"id": "t", "kind": "python", "handler": "os:system"}],
    }
    refused = jetbridge("rules", "put", "--spec", json.dumps(rule), env=env)
    assert refused.returncode == 2
    assert "targets[0].handler" in refused.stderr
    assert "'os:system'" in refused.stderr
    forged = {"specversion": "1.0", "source": "jetbridge.flights", "type": "flight.updated"}
    published = jetbridge("events", "put", json.dumps(forged), env=env)
    assert published.returncode == 2
    assert "entries[0]" in published.stderr
    assert "jetbridge.flights" in published.stderr
    plugin = jetbridge("rules", "list", env={**env, "JETBRIDGE_HANDLER_PLUGINS": "os:system"})
    assert plugin.returncode != 0
    assert "JETBRIDGE_HANDLER_PLUGINS" in plugin.stderr


def test_workflows_from_the_shell(tmp_path: Path) -> None:
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}"}
    definition = tmp_path / "machine.json"
    definition.write_text(
        json.dumps(
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
        )
    )
    ran = jetbridge(
        "workflows",
        "run",
        "--name",
        "one",
        "--definition",
        str(definition),
        "--input",
        '{"x": 1}',
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["output"] == {"ok": True}
    history = json.loads(jetbridge("workflows", "history", "--name", "one", env=env).stdout)
    assert history[-1]["type"] == "ExecutionSucceeded"
    assert [e["name"] for e in json.loads(jetbridge("workflows", "list", env=env).stdout)] == [
        "one"
    ]
    bad = jetbridge(
        "workflows",
        "start",
        "--name",
        "two",
        "--definition",
        '{"StartAt": "Z", "States": {}}',
        env=env,
    )
    assert bad.returncode == 2
    assert "States" in bad.stderr
    missing = jetbridge("workflows", "describe", "--name", "nope", env=env)
    assert missing.returncode == 2
    failing = jetbridge(
        "workflows",
        "run",
        "--name",
        "three",
        "--definition",
        '{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Broken"}}}',
        env=env,
    )
    assert failing.returncode == 1, failing.stderr
    assert json.loads(failing.stdout)["status"] == "FAILED"
    unknown = jetbridge("workflows", "list", "--status", "DONE", env=env)
    assert unknown.returncode == 2
    assert "invalid choice: 'DONE'" in unknown.stderr


def test_bad_settings_are_reported_in_words(tmp_path: Path) -> None:
    env = {
        "JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "JETBRIDGE_PORT": "eighty",
        "JETBRIDGE_METRICS_TOKEN": "short",
    }
    answer = jetbridge("buses", "list", env=env)
    assert answer.returncode == 2
    assert "JETBRIDGE_PORT: Input should be a valid integer" in answer.stderr
    assert "JETBRIDGE_METRICS_TOKEN: JETBRIDGE_METRICS_TOKEN must be at least 32" in answer.stderr
    assert "errors.pydantic.dev" not in answer.stderr
    assert "eighty" not in answer.stderr
    assert "Traceback" not in answer.stderr


def test_callback_tasks_answered_from_the_shell(tmp_path: Path) -> None:
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'wf.db'}"}
    forged = jetbridge("workflows", "send-task-heartbeat", "--task-token", "a|1|b", env=env)
    assert forged.returncode == 2
    assert "task_token: not a token this engine issued" in forged.stderr
    missing = jetbridge("workflows", "send-task-success", env=env)
    assert missing.returncode == 2
    assert "--task-token is required" in missing.stderr
    no_error = jetbridge("workflows", "send-task-failure", "--task-token", "a|1|b", env=env)
    assert no_error.returncode == 2
    assert "--error is required" in no_error.stderr


def test_schedule_import_publishes_an_ssim_file_once(tmp_path: Path) -> None:
    from support.ssim import leg, segment, ssim_file

    winter = tmp_path / "winter.ssim"
    winter.write_text(ssim_file(leg(first="01DEC26", last="03DEC26"), segment("010", "LH 5790")))
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'jb.db'}"}
    dry = jetbridge("schedule", "import", str(winter), "--currency", "CHF", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    legs = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [x["flight_key"] for x in legs] == [f"LX0318-2026-12-0{d}-ZRH-LHR" for d in (1, 2, 3)]
    assert legs[0]["codeshares"] == ["LH5790"] and legs[0]["currency"] == "CHF"
    first = jetbridge("schedule", "import", str(winter), "--currency", "CHF", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["sellable_added"] == 3
    again = jetbridge("schedule", "import", str(winter), "--currency", "CHF", env=env)
    assert json.loads(again.stdout) | {"flight_keys": []} == {
        "legs": 3, "sellable_added": 0, "hub_changed": 0, "flight_keys": [],
    }  # fmt: skip


def test_schedule_import_refuses_a_malformed_file_whole(tmp_path: Path) -> None:
    from support.ssim import leg, ssim_file

    broken = tmp_path / "broken.ssim"
    broken.write_text(ssim_file(leg(), leg(number="0320", std="2560")))
    env = {"JETBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'jb.db'}"}
    result = jetbridge("schedule", "import", str(broken), env=env)
    assert result.returncode == 2
    assert "broken.ssim:line 5, column 40: time must be HHMM at '2560'" in result.stderr
    missing = jetbridge("schedule", "import", str(tmp_path / "none.ssim"), env=env)
    assert missing.returncode == 2 and "none.ssim" in missing.stderr


def test_the_data_directory_comes_from_settings_not_the_working_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    data_home = tmp_path / "data-home"
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    for name in ("JETBRIDGE_DATABASE_URL", "JETBRIDGE_DATA_DIR"):
        env.pop(name, None)
    first = subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "buses", "list"],
        capture_output=True, text=True, env=env, cwd=elsewhere, timeout=60,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    database = data_home / "jetbridge" / "jetbridge.db"
    assert f"warning: no database at {database}; starting an empty one" in first.stderr
    assert database.exists()
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran
    again = subprocess.run(
        [sys.executable, "-m", "jetbridge.cli", "buses", "list"],
        capture_output=True, text=True, env=env, cwd=elsewhere, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
