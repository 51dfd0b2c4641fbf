"""Contract of the event log and delivery queue, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, func, select

from jetbridge.events.log import LogEntry, NewDelivery, SqlEventLog
from jetbridge.storage.schema import dead_letters, deliveries, events, jetstream_outbox


@pytest.fixture
def log(engine: Engine) -> SqlEventLog:
    return SqlEventLog(engine)


def entry(n: int, *, key: str | None = None, bus: str = "default") -> LogEntry:
    return LogEntry(
        bus=bus,
        event_id=f"e-{n}",
        source="test",
        type="thing.happened",
        tenant="t1",
        partition_key=key,
        event_time=1_700_000_000.0 + n,
        body=f'{{"id":"e-{n}"}}',
    )


def append(log: SqlEventLog, *entries: LogEntry) -> list[int | None]:
    with log.engine.begin() as conn:
        return log.append(conn, list(entries), now=time.time())


def enqueue(log: SqlEventLog, seq: int, *, key: str | None = None, target: str = "t") -> None:
    with log.engine.begin() as conn:
        log.enqueue(conn, [NewDelivery(seq, "default", "rule", target, key)], now=time.time())


def test_append_assigns_increasing_sequence_numbers(log: SqlEventLog) -> None:
    seqs = append(log, entry(1), entry(2), entry(3))
    assert all(isinstance(seq, int) for seq in seqs)
    assert seqs == sorted(seqs)  # type: ignore[type-var]
    assert len(set(seqs)) == 3


def test_duplicate_event_is_stored_once(log: SqlEventLog) -> None:
    first = append(log, entry(1))
    again = append(log, entry(1))
    assert first[0] is not None
    assert again == [None]
    with log.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1


def test_a_large_append_keeps_order_and_skips_what_was_stored(log: SqlEventLog) -> None:
    (before,) = append(log, entry(7))
    entries = [entry(n) for n in range(450)]  # more than one statement's rows
    entries.insert(100, entry(3))  # the same event twice in one append
    seqs = append(log, *entries)
    assert seqs[7] is None  # stored before
    assert seqs[100] is None  # the second entry of e-3
    fresh = [seq for seq in seqs if seq is not None]
    assert len(fresh) == 449 and fresh == sorted(fresh) and fresh[0] > before  # type: ignore[operator]
    with log.engine.connect() as conn:
        stored = log.read(conn, bus="default", after=0, limit=1000)
    assert [e.event_id for e in stored] == ["e-7"] + [f"e-{n}" for n in range(450) if n != 7]


def test_a_batch_enqueue_puts_targets_on_the_outbox_and_the_rest_in_the_queue(
    engine: Engine,
) -> None:
    """Distributed mode: deliveries of events waiting in the outbox travel with them (each
    event's targets in one JSON list); those of an event no longer there stay in the queue."""
    log = SqlEventLog(engine, outbox=True)
    first, second = append(log, entry(1), entry(2))
    assert first is not None and second is not None
    with engine.begin() as conn:
        conn.execute(jetstream_outbox.delete().where(jetstream_outbox.c.event_seq == first))
        log.enqueue(
            conn,
            [
                NewDelivery(first, "default", "rule", "a", None),
                NewDelivery(second, "default", "rule", "a", None),
                NewDelivery(second, "default", "rule", "b", None),
            ],
            now=time.time(),
        )
    with engine.connect() as conn:
        outbox = conn.execute(select(jetstream_outbox.c.event_seq, jetstream_outbox.c.targets))
        queued = conn.execute(select(deliveries.c.event_seq, deliveries.c.target_id)).all()
        assert [tuple(row) for row in outbox] == [(second, '[["rule", "a"], ["rule", "b"]]')]
    assert [tuple(row) for row in queued] == [(first, "a")]


def test_read_returns_events_after_a_position_in_order(log: SqlEventLog) -> None:
    seqs = append(log, *(entry(n) for n in range(5)))
    with log.engine.connect() as conn:
        later = log.read(conn, bus="default", after=seqs[1] or 0, limit=10)
        other_bus = log.read(conn, bus="other", after=0, limit=10)
    assert [e.event_id for e in later] == ["e-2", "e-3", "e-4"]
    assert other_bus == []


def test_rolled_back_transaction_leaves_no_event_and_no_delivery(log: SqlEventLog) -> None:
    with pytest.raises(RuntimeError), log.engine.begin() as conn:
        (seq,) = log.append(conn, [entry(1)], now=time.time())
        assert seq is not None
        log.enqueue(conn, [NewDelivery(seq, "default", "rule", "t", None)], now=time.time())
        raise RuntimeError("the state change failed")
    with log.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar_one() == 0


def test_claim_leases_deliveries_until_the_lease_expires(log: SqlEventLog) -> None:
    (seq,) = append(log, entry(1))
    assert seq is not None
    enqueue(log, seq)
    now = time.time()
    claimed = log.claim(limit=10, lease_seconds=30, now=now)
    assert [d.body for d in claimed] == ['{"id":"e-1"}']
    assert log.claim(limit=10, lease_seconds=30, now=now + 1) == []
    reclaimed = log.claim(limit=10, lease_seconds=30, now=now + 31)
    assert [d.id for d in reclaimed] == [claimed[0].id]


def test_completed_delivery_is_gone(log: SqlEventLog) -> None:
    (seq,) = append(log, entry(1))
    assert seq is not None
    enqueue(log, seq)
    (delivery,) = log.claim(limit=10, lease_seconds=30, now=time.time())
    with log.engine.begin() as conn:
        log.complete(conn, delivery)
    assert log.pending() == 0
    assert log.claim(limit=10, lease_seconds=30, now=time.time() + 100) == []


def test_a_lane_hands_out_only_its_oldest_delivery(log: SqlEventLog) -> None:
    seqs = append(log, entry(1, key="BA123"), entry(2, key="BA123"), entry(3, key="LH1"))
    for seq, key in zip(seqs, ["BA123", "BA123", "LH1"], strict=True):
        assert seq is not None
        enqueue(log, seq, key=key)
    now = time.time()
    first = log.claim(limit=10, lease_seconds=30, now=now)
    assert sorted(d.body for d in first) == ['{"id":"e-1"}', '{"id":"e-3"}']
    head = next(d for d in first if d.body == '{"id":"e-1"}')
    with log.engine.begin() as conn:
        log.complete(conn, head)
    second = log.claim(limit=10, lease_seconds=30, now=now)
    assert [d.body for d in second] == ['{"id":"e-2"}']


def test_a_retried_head_blocks_its_lane_until_due(log: SqlEventLog) -> None:
    seqs = append(log, entry(1, key="k"), entry(2, key="k"))
    for seq in seqs:
        assert seq is not None
        enqueue(log, seq, key="k")
    now = time.time()
    (head,) = log.claim(limit=10, lease_seconds=30, now=now)
    log.retry(head, error="boom", at=now + 60)
    assert log.claim(limit=10, lease_seconds=30, now=now + 1) == []
    (again,) = log.claim(limit=10, lease_seconds=30, now=now + 61)
    assert again.id == head.id
    assert again.attempts == 1


def test_different_targets_of_one_event_are_independent_lanes(log: SqlEventLog) -> None:
    (seq,) = append(log, entry(1, key="k"))
    assert seq is not None
    enqueue(log, seq, key="k", target="a")
    enqueue(log, seq, key="k", target="b")
    claimed = log.claim(limit=10, lease_seconds=30, now=time.time())
    assert len(claimed) == 2


def test_dead_letter_keeps_event_error_attempts_and_time(log: SqlEventLog) -> None:
    (seq,) = append(log, entry(1))
    assert seq is not None
    enqueue(log, seq)
    (delivery,) = log.claim(limit=10, lease_seconds=30, now=time.time())
    log.dead_letter(delivery, error="HTTP 500", now=1234.5)
    assert log.pending() == 0
    with log.engine.connect() as conn:
        row = conn.execute(select(dead_letters)).one()
    assert (row.body, row.error, row.attempts, row.failed_at) == (
        '{"id":"e-1"}',
        "HTTP 500",
        1,
        1234.5,
    )


def test_concurrent_claimers_never_share_a_delivery(log: SqlEventLog) -> None:
    seqs = append(log, *(entry(n) for n in range(200)))
    with log.engine.begin() as conn:
        items = [NewDelivery(seq or 0, "default", "rule", "t", None) for seq in seqs]
        log.enqueue(conn, items, now=time.time())
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            batch = log.claim(limit=7, lease_seconds=60, now=time.time())
            if not batch:
                return
            with lock:
                claimed.extend(d.id for d in batch)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 200
    assert len(set(claimed)) == 200
