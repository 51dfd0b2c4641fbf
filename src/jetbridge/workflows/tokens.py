"""Task tokens of `.waitForTaskToken` tasks: HMAC-signed, stored with their deadlines, answered by
SendTaskSuccess / SendTaskFailure and kept alive by SendTaskHeartbeat.

A token's row holds its clocks (issued, last heartbeat, TimeoutSeconds deadline), so the
deadlines hold across restarts and an answer that comes too late is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from sqlalchemy import Connection, Engine, case, insert, select, true, update

from jetbridge.errors import Conflict, InvalidRequest, NotFound
from jetbridge.storage.schema import execution_events, executions, task_tokens
from jetbridge.workflows.asl.scope import Answer
from jetbridge.workflows.leases import append_events

# Executions parked by earlier versions waited with this lease and no stored token.
LEGACY_WAITING = 1e17
_KEY = re.compile(r"^\d+(\.\d+)*$")


class TaskTimedOut(Conflict):
    """An answer or heartbeat for a task that has already timed out (HTTP 409)."""


class TaskTokenStore:
    def __init__(self, engine: Engine, secret: str) -> None:
        self.engine = engine
        self.secret = secret

    def sign(self, execution: str, key: str) -> str:
        body = f"{execution}|{key}"
        digest = hmac.new(self.secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}|{digest}"

    def execution_of(self, token: str) -> str:
        """The execution a token belongs to; InvalidRequest unless this engine signed it."""
        body = token.rpartition("|")[0]
        execution, _, key = body.rpartition("|")
        if (
            not execution
            or not _KEY.match(key)
            or not hmac.compare_digest(self.sign(execution, key), token)
        ):
            raise InvalidRequest("task_token: not a token this engine issued")
        return execution

    def waiting(self, name: str) -> bool:
        """Whether a callback task of execution `name` waits for its answer."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(task_tokens.c.token)
                .where(task_tokens.c.execution == name, task_tokens.c.status == "WAITING")
                .limit(1)
            ).first()
        return found is not None

    def for_execution(self, name: str) -> ExecutionTokens:
        return ExecutionTokens(self, name)

    def answer(
        self, token: str, *, output: Any = None, error: str | None = None, cause: str = ""
    ) -> None:
        """SendTaskSuccess (`error` None) or SendTaskFailure: the execution resumes."""
        name = self.execution_of(token)
        with self.engine.begin() as conn:
            row = self._waiting(conn, name, token, legacy=True)
            if row is None:
                self._legacy_answer(conn, name, output, error, cause)
                return
            refusal = _refusal(conn, row, wake_up=True)
            if refusal is None:
                values: dict[str, Any] = (
                    {"status": "SUCCEEDED", "output": json.dumps(output)}
                    if error is None
                    else {"status": "FAILED", "error": error, "cause": cause}
                )
                conn.execute(update(task_tokens).where(task_tokens.c.token == token).values(values))
                wake(conn, name)
        if refusal is not None:
            raise refusal

    def heartbeat(self, token: str) -> None:
        """SendTaskHeartbeat: the task is alive; its HeartbeatSeconds clock starts again."""
        name = self.execution_of(token)
        with self.engine.begin() as conn:
            row = self._waiting(conn, name, token, legacy=False)
            assert row is not None
            refusal = _refusal(conn, row, wake_up=True)
            if refusal is None:
                conn.execute(
                    update(task_tokens)
                    .where(task_tokens.c.token == token)
                    .values(beat_at=time.time())
                )
        if refusal is not None:
            raise refusal

    def _waiting(self, conn: Connection, name: str, token: str, *, legacy: bool) -> Any:
        """The token's row (locked), checking that its execution still runs."""
        query = select(task_tokens).where(task_tokens.c.token == token)
        row = conn.execute(query.with_for_update()).first()
        execution = conn.execute(select(executions).where(executions.c.name == name)).first()
        if execution is None:
            raise NotFound(f"task_token: execution {name!r} does not exist")
        if execution.status != "RUNNING":
            raise Conflict(f"task_token: execution {name!r} is not running")
        if row is None:
            if legacy and (execution.lease_until or 0) >= LEGACY_WAITING:
                return None
            raise NotFound(f"task_token: no task of execution {name!r} waits for it")
        return row

    def _legacy_answer(
        self, conn: Connection, name: str, output: Any, error: str | None, cause: str
    ) -> None:
        """An execution parked by an earlier version: its answer goes straight into the history."""
        last = conn.execute(
            select(execution_events.c.body)
            .where(execution_events.c.execution == name)
            .order_by(execution_events.c.event_id.desc())
            .limit(1)
        ).scalar()
        previous = json.loads(last) if last else {"id": 0}
        kind, details = (
            ("TaskSucceeded", {"taskSucceededEventDetails": {"output": json.dumps(output)}})
            if error is None
            else ("TaskFailed", {"taskFailedEventDetails": {"error": error, "cause": cause}})
        )
        event = {
            "id": previous["id"] + 1,
            "previousEventId": previous["id"],
            "timestamp": previous.get("timestamp"),
            "type": kind,
            **details,
        }
        append_events(conn, name, [event])
        conn.execute(update(executions).where(executions.c.name == name).values(lease_until=None))


