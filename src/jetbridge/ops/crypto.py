"""Field encryption: envelope encryption with AES-256-GCM under a keyring of named keys.

Each value is sealed with a fresh data key; the data key is wrapped by the keyring's active key
(the key-encryption key). A sealed value is text: `enc:v1:<key id>:<base64url payload>`, so it
names the key that opens it and keys can rotate: one key encrypts, every key in the ring
decrypts. The associated data binds a value to its place (table, row, field): a value copied to
another row or field does not decrypt.

The same keys also give keyed digests (`Keyring.digest`): HMAC-SHA256 under a key derived from
a named key for one purpose, `mac:v1:<key id>:<base64url>`. Equal inputs give equal digests
under one key, and without the key a digest tells nothing about its input, even one with little
entropy such as a name or a card number.

Nothing here knows about bookings or settings; errors name key ids and fields, never a key or a
plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
PREFIX = f"enc:{VERSION}:"
DIGEST_PREFIX = f"mac:{VERSION}:"
KEY_BYTES = 32
_NONCE = 12
_WRAPPED = KEY_BYTES + 16  # the data key and its GCM tag
_HEADER = _NONCE + _WRAPPED + _NONCE
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class CryptoError(Exception):
    """Base of the field encryption errors."""


class InvalidKeyConfiguration(CryptoError, ValueError):
    """A keyring's text is malformed; the message names the entry, never the key material."""


class DecryptionFailed(CryptoError):
    """A sealed value cannot be opened: unknown key, altered bytes, or another row's value."""

    def __init__(self, *, key_id: str | None, binding: Binding, reason: str) -> None:
        self.key_id = key_id
        self.binding = binding
        self.reason = reason
        key = f" (key {key_id})" if key_id else ""
        super().__init__(f"cannot decrypt {binding}{key}: {reason}")


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a sealed value lives; authenticated with it, never stored inside it."""

    table: str
    row: str
    field: str

    def __str__(self) -> str:
        return f"{self.table}.{self.field} of row {self.row}"

    def associated_data(self, key_id: str) -> bytes:
        return json.dumps([VERSION, key_id, self.table, self.row, self.field]).encode()


@dataclass(frozen=True, slots=True)
class DataKey:
    """A named AES-256 key-encryption key."""

    key_id: str
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.key_id):
            raise InvalidKeyConfiguration(
                "a key id is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit"
            )
        if len(self.material) != KEY_BYTES:
            raise InvalidKeyConfiguration(
                f"key {self.key_id} is {len(self.material)} bytes; AES-256 needs {KEY_BYTES}"
            )

    @classmethod
    def generate(cls, key_id: str) -> DataKey:
        return cls(key_id, AESGCM.generate_key(bit_length=256))

    def entry(self) -> str:
        """The key as `id:base64`, the form a keyring's text takes."""
        return f"{self.key_id}:{base64.b64encode(self.material).decode()}"


