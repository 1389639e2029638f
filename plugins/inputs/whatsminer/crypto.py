"""The cryptography of the Whatsminer APIs (reference §3.4 and §3.6), as pure functions.

API v2 (TCP 4028) — a write is encrypted with a key derived from the admin password:

1. ``get_token`` answers ``time``, ``salt`` and ``newsalt``;
2. ``key = md5crypt(password, salt)`` keeping only the hash body (the 4th ``$`` field), which is
   exactly what the miner stores in its shadow file — so the miner knows ``key`` without
   knowing the password;
3. ``sign = md5crypt(key + time, newsalt)`` (hash body again, all 22 characters) is the
   ``token`` put inside every encrypted command;
4. ``aeskey = SHA-256(key)`` (32 raw bytes) encrypts the JSON command with AES-256-ECB, padded
   with NUL bytes to 16, base64 without newlines: ``{"enc": 1, "data": "<base64>"}``;
5. the reply ``{"enc": "<base64>"}`` decrypts with the same key.

API v3 (TCP 4433) — no session: each write carries ``token = base64(SHA-256(cmd + password +
salt + ts))[:8]``; the full 32-byte digest is the AES-256-ECB key of sensitive parameters
(pools, passwords).

Padding: the miner and every known client pad with NUL bytes, and a reply is cut at its first
NUL, so that is what we send. On the way in we also accept PKCS#7 (one client family uses it).
For JSON the two cannot be confused: NUL padding ends in 0x00 (or in ``}`` when no padding was
needed), never in a byte 1..16.

md5-crypt comes from libpass (the maintained passlib fork, imported as ``passlib``); AES from
``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from passlib.hash import md5_crypt

__all__ = [
    "CryptoError",
    "V2Keys",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "md5crypt_body",
    "strip_padding",
    "v2_decrypt",
    "v2_encrypt",
    "v2_keys",
    "v3_decrypt_param",
    "v3_encrypt_param",
    "v3_token",
    "zero_pad",
]

_SALT_CHARS = frozenset("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class CryptoError(ValueError):
    """Input that cannot be (de)crypted: bad base64, wrong length, wrong key, bad salt."""


def md5crypt_body(word: str, salt: str) -> str:
    """The hash body of ``$1$<salt>$<body>`` (what ``openssl passwd -1 -salt`` prints, 4th field).

    The salt is what the miner sent (md5-crypt uses at most its first 8 characters).
    """
    if not salt or not set(salt[:8]) <= _SALT_CHARS:
        raise CryptoError(f"not an md5-crypt salt: {salt[:16]!r}")
    try:
        full = md5_crypt.using(salt=salt[:8]).hash(word)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"md5-crypt failed: {exc}") from None
    return full.split("$")[3]


@dataclass(frozen=True, slots=True)
class V2Keys:
    """What one ``get_token`` answer gives a client that knows the admin password."""

    key: str
    """md5crypt(password, salt) body: the secret both sides share."""
    sign: str
    """The ``token`` value carried inside each encrypted command."""
    aeskey: bytes
    """SHA-256 of ``key``: the AES-256 key of requests and replies."""


def v2_keys(password: str, salt: str, newsalt: str, time: str) -> V2Keys:
    """Derive the v2 session keys from the admin password and a ``get_token`` answer."""
    key = md5crypt_body(password, salt)
    sign = md5crypt_body(key + time, newsalt)
    return V2Keys(key, sign, v2_aeskey(key))


def v2_aeskey(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def zero_pad(data: bytes) -> bytes:
    """Pad with NUL bytes to a multiple of 16 (nothing added when already aligned)."""
    return data + b"\0" * (-len(data) % 16)


def strip_padding(data: bytes) -> bytes:
    """Remove PKCS#7 padding if it is valid, else NUL padding (everything from the first NUL)."""
    if data:
        n = data[-1]
        if 1 <= n <= 16 and len(data) >= n and data[-n:] == bytes([n]) * n:
            return data[:-n]
    cut = data.find(b"\0")
    return data if cut < 0 else data[:cut]


def aes_ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-ECB of ``plaintext`` NUL-padded to 16."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(zero_pad(plaintext)) + encryptor.finalize()


def aes_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """AES-256-ECB decryption with the padding stripped. Raises :class:`CryptoError`."""
    if not ciphertext or len(ciphertext) % 16:
        raise CryptoError(f"ciphertext of {len(ciphertext)} bytes is not a whole number of "
                          "AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return strip_padding(decryptor.update(ciphertext) + decryptor.finalize())


def b64decode(text: str | bytes) -> bytes:
    """Standard base64, strictly (no stray characters), newlines tolerated."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            raise CryptoError("base64 text holds non-ASCII characters") from None
    try:
        return base64.b64decode(text.replace(b"\n", b"").replace(b"\r", b""), validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("not valid base64") from None


def v2_encrypt(aeskey: bytes, plaintext: bytes) -> str:
    """The ``data`` value of an encrypted v2 request (or the ``enc`` value of a reply)."""
    return base64.b64encode(aes_ecb_encrypt(aeskey, plaintext)).decode("ascii")


def v2_decrypt(aeskey: bytes, data: str | bytes) -> bytes:
    """Plaintext of an ``enc``/``data`` value. Raises :class:`CryptoError`."""
    return aes_ecb_decrypt(aeskey, b64decode(data))


def v3_token(cmd: str, password: str, salt: str, ts: int) -> tuple[str, bytes]:
    """(8-character token, 32-byte AES key) of one v3 write at unix time ``ts``."""
    digest = hashlib.sha256(f"{cmd}{password}{salt}{ts}".encode()).digest()
    return base64.b64encode(digest)[:8].decode("ascii"), digest


def v3_encrypt_param(key: bytes, param: Any) -> str:
    """A sensitive v3 ``param`` (pools, passwords): base64(AES-ECB(JSON))."""
    return base64.b64encode(aes_ecb_encrypt(key, json.dumps(param).encode())).decode("ascii")


def v3_decrypt_param(key: bytes, text: str) -> Any:
    """Inverse of :func:`v3_encrypt_param`. Raises :class:`CryptoError`."""
    plain = aes_ecb_decrypt(key, b64decode(text))
    try:
        return json.loads(plain)
    except (UnicodeDecodeError, ValueError):
        raise CryptoError("decrypted parameter is not JSON (wrong key?)") from None
