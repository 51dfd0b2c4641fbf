"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's recommended profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified when the user does not exist, so an unknown name costs as long as a wrong password.
_DUMMY = _hasher.hash("jetbridge: no such user")

MIN_LENGTH = 10
MAX_LENGTH = 1024


def check_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing, or long enough to burden the hasher."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password: at least {MIN_LENGTH} characters are required")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"password: at most {MAX_LENGTH} characters are accepted")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with no stored hash, the same work is done anyway."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