class Keyring:
    """Named keys: the first seals, every one of them opens."""

    def __init__(self, keys: Iterable[DataKey]) -> None:
        self._keys: dict[str, DataKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise InvalidKeyConfiguration(f"key id {key.key_id!r} appears twice")
            self._keys[key.key_id] = key
        if not self._keys:
            raise InvalidKeyConfiguration("a keyring needs at least one key")
        self.active = next(iter(self._keys))
        self._digest_keys: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"Keyring(active={self.active!r}, keys={list(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def derive(self, purpose: str) -> bytes:
        """A 256-bit secret for `purpose` derived from the active key (HKDF-SHA256): every
        process sharing the keyring derives the same one, and no key is used for two things."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return kdf.derive(self._keys[self.active].material)

    def seal(self, plaintext: bytes, *, binding: Binding) -> str:
        """Encrypt under a fresh data key wrapped by the active key."""
        kek = self._keys[self.active]
        aad = binding.associated_data(kek.key_id)
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce, data_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = AESGCM(kek.material).encrypt(wrap_nonce, data_key, aad)
        sealed = AESGCM(data_key).encrypt(data_nonce, plaintext, aad)
        payload = wrap_nonce + wrapped + data_nonce + sealed
        return f"{PREFIX}{kek.key_id}:{base64.urlsafe_b64encode(payload).decode().rstrip('=')}"

    def open(self, token: str, *, binding: Binding) -> bytes:
        """Decrypt a sealed value; raise DecryptionFailed unless it is intact and in its place."""
        key_id, payload = _split(token, binding)
        kek = self._keys.get(key_id)
        if kek is None:
            raise DecryptionFailed(key_id=key_id, binding=binding, reason="no such key in the ring")
        aad = binding.associated_data(key_id)
        wrap_nonce, wrapped = payload[:_NONCE], payload[_NONCE : _NONCE + _WRAPPED]
        data_nonce, sealed = payload[_NONCE + _WRAPPED : _HEADER], payload[_HEADER:]
        try:
            data_key = AESGCM(kek.material).decrypt(wrap_nonce, wrapped, aad)
            return AESGCM(data_key).decrypt(data_nonce, sealed, aad)
        except InvalidTag:
            raise DecryptionFailed(
                key_id=key_id,
                binding=binding,
                reason="authentication failed (altered, or sealed for another row or field)",
            ) from None

    def digest(self, data: bytes, *, purpose: str) -> str:
        """A keyed digest of `data` for `purpose`, under the active key."""
        mac = hmac.new(self._digest_key(self.active, purpose), data, hashlib.sha256).digest()
        encoded = base64.urlsafe_b64encode(mac).decode().rstrip("=")
        return f"{DIGEST_PREFIX}{self.active}:{encoded}"

    def digest_matches(self, token: str, data: bytes, *, purpose: str) -> bool:
        """Whether `token` is the digest of `data` for `purpose` under the key it names; False
        when that key is no longer in the ring or the token is not a digest."""
        if not token.startswith(DIGEST_PREFIX):
            return False
        key_id = token[len(DIGEST_PREFIX) :].split(":", 1)[0]
        if key_id not in self._keys:
            return False
        mac = hmac.new(self._digest_key(key_id, purpose), data, hashlib.sha256).digest()
        expected = f"{DIGEST_PREFIX}{key_id}:{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
        return hmac.compare_digest(token.encode(), expected.encode())

    def _digest_key(self, key_id: str, purpose: str) -> bytes:
        # A key of its own per purpose (HKDF): the encryption key never doubles as a MAC key.
        derived = self._digest_keys.get((key_id, purpose))
        if derived is None:
            info = f"jetbridge {DIGEST_PREFIX}{purpose}".encode()
            kdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info)
            derived = self._digest_keys[(key_id, purpose)] = kdf.derive(self._keys[key_id].material)
        return derived

    def is_current(self, token: str) -> bool:
        """Whether a sealed value is under the active key (else rotation will reseal it)."""
        return token.startswith(f"{PREFIX}{self.active}:")


def key_id_of(token: str) -> str | None:
    """The key a sealed value names, or None if the text is not a sealed value."""
    if not is_sealed(token):
        return None
    return token[len(PREFIX) :].split(":", 1)[0]


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX) and value.count(":") == 3


def _split(token: str, binding: Binding) -> tuple[str, bytes]:
    if not token.startswith("enc:"):
        raise DecryptionFailed(key_id=None, binding=binding, reason="the value is not sealed")
    if not token.startswith(PREFIX):
        raise DecryptionFailed(key_id=None, binding=binding, reason="unsupported format version")
    key_id, _, encoded = token[len(PREFIX) :].partition(":")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        payload = b""
    if len(payload) < _HEADER + 16:
        raise DecryptionFailed(key_id=key_id, binding=binding, reason="the value is truncated")
    return key_id, payload


def parse_keyring(text: str) -> Keyring:
    """Read `id:base64key,id:base64key,...`; the first key is the active one."""
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise InvalidKeyConfiguration("no keys given; expected KEY_ID:BASE64_KEY[,...]")
    keys: list[DataKey] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not key_id or not encoded.strip():
            raise InvalidKeyConfiguration(f"entry {number}: expected KEY_ID:BASE64_KEY")
        if not _KEY_ID.match(key_id):
            raise InvalidKeyConfiguration(
                f"entry {number}: the key id is not 1 to 32 letters, digits, '.', '_' or '-'"
            )
        if key_id in seen:
            raise InvalidKeyConfiguration(f"entry {number}: key id {key_id!r} appears twice")
        seen.add(key_id)
        material = _decode_key(encoded.strip(), f"entry {number} ({key_id})")
        try:
            keys.append(DataKey(key_id, material))
        except InvalidKeyConfiguration as exc:
            raise InvalidKeyConfiguration(f"entry {number}: {exc}") from None
    return Keyring(keys)


def _decode_key(encoded: str, where: str) -> bytes:
    standard = encoded.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKeyConfiguration(f"{where}: the key is not valid base64") from None
