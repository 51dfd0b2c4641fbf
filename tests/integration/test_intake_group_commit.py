"""Group commit of concurrent puts, on SQLite and PostgreSQL: puts arriving together share one
transaction, each is answered with its own outcome, and one that fails is refused alone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy

from jetbridge.app import build_platform, create_app
from jetbridge.config import Settings
from jetbridge.errors import NotFound
from jetbridge.events import registry
from jetbridge.events.envelope import cloud_event_from_dict
from jetbridge.events.specs import BusSpec, RuleSpec
from jetbridge.ops.identity import authenticator, store
from support import aio
from support.auth import api_key
from support.servers import serve_app


def event(name: str, partition: str = "BA0001") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": name,
        "source": "test.flights",
        "type": "flight.gate_changed",
        "partitionkey": partition,
        "data": {"gate": name},
    }


@pytest.fixture
def platform(database_url: str) -> Iterator[Any]:
    made = build_platform(Settings(database_url=database_url, run_workers=False))
    made.prepare()
    with made.backbone.transaction() as conn:
        registry.create_bus(conn, spec=BusSpec(name="airline-x"), tenant=None)
    yield made


def stored_ids(platform: Any, bus: str = "default") -> list[str]:
    with platform.backbone.reading() as conn:
        found = platform.backbone.log.read(conn, bus=bus, after=0, limit=1000)
    return [e.event_id for e in found if e.event_id.startswith("g-")]


def test_concurrent_puts_share_transactions_in_arrival_order(platform: Any) -> None:
    intake = platform.backbone.intake

    async def put_all() -> list[Any]:
        puts = [
            intake.put(
                bus="default",
                events=[cloud_event_from_dict(event(f"g-{n}"))],
                may_act_for=lambda owner: True,
            )
            for n in range(40)
        ]
        return await asyncio.gather(*puts)

    answers = aio.run(put_all())
    assert [a[0].event_id for a in answers] == [f"g-{n}" for n in range(40)]
    seqs = [a[0].seq for a in answers]
    assert all(seq is not None for seq in seqs)
    assert seqs == sorted(seqs)  # one partition: the order they were put in
    assert intake.commits < 40
    assert stored_ids(platform) == [f"g-{n}" for n in range(40)]


def test_a_failing_put_is_refused_alone(platform: Any) -> None:
    intake = platform.backbone.intake

    async def put_all() -> list[Any]:
        puts = [
            intake.put(
                bus="nope" if n == 3 else "airline-x" if n == 5 else "default",
                events=[cloud_event_from_dict(event(f"g-{n}"))],
                # The caller may not act for airline-x's owner: refused as if it did not exist.
                may_act_for=lambda owner, n=n: owner is None and n != 5,
            )
            for n in range(8)
        ]
        return await asyncio.gather(*puts, return_exceptions=True)

    answers = aio.run(put_all())
    assert isinstance(answers[3], NotFound) and "'nope'" in str(answers[3])
    assert isinstance(answers[5], NotFound) and "'airline-x'" in str(answers[5])
    kept = [n for n in range(8) if n not in {3, 5}]
    for n in kept:
        assert answers[n][0].event_id == f"g-{n}" and answers[n][0].seq is not None
    assert stored_ids(platform) == [f"g-{n}" for n in kept]
    assert stored_ids(platform, "airline-x") == []


def test_the_same_event_put_twice_together_is_stored_once(platform: Any) -> None:
    intake = platform.backbone.intake

    async def put_twice() -> list[Any]:
        puts = [
            intake.put(
                bus="default",
                events=[cloud_event_from_dict(event("g-same"))],
                may_act_for=lambda owner: True,
            )
            for _ in range(2)
        ]
        return await asyncio.gather(*puts)

    first, second = aio.run(put_twice())
    assert first[0].seq is not None and second[0].seq is None
    assert stored_ids(platform) == ["g-same"]


def test_concurrent_http_puts_each_get_their_own_answer(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with serve_app(app) as base:
        key = api_key(app, roles=["service"], tenant="XY")
        operator = api_key(app)
        headers = {"Authorization": f"Bearer {operator}"}

        async def put_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                other = {"Authorization": f"Bearer {key}"}

                async def put(n: int) -> httpx.Response:
                    # One caller of another tenant among the operator's puts: refused alone.
                    return await client.post(
                        "/api/buses/default/events",
                        json={"entries": [event(f"g-{n}", partition=f"P{n % 4}")]},
                        headers=other if n == 7 else headers,
                    )

                # One invalid entry among valid ones: refused alone, naming what is wrong.
                bad = client.post(
                    "/api/buses/default/events",
                    json={"entries": [{**event("g-bad"), "specversion": "0.3"}]},
                    headers=headers,
                )
                return await asyncio.gather(bad, *(put(n) for n in range(60)))

        bad, *answers = aio.run(put_all())
        assert bad.status_code == 400 and "specversion" in bad.text
        assert answers[7].status_code == 404
        for n, answer in enumerate(answers):
            if n == 7:
                continue
            assert answer.status_code == 200, answer.text
            (entry,) = answer.json()["entries"]
            assert entry["event_id"] == f"g-{n}" and entry["duplicate"] is False
        platform = app.state.platform
        assert sorted(stored_ids(platform)) == sorted(f"g-{n}" for n in range(60) if n != 7)
        assert platform.backbone.intake.commits < 59


def test_a_key_revoked_after_a_put_is_refused_at_the_next(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with serve_app(app) as base:
        made_by = {"Authorization": f"Bearer {api_key(app)}"}
        made = httpx.post(
            f"{base}/api/api-keys", json={"name": "feed", "roles": ["admin"]}, headers=made_by
        ).json()
        headers = {"Authorization": f"Bearer {made['key']}"}
        url = f"{base}/api/buses/default/events"
        first = httpx.post(url, json={"entries": [event("g-1")]}, headers=headers)
        assert first.status_code == 200, first.text
        revoked = httpx.post(f"{base}/api/api-keys/{made['key_id']}/revoke", headers=made_by)
        assert revoked.status_code == 200
        refused = httpx.post(url, json={"entries": [event("g-2")]}, headers=headers)
        assert refused.status_code == 401
        assert stored_ids(app.state.platform) == ["g-1"]


@pytest.mark.parametrize("valid", [True, False])
def test_puts_arriving_while_their_key_is_checked_share_that_check(
    database_url: str, monkeypatch: pytest.MonkeyPatch, valid: bool
) -> None:
    """Every put needs its key checked in full (the check is believed for no time here) and
    each check takes a while: the puts arriving meanwhile wait for the one check under way
    instead of querying the database one each."""
    app = create_app(Settings(database_url=database_url, run_workers=False))
    checks: list[str] = []
    real_check = store.check_api_key

    def slow_check(conn: Any, presented: str) -> Any:
        checks.append(presented)
        time.sleep(0.5)
        return real_check(conn, presented)

    with serve_app(app) as base:
        key = api_key(app) if valid else store.KEY_PREFIX + "0" * 40
        monkeypatch.setattr(authenticator, "KEY_CHECK_SECONDS", 0.0)
        monkeypatch.setattr(store, "check_api_key", slow_check)

        async def put_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/api/buses/default/events",
                            json={"entries": [event(f"g-{n}")]},
                            headers={"Authorization": f"Bearer {key}"},
                        )
                        for n in range(40)
                    )
                )

        answers = aio.run(put_all())
        assert {answer.status_code for answer in answers} == ({200} if valid else {401})
        # Without sharing, 40; the requests are all sent well within a few checks' time.
        assert 1 <= len(checks) <= 8, len(checks)
        expected = sorted(f"g-{n}" for n in range(40)) if valid else []
        assert sorted(stored_ids(app.state.platform)) == expected


def test_a_large_put_is_validated_off_the_loop_with_the_same_answers(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, run_workers=False))
    with serve_app(app) as base:
        headers = {"Authorization": f"Bearer {api_key(app)}"}
        url = f"{base}/api/buses/default/events"
        entries = [{**event(f"g-{n}"), "data": {"note": "x" * 300}} for n in range(100)]
        bad = [*entries[:57], {**entries[57], "source": ""}, *entries[58:]]
        refused = httpx.post(url, json={"entries": bad}, headers=headers)
        assert refused.status_code == 400 and "entries[57]" in refused.text, refused.text
        assert stored_ids(app.state.platform) == []
        # Sent in chunks, with no Content-Length at all.
        body = json.dumps({"entries": entries}).encode()
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        taken = httpx.post(
            url, content=chunks, headers={**headers, "Content-Type": "application/json"}
        )
        assert taken.status_code == 200, taken.text
        assert [e["event_id"] for e in taken.json()["entries"]] == [f"g-{n}" for n in range(100)]
        assert stored_ids(app.state.platform) == [f"g-{n}" for n in range(100)]


def test_puts_together_are_appended_in_one_statement_per_bus(platform: Any) -> None:
    intake = platform.backbone.intake
    spec = RuleSpec.model_validate(
        {
            "name": "gates",
            "event_pattern": {"source": ["test.flights"], "detail": {"gate": ["g-2", "g-5"]}},
            "targets": [
                {"id": "one", "kind": "http", "url": "http://127.0.0.1:9/one"},
                {"id": "two", "kind": "http", "url": "http://127.0.0.1:9/two"},
            ],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="airline-x", spec=spec, handlers=platform.backbone.handlers)
    appends: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            appends.append(statement)

    sqlalchemy.event.listen(platform.engine, "before_cursor_execute", count)
    try:

        async def put_all() -> list[Any]:
            puts = [
                intake.put(
                    bus="airline-x" if n % 2 else "default",
                    # Each put holds two events; the fourth repeats the first's second event.
                    events=[
                        cloud_event_from_dict(event(f"g-{n}")),
                        cloud_event_from_dict(event("g-0b" if n == 3 else f"g-{n}b")),
                    ],
                    may_act_for=lambda owner: True,
                )
                for n in range(8)
            ]
            return await asyncio.gather(*puts)

        answers = aio.run(put_all())
    finally:
        sqlalchemy.event.remove(platform.engine, "before_cursor_execute", count)
    assert len(appends) <= 2 * intake.commits < 16  # one statement per bus, not per request
    for n, answer in enumerate(answers):
        assert [p.event_id for p in answer] == [f"g-{n}", "g-0b" if n == 3 else f"g-{n}b"]
        assert answer[0].seq is not None
    # g-0b went on the default bus with put 0, so put 3 (on airline-x) stores its own copy.
    assert answers[3][1].seq is not None
    # The rule on airline-x matches g-5 alone (g-2 went on the default bus): its two targets.
    assert [(p.event_id, p.deliveries) for a in answers for p in a if p.deliveries] == [("g-5", 2)]
    assert stored_ids(platform, "airline-x") == [
        i for n in range(1, 8, 2) for i in (f"g-{n}", "g-0b" if n == 3 else f"g-{n}b")
    ]
    with platform.backbone.reading() as conn:
        queued = conn.execute(sqlalchemy.text("SELECT count(*) FROM deliveries")).scalar()
    assert queued == 2


def test_the_same_event_in_two_puts_together_is_stored_once(platform: Any) -> None:
    intake = platform.backbone.intake

    async def put_all() -> list[Any]:
        puts = [
            intake.put(
                bus="default",
                events=[cloud_event_from_dict(event(name)) for name in names],
                may_act_for=lambda owner: True,
            )
            for names in (["g-a", "g-b"], ["g-c", "g-a"], ["g-d"])
        ]
        return await asyncio.gather(*puts)

    first, second, third = aio.run(put_all())
    assert first[0].seq is not None and first[1].seq is not None
    assert second[0].seq is not None and second[1].seq is None  # g-a: stored by the first
    assert third[0].seq is not None
    assert stored_ids(platform) == ["g-a", "g-b", "g-c", "g-d"]


def test_the_delivery_worker_is_woken_only_when_a_put_enqueued_deliveries(platform: Any) -> None:
    intake = platform.backbone.intake
    spec = RuleSpec.model_validate(
        {
            "name": "gates",
            "event_pattern": {"detail": {"gate": ["g-match"]}},
            "targets": [{"id": "one", "kind": "http", "url": "http://127.0.0.1:9/one"}],
        }
    )
    with platform.backbone.transaction() as conn:
        registry.put_rule(conn, bus="default", spec=spec, handlers=platform.backbone.handlers)
    woken: list[str] = []
    committed: list[str] = []
    platform.backbone.delivery_listeners.append(lambda: woken.append("deliveries"))
    platform.backbone.listeners.append(lambda: committed.append("commit"))

    def put(name: str) -> Any:
        events = [cloud_event_from_dict(event(name))]
        return aio.run(intake.put(bus="default", events=events, may_act_for=lambda owner: True))

    assert put("g-other")[0].deliveries == 0
    assert woken == [] and committed == ["commit"]  # live streams still hear of the event
    assert put("g-match")[0].deliveries == 1
    assert woken == ["deliveries"] and committed == ["commit", "commit"]
