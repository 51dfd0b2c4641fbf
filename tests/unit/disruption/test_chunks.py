"""The chunks the disruption workflow takes bookings in: small first, then growing."""

from __future__ import annotations

from jetbridge.disruption.tasks import chunks


def test_chunks_start_small_double_and_stop_growing_at_the_most() -> None:
    items = [str(n) for n in range(300)]
    taken = list(chunks(items, first=5, most=50))
    assert [len(chunk) for chunk in taken] == [5, 10, 20, 40, 50, 50, 50, 50, 25]
    assert [item for chunk in taken for item in chunk] == items  # each once, in order


def test_no_items_make_no_chunk_and_a_few_make_one() -> None:
    assert list(chunks([], first=5, most=50)) == []
    assert list(chunks(["a", "b"], first=5, most=50)) == [["a", "b"]]
    assert list(chunks(list("abcdef"), first=3, most=3)) == [["a", "b", "c"], ["d", "e", "f"]]
