"""Seeded random edits of JSON documents, for tests that feed parsers mangled input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def locations(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, as the keys and indexes leading to it."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from locations(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from locations(inner, (*prefix, index))


def parent_of(document: Any, where: tuple[Any, ...]) -> Any:
    """The object or array holding the place `where` (which must not be the root)."""
    parent = document
    for key in where[:-1]:
        parent = parent[key]
    return parent
