"""Idempotency keys of booking requests: key and caller rules, the request fingerprint."""

from __future__ import annotations

import pytest

from jetbridge.booking import idempotency
from jetbridge.booking.service import BookingRequest, Passenger, TravelDocument
from jetbridge.errors import InvalidRequest, Unprocessable
from jetbridge.ops.crypto import DataKey, Keyring

RING = Keyring([DataKey(key_id="k1", material=bytes(range(32)))])
CARD = "4242424242424242"
PASSPORT = TravelDocument(number="X9Q4417B2", country="GBR", expires="2031-05-01")
REQUEST = BookingRequest(
    flight_id="LX0100-2030-01-01",
    cabin="economy",
    customer_id="c-1",
    passengers=[Passenger(given_name="Ada", family_name="Lovelace", document=PASSPORT)],
)


def document(**changes: object) -> bytes:
    fields: dict[str, object] = {"caller": "alice", "key": "key-00000001", "card": CARD}
    fields["request"] = REQUEST
    fields |= changes
    return idempotency.request_document(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "x" * 129,
        "has space-1",
        "über-key-1",
        "key-0001\n",
        "key/00001",
        "",
        "key\x0000001",
    ],
)
def test_malformed_keys_are_refused_naming_the_header(key: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^Idempotency-Key: "):
        idempotency.check_key(key)


@pytest.mark.parametrize("key", ["key-0001", "x" * 128, "a.b:c_d-e", "6f1c2b1e-7a2d-4b0a-9d55"])
def test_well_formed_keys_pass(key: str) -> None:
    idempotency.check_key(key)


@pytest.mark.parametrize("caller", ["", "x" * 256])
def test_a_caller_is_one_to_255_characters(caller: str) -> None:
    with pytest.raises(InvalidRequest, match="caller"):
        idempotency.check_caller(caller)


def test_the_same_request_has_the_same_fingerprint_whatever_the_field_order() -> None:
    reordered = BookingRequest.model_validate(
        {
            "passengers": [
                {
                    "document": {"expires": "2031-05-01", "country": "GBR", "number": "X9Q4417B2"},
                    "family_name": "Lovelace",
                    "given_name": "Ada",
                }
            ],
            "customer_id": "c-1",
            "cabin": "economy",
            "flight_id": "LX0100-2030-01-01",
        }
    )
    assert document(request=reordered) == document()
    stored = idempotency.fingerprint(RING, document())
    idempotency.check_repeat(RING, stored, document(request=reordered))


@pytest.mark.parametrize(
    "changes",
    [
        {"caller": "bob"},
        {"key": "key-00000002"},
        {"card": "4000000000000002"},
        {"request": REQUEST.model_copy(update={"cabin": "business"})},
        {"request": REQUEST.model_copy(update={"customer_id": "c-2"})},
        {"request": REQUEST.model_copy(update={"flight_id": "LX0101-2030-01-01"})},
        {"request": REQUEST.model_copy(update={"passengers": [Passenger(given_name="Ada", family_name="Lovelace")]})},
        {"request": REQUEST.model_copy(update={"passengers": [*REQUEST.passengers, *REQUEST.passengers]})},
    ],
)  # fmt: skip
def test_any_change_to_the_request_is_refused_as_a_repeat(changes: dict[str, object]) -> None:
    stored = idempotency.fingerprint(RING, document())
    with pytest.raises(Unprocessable, match=r"^Idempotency-Key: "):
        idempotency.check_repeat(RING, stored, document(**changes))


def test_the_fingerprint_holds_no_personal_data_and_needs_the_key() -> None:
    stored = idempotency.fingerprint(RING, document())
    assert stored.startswith("mac:v1:k1:") and len(stored) <= 128
    for secret in ("Lovelace", "Ada", "X9Q4417B2", CARD, "4242", "alice", "key-00000001"):
        assert secret not in stored
    assert CARD not in document().decode()  # the card enters as its hash only
    other = Keyring([DataKey(key_id="k1", material=bytes(range(1, 33)))])
    assert idempotency.fingerprint(other, document()) != stored


def test_a_booking_without_a_fingerprint_is_never_taken_for_a_repeat() -> None:
    with pytest.raises(Unprocessable):
        idempotency.check_repeat(RING, None, document())
