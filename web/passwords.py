"""Password hashes (scrypt, salted, constant-time checked) for the web users."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["DUMMY_HASH", "MIN_PASSWORD_LENGTH", "hash_password", "verify_password"]

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


MIN_PASSWORD_LENGTH = 8


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
                  ) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                            maxmem=128 * r * n * 2)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
"""Checked against when the user does not exist, so an unknown user takes as long as a wrong
password (no user enumeration by timing)."""


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (constant-time compare; bad records are False)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        n_, r_, p_ = int(n), int(r), int(p)
        want = _unb64(digest)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=n_, r=r_, p=p_,
                             dklen=len(want), maxmem=128 * r_ * n_ * 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
