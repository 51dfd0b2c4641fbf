"""Validation errors in words: what to fix in a field, never the regular expression that
checked it. REST's 422 answers and GraphQL's errors both say it this way."""

from __future__ import annotations

from typing import Any

# What each pattern the API checks means to the person filling in the field.
PATTERN_WORDS = {
    r"^[A-Z]{3}$": "a three-letter code in capitals, such as ZRH",
    r"^[A-Z0-9]{2}\d{4}[A-Z]?-\d{4}-\d{2}-\d{2}$": (
        "a flight id: airline code, four-digit number and date, such as LX0100-2026-12-01"
    ),
    r"^(economy|premium|business|first)$": "one of economy, premium, business or first",
    r"^[0-9 ]{12,23}$": "a card number of 12 to 19 digits (spaces allowed)",
    r"^[\w.@+-]+$": "letters, digits and . @ + - only",
    r"^[^\x00-\x1f<>]+$": "a name without control characters or < >",
    r"^(passport|id_card)$": "passport or id_card",
    r"^[A-Z0-9]+$": "capital letters and digits only",
    r"^\d{4}-\d{2}-\d{2}$": "a date such as 2030-01-31",
    r"^[A-Za-z0-9]{6}$": "the six letters and digits of the record locator",
    r"^[1-9][0-9]?[A-K]$": "a seat such as 12A (row number, then seat letter)",
    r"^[A-Z0-9]{2}$": "a two-character airline code, such as LX",
    r"^\d{1,4}[A-Z]?$": "a flight number of 1 to 4 digits, optionally a letter",
}


def in_words(item: dict[str, Any]) -> str:
    """One pydantic error as a sentence saying what the field should hold."""
    kind = item.get("type")
    context = item.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        wanted = PATTERN_WORDS.get(str(context.get("pattern")), "text in the documented form")
        return f"should be {wanted}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field this request accepts"
    # A validator's own sentence, without pydantic's "Value error, " before it.
    return str(item.get("msg", "is not valid")).removeprefix("Value error, ")