def _refusal(conn: Connection, row: Any, *, wake_up: bool) -> Exception | None:
    """Why an answer or heartbeat for this token is refused now, if it is; a token found past
    its deadline is marked timed out (and, with `wake_up`, its execution runs to see it)."""
    if row.status == "WAITING":
        timed_out = _expired(row, time.time())
        if timed_out is None:
            return None
        error, cause = timed_out
        conn.execute(
            update(task_tokens)
            .where(task_tokens.c.token == row.token, task_tokens.c.status == "WAITING")
            .values(status="TIMED_OUT", error=error, cause=cause)
        )
        if wake_up:
            wake(conn, row.execution)
        return TaskTimedOut(f"task_token: the task timed out ({error}: {cause})")
    if row.status == "TIMED_OUT":
        return TaskTimedOut(f"task_token: the task timed out ({row.error}: {row.cause})")
    if row.status == "ABORTED":
        return Conflict("task_token: the task was stopped")
    return Conflict("task_token: the task was answered already")


def _expired(row: Any, now: float) -> tuple[str, str] | None:
    if now >= row.timeout_at:
        seconds = round(row.timeout_at - row.issued_at)
        return "States.Timeout", f"State '{row.state}': no answer within {seconds} seconds"
    if row.heartbeat_seconds is not None and now >= row.beat_at + row.heartbeat_seconds:
        return (
            "States.HeartbeatTimeout",
            f"State '{row.state}': no heartbeat within {row.heartbeat_seconds} seconds",
        )
    return None


def wake(conn: Connection, name: str) -> None:
    """Something for the execution to see: run it now if parked, else tell its worker."""
    conn.execute(
        update(executions)
        .where(executions.c.name == name, executions.c.status == "RUNNING")
        .values(
            woken=True,
            parked=False,
            lease_until=case((executions.c.parked == true(), None), else_=executions.c.lease_until),
        )
    )


class ExecutionTokens:
    """The task tokens of one execution, as its interpreter sees them."""

    def __init__(self, store: TaskTokenStore, name: str) -> None:
        self.store = store
        self.name = name

    def token_for(self, key: str) -> str:
        return self.store.sign(self.name, key)

    def issue(self, token: str, *, state: str, timeout: int, heartbeat: int | None) -> None:
        now = time.time()
        with self.store.engine.begin() as conn:
            exists = conn.execute(
                select(task_tokens.c.token).where(task_tokens.c.token == token)
            ).first()
            if exists is None:
                conn.execute(
                    insert(task_tokens).values(
                        token=token,
                        execution=self.name,
                        state=state,
                        status="WAITING",
                        issued_at=now,
                        beat_at=now,
                        timeout_at=now + timeout,
                        heartbeat_seconds=heartbeat,
                    )
                )

    def poll(self, token: str) -> Answer | float:
        with self.store.engine.begin() as conn:
            row = conn.execute(
                select(task_tokens).where(task_tokens.c.token == token).with_for_update()
            ).first()
            if row is None:
                return Answer("failed", error="States.Runtime", cause="the task token is unknown")
            if row.status == "WAITING":
                if _refusal(conn, row, wake_up=False) is None:
                    deadline = float(row.timeout_at)
                    if row.heartbeat_seconds is not None:
                        deadline = min(deadline, row.beat_at + row.heartbeat_seconds)
                    return deadline
                row = conn.execute(select(task_tokens).where(task_tokens.c.token == token)).one()
        if row.status == "SUCCEEDED":
            return Answer("succeeded", output=json.loads(row.output))
        if row.status == "FAILED":
            return Answer("failed", error=row.error, cause=row.cause or "")
        if row.status == "TIMED_OUT":
            return Answer("timed_out", error=row.error, cause=row.cause or "")
        return Answer("failed", error="States.Runtime", cause="the task was stopped")

    def cancel(self, token: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                update(task_tokens)
                .where(task_tokens.c.token == token, task_tokens.c.status == "WAITING")
                .values(status="ABORTED")
            )
