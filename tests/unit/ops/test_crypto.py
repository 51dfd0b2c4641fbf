"""Field encryption: sealing, opening, tampering, row binding, keyrings and their configuration."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from jetbridge.app import data_keyring
from jetbridge.config import Settings
from jetbridge.errors import ConfigurationError
from jetbridge.ops.crypto import (
    Binding,
    DataKey,
    DecryptionFailed,
    InvalidKeyConfiguration,
    Keyring,
    key_id_of,
    parse_keyring,
)
from jetbridge.ops.keyfile import local_keyring

SECRET = b'{"family_name": "Lovelace", "number": "X1234567"}'
HERE = Binding(table="bookings", row="b-1", field="passengers")
NEW = DataKey(key_id="k2026", material=bytes(range(32)))
OLD = DataKey(key_id="k2025", material=bytes(range(32, 64)))


def b64(material: bytes) -> str:
    return base64.b64encode(material).decode()


def test_a_sealed_value_opens_to_the_same_bytes_and_shows_nothing_in_clear() -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(SECRET, binding=HERE)
    assert sealed.startswith("enc:v1:k2026:")
    assert key_id_of(sealed) == "k2026"
    assert b"Lovelace" not in sealed.encode() and b"X1234567" not in sealed.encode()
    assert b"Lovelace" not in base64.urlsafe_b64decode(sealed.split(":")[3] + "==")
    assert ring.open(sealed, binding=HERE) == SECRET
    assert ring.seal(SECRET, binding=HERE) != sealed  # fresh data key and nonces each time
    assert ring.open(ring.seal(b"", binding=HERE), binding=HERE) == b""


def flip(sealed: str, position: int) -> str:
    head, payload = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[position] ^= 0x01
    return f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


@pytest.mark.parametrize(
    "position", [0, 20, 65, 80, -1], ids=["wrap nonce", "wrapped key", "nonce", "data", "tag"]
)
def test_a_tampered_value_fails_to_open(position: int) -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(SECRET, binding=HERE)
    with pytest.raises(DecryptionFailed, match="authentication failed") as failure:
        ring.open(flip(sealed, position), binding=HERE)
    assert failure.value.key_id == "k2026"


@pytest.mark.parametrize(
    "elsewhere",
    [
        Binding(table="bookings", row="b-2", field="passengers"),
        Binding(table="bookings", row="b-1", field="payment_card"),
        Binding(table="customers", row="b-1", field="passengers"),
    ],
    ids=["another row", "another field", "another table"],
)
def test_a_value_copied_to_another_place_fails_to_open(elsewhere: Binding) -> None:
    ring = Keyring([NEW])
    with pytest.raises(DecryptionFailed) as failure:
        ring.open(ring.seal(SECRET, binding=HERE), binding=elsewhere)
    message = str(failure.value)
    assert elsewhere.field in message and elsewhere.row in message and "k2026" in message
    assert "Lovelace" not in message


def test_a_value_under_a_key_not_in_the_ring_fails_to_open_naming_the_key() -> None:
    sealed = Keyring([OLD]).seal(SECRET, binding=HERE)
    with pytest.raises(
        DecryptionFailed, match=r"passengers.*\(key k2025\): no such key"
    ) as failure:
        Keyring([NEW]).open(sealed, binding=HERE)
    assert failure.value.key_id == "k2025"
    assert failure.value.binding == HERE


def test_a_key_with_the_same_id_but_other_material_fails_to_open() -> None:
    sealed = Keyring([NEW]).seal(SECRET, binding=HERE)
    impostor = DataKey(key_id="k2026", material=bytes(32))
    with pytest.raises(DecryptionFailed, match="authentication failed"):
        Keyring([impostor]).open(sealed, binding=HERE)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"family_name": "Lovelace"}]', "not sealed"),
        ("enc:v9:k2026:AAAA", "unsupported format version"),
        ("enc:v1:k2026:AAAA", "truncated"),
        ("enc:v1:k2026:@@@@", "truncated"),
    ],
)
def test_text_that_is_not_a_whole_sealed_value_fails_to_open(text: str, reason: str) -> None:
    with pytest.raises(DecryptionFailed, match=reason) as failure:
        Keyring([NEW]).open(text, binding=HERE)
    assert "Lovelace" not in str(failure.value)


def test_the_first_key_seals_and_every_key_opens() -> None:
    under_old = Keyring([OLD]).seal(SECRET, binding=HERE)
    ring = Keyring([NEW, OLD])
    assert ring.active == "k2026" and ring.key_ids == ["k2026", "k2025"]
    assert ring.open(under_old, binding=HERE) == SECRET
    assert not ring.is_current(under_old)
    resealed = ring.seal(ring.open(under_old, binding=HERE), binding=HERE)
    assert ring.is_current(resealed)
    assert Keyring([NEW]).open(resealed, binding=HERE) == SECRET  # the old key can go


def test_key_material_never_shows_in_a_repr() -> None:
    ring = Keyring([NEW])
    assert NEW.material.hex() not in repr(NEW) + repr(ring)
    assert str(NEW.material) not in repr(NEW) + repr(ring)


def test_a_keyring_is_read_from_id_and_base64_entries() -> None:
    ring = parse_keyring(f" k2026:{b64(NEW.material)} , k2025:{b64(OLD.material)}")
    assert ring.active == "k2026" and ring.key_ids == ["k2026", "k2025"]
    urlsafe = base64.urlsafe_b64encode(bytes([251] * 32)).decode().rstrip("=")
    assert parse_keyring(f"u:{urlsafe}").key_ids == ["u"]
    assert parse_keyring(NEW.entry()).open(Keyring([NEW]).seal(b"x", binding=HERE), binding=HERE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no keys given"),
        ("k2026", "entry 1: expected KEY_ID:BASE64_KEY"),
        (f":{b64(bytes(32))}", "entry 1: expected KEY_ID:BASE64_KEY"),
        ("k2026:", "entry 1: expected KEY_ID:BASE64_KEY"),
        (f"bad id:{b64(bytes(32))}", "entry 1: the key id is not"),
        ("k2026:not*base64!", r"entry 1 \(k2026\): the key is not valid base64"),
        (f"k2026:{b64(bytes(16))}", "entry 1: key k2026 is 16 bytes; AES-256 needs 32"),
        (f"k2026:{b64(bytes(33))}", "key k2026 is 33 bytes"),
        (f"k1:{b64(bytes(32))},k1:{b64(bytes(range(32)))}", "entry 2: key id 'k1' appears twice"),
        (f"k1:{b64(bytes(32))},", "entry 2: expected KEY_ID:BASE64_KEY"),
    ],
)
def test_malformed_keyrings_are_refused_with_a_clear_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidKeyConfiguration, match=message):
        parse_keyring(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k2026:c2VjcmV0LWtleS1tYXRlcmlhbA!!", "the key is not valid base64"),
        ("k2026:c2VjcmV0LWtleS1tYXRlcmlhbA==", "is 19 bytes; AES-256 needs 32"),
        (f"k1:{b64(b'secret-key-material-32-bytes-ok!')},k1:{b64(bytes(32))}", "appears twice"),
    ],
)
def test_bad_data_keys_stop_the_settings_with_a_message_that_hides_the_key(
    value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JETBRIDGE_DATA_KEYS", value)
    with pytest.raises(ValidationError) as failure:
        Settings()
    text = str(failure.value)
    assert "JETBRIDGE_DATA_KEYS" in text and message in text
    assert value.split(":")[1].split(",")[0] not in text
    assert "secret-key-material" not in text


def test_the_embedded_default_generates_a_private_key_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("JETBRIDGE_DATA_KEYS", raising=False)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'jb.db'}", data_dir=tmp_path / "var")
    with caplog.at_level(logging.DEBUG):
        first = data_keyring(settings)
    path = tmp_path / "var" / "data-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated data encryption key 'local'" in caplog.text
    assert "JETBRIDGE_DATA_KEYS" in caplog.text
    assert path.read_text().split(":", 1)[1].strip() not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        second = data_keyring(settings)
    assert "generated" not in caplog.text
    sealed = first.seal(SECRET, binding=HERE)
    assert second.open(sealed, binding=HERE) == SECRET
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_key_file_open_to_others_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data-keys"
    path.write_text(NEW.entry() + "\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert local_keyring(path).active == "k2026"
    assert "readable by others" in caplog.text
    path.write_text("k2026:short\n")
    with pytest.raises(ValueError, match=r"data key file .*data-keys: entry 1 \(k2026\)"):
        local_keyring(path)


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'jb.db'}", data_dir=tmp_path, data_keys=NEW.entry()
    )
    assert data_keyring(settings).key_ids == ["k2026"]
    assert not (tmp_path / "data-keys").exists()


def test_postgresql_without_configured_keys_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JETBRIDGE_DATA_KEYS", raising=False)
    settings = Settings(database_url="postgresql://jetbridge@db.example/jetbridge")
    with pytest.raises(ConfigurationError, match="JETBRIDGE_DATA_KEYS must be set"):
        data_keyring(settings)


def test_a_digest_names_its_key_and_hides_its_input() -> None:
    ring = Keyring([NEW])
    token = ring.digest(SECRET, purpose="test")
    assert token.startswith("mac:v1:k2026:")
    assert "Lovelace" not in token and "X1234567" not in token
    assert token == ring.digest(SECRET, purpose="test")
    assert ring.digest_matches(token, SECRET, purpose="test")


@pytest.mark.parametrize(
    ("data", "purpose"),
    [(SECRET + b" ", "test"), (SECRET, "other"), (b"", "test")],
)
def test_a_digest_does_not_match_other_data_or_another_purpose(data: bytes, purpose: str) -> None:
    ring = Keyring([NEW])
    token = ring.digest(SECRET, purpose="test")
    assert not ring.digest_matches(token, data, purpose=purpose)
    assert ring.digest(data, purpose=purpose) != token


def test_a_digest_depends_on_the_key_material_not_on_a_bare_hash() -> None:
    same_id_other_material = Keyring([DataKey(key_id="k2026", material=bytes(range(1, 33)))])
    token = Keyring([NEW]).digest(SECRET, purpose="test")
    assert same_id_other_material.digest(SECRET, purpose="test") != token
    assert not same_id_other_material.digest_matches(token, SECRET, purpose="test")


def test_a_digest_under_an_older_key_matches_while_that_key_is_in_the_ring() -> None:
    token = Keyring([OLD]).digest(SECRET, purpose="test")
    rotated = Keyring([NEW, OLD])
    assert rotated.digest_matches(token, SECRET, purpose="test")
    assert rotated.digest(SECRET, purpose="test").startswith("mac:v1:k2026:")
    assert not Keyring([NEW]).digest_matches(token, SECRET, purpose="test")


@pytest.mark.parametrize(
    "token",
    ["", "mac:v1:", "mac:v1:k2026", "mac:v1:k2026:", "enc:v1:k2026:AAAA", "mac:v2:k2026:AAAA",
     "mac:v1:k2026:\u00e9\u00e9", "mac:v1:nokey:AAAA"],
)  # fmt: skip
def test_text_that_is_not_a_digest_never_matches(token: str) -> None:
    assert not Keyring([NEW]).digest_matches(token, SECRET, purpose="test")
