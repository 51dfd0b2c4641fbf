"""What follows a failed delivery, by its target's retry policy (both delivery paths share it)."""

from __future__ import annotations

import random

import pytest

from jetbridge.events.delivery import RetryTiming, decide
from jetbridge.events.jetstream import SubjectScheme, token, untoken
from jetbridge.events.log import Delivery
from jetbridge.events.routing import RouteTarget
from jetbridge.events.specs import TargetSpec

NOW = 1_800_000_000.0


def target(attempts: int = 3, age: int = 3600, dead_letter: bool = True) -> RouteTarget:
    spec = TargetSpec.model_validate(
        {
            "id": "t",
            "kind": "python",
            "handler": "h",
            "retry_policy": {"maximum_retry_attempts": attempts, "maximum_event_age_seconds": age},
            "dead_letter": dead_letter,
        }
    )
    return RouteTarget(spec, None)


def delivery(attempts: int, age: float = 0.0) -> Delivery:
    return Delivery(1, 1, "default", "r", "t", attempts, NOW - age, "{}")


def test_retries_back_off_exponentially_with_jitter_until_the_attempts_are_spent() -> None:
    timing = RetryTiming(base_seconds=1.0, max_backoff_seconds=3.0)
    rng = random.Random(7)
    delays = [decide(delivery(n), target(), True, NOW, timing, rng).retry_in for n in range(3)]
    assert delays[0] is not None and 0.5 <= delays[0] <= 1.0
    assert delays[1] is not None and 1.0 <= delays[1] <= 2.0
    assert delays[2] is not None and 1.5 <= delays[2] <= 3.0  # capped at the ceiling
    spent = decide(delivery(3), target(), True, NOW, timing, rng)
    assert (spent.retry_in, spent.reason, spent.dead_letter) == (None, "retries exhausted", True)


@pytest.mark.parametrize(
    ("failed", "retryable", "policy", "reason", "dead_letter"),
    [
        (delivery(0, age=3600), True, target(), "too old", True),
        (delivery(0), False, target(), "not retryable", True),
        (delivery(0), True, target(attempts=0, dead_letter=False), "retries exhausted", False),
    ],
)
def test_a_delivery_is_given_up_when_too_old_not_retryable_or_spent(
    failed: Delivery, retryable: bool, policy: RouteTarget, reason: str, dead_letter: bool
) -> None:
    outcome = decide(failed, policy, retryable, NOW, RetryTiming(), random.Random(1))
    assert (outcome.retry_in, outcome.reason, outcome.dead_letter) == (None, reason, dead_letter)


@pytest.mark.parametrize("name", ["default", "LX.318", "a_b", "é*> x", "_", "__5F"])
def test_subject_tokens_turn_back_into_their_names(name: str) -> None:
    assert untoken(token(name)) == name


def test_one_partition_key_keeps_one_shard_and_keys_spread_over_all() -> None:
    scheme = SubjectScheme("jb", shards=4)
    assert {scheme.shard("LX.318", f"e{n}") for n in range(20)} == {scheme.shard("LX.318", "x")}
    assert {scheme.shard(f"LX.{n}", "e") for n in range(200)} == {0, 1, 2, 3}
    assert scheme.delivery_subject("default", "r.1", "t", 2) == "jb.deliver.default.r_2E1.t.2"
