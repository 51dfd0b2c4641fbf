"""Seat choice, seat plans, failures and validation errors in words: plain domain code."""

from __future__ import annotations

import pytest

from jetbridge.api.wording import PATTERN_WORDS, in_words
from jetbridge.booking.presentation import failure_message, moment
from jetbridge.booking.seating import in_chosen_order
from jetbridge.booking.seatmap import check_choice, seat_plan


def test_nobody_choosing_is_no_choice_and_everybody_choosing_is_kept_in_order() -> None:
    assert check_choice("A320", "economy", [None, None]) is None
    assert check_choice("A320", "economy", ["12D", "7C"]) == ["12D", "7C"]
    assert check_choice("B77W", "premium", ["10A"]) == ["10A"]


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        (["9A", None], "passengers[1].seat: choose a seat for every passenger, or for none"),
        (["1A"], "passengers[0].seat: 1A is in business, not in the economy cabin booked"),
        (["5G"], "passengers[0].seat: there is no seat 5G on this aircraft"),
        (["9A", "9A"], "passengers[1].seat: 9A is already chosen for passenger 1"),
    ],
)
def test_a_wrong_choice_names_the_passenger(seats: list[str | None], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_choice("A320", "economy", seats)


def test_the_plan_shows_the_sold_cabins_with_taken_seats() -> None:
    plan = seat_plan("A320", cabins={"economy"}, taken={"5A"})
    assert [cabin["cabin"] for cabin in plan] == ["economy"]
    rows = plan[0]["rows"]
    assert isinstance(rows, list)
    assert rows[0]["seats"][0] == {"seat": "5A", "letter": "A", "taken": True}
    assert rows[0]["seats"][1]["taken"] is False
    assert len(rows) == 26


def test_passengers_get_the_seats_they_chose_whatever_order_the_hold_lists() -> None:
    assert in_chosen_order(["10A", "9B"], ["9B", "10A"]) == ["9B", "10A"]
    assert in_chosen_order(["5A", "5B"], [None, None]) == ["5A", "5B"]


def test_times_are_shown_at_the_airport_with_its_zone() -> None:
    winter = moment(1_795_000_000.0, "ZRH")  # 2026-11-18 08:26:40 UTC
    assert winter["local"].endswith("+01:00")
    assert (winter["zone"], winter["abbreviation"]) == ("Europe/Zurich", "CET")
    assert moment(1_795_000_000.0, "JFK")["abbreviation"] == "EST"


@pytest.mark.parametrize(
    ("failure", "start"),
    [
        ("the card was declined (insufficient_funds)", "Your card was declined: the account"),
        ("the card was declined (card_declined)", "Your card was declined by the bank"),
        ("only 0 economy seat(s) left on LX0100-2026-12-01, 2 requested", "The seats you"),
        (None, None),
    ],
)
def test_failures_read_in_plain_words(failure: str | None, start: str | None) -> None:
    message = failure_message(failure)
    assert message == start if start is None else str(message).startswith(start)


def test_every_pattern_has_words_and_no_message_shows_a_pattern() -> None:
    for pattern, words in PATTERN_WORDS.items():
        item = {"type": "string_pattern_mismatch", "ctx": {"pattern": pattern}, "msg": pattern}
        assert in_words(item) == f"should be {words}"
        assert "^" not in words and "\\" not in words
    unknown = {"type": "string_pattern_mismatch", "ctx": {"pattern": "^x$"}, "msg": "^x$"}
    assert in_words(unknown) == "should be text in the documented form"
    assert in_words({"type": "missing", "msg": "Field required"}) == "is required"
