"""HTTP Digest authentication (RFC 7616, MD5, ``qop="auth"``) as Antminer's lighttpd speaks it.

Both sides live here: :class:`DigestClient` (the driver) and :class:`DigestServer` (the
simulator). The client remembers each host's challenge and answers it pre-emptively with an
increasing nonce count, so a known device costs one round trip per request, not two; a stale or
refused nonce (another 401) is answered once with the fresh challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass

__all__ = ["Challenge", "DigestClient", "DigestServer", "parse_challenge"]

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def parse_params(header: str) -> dict[str, str]:
    """``a="x", b=y`` → {"a": "x", "b": "y"} (keys lower-cased)."""
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
            for m in _PARAM.finditer(header)}


@dataclass(slots=True)
class Challenge:
    realm: str
    nonce: str
    qop: str = "auth"
    opaque: str | None = None
    algorithm: str = "MD5"
    nc: int = 0


def parse_challenge(header: str) -> Challenge | None:
    """The Digest challenge of a ``WWW-Authenticate`` header, or None if it is not one."""
    if not header or not header.strip().lower().startswith("digest"):
        return None
    params = parse_params(header.strip()[6:])
    if "realm" not in params or "nonce" not in params:
        return None
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    return Challenge(realm=params["realm"], nonce=params["nonce"],
                     qop="auth" if (not qops or "auth" in qops) else qops[0],
                     opaque=params.get("opaque"), algorithm=params.get("algorithm", "MD5"))


class DigestClient:
    """Builds ``Authorization`` headers for one set of credentials, caching challenges per host."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._challenges: dict[str, Challenge] = {}

    def authorization(self, host: str, method: str, uri: str) -> str | None:
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        return self.answer(challenge, method, uri)

    def learn(self, host: str, header: str) -> bool:
        """Remember the challenge of a 401; False if the header holds no usable one."""
        challenge = parse_challenge(header)
        if challenge is None or challenge.algorithm.upper() not in ("MD5", ""):
            return False
        self._challenges[host] = challenge
        return True

    def forget(self, host: str) -> None:
        self._challenges.pop(host, None)

    def answer(self, challenge: Challenge, method: str, uri: str) -> str:
        challenge.nc += 1
        nc = f"{challenge.nc:08x}"
        cnonce = os.urandom(8).hex()
        ha1 = _md5(f"{self.username}:{challenge.realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        response = _md5(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:{challenge.qop}:{ha2}")
        parts = [f'username="{self.username}"', f'realm="{challenge.realm}"',
                 f'nonce="{challenge.nonce}"', f'uri="{uri}"', "algorithm=MD5",
                 f'response="{response}"', f"qop={challenge.qop}", f"nc={nc}",
                 f'cnonce="{cnonce}"']
        if challenge.opaque is not None:
            parts.append(f'opaque="{challenge.opaque}"')
        return "Digest " + ", ".join(parts)


class DigestServer:
    """The checking side (lighttpd's mod_auth, as the simulator needs it)."""

    def __init__(self, realm: str, nonce_ttl: float = 600.0) -> None:
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self._secret = os.urandom(16)

    def nonce(self) -> str:
        stamp = f"{int(time.time()):08x}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{stamp}:{mac}"

    def challenge(self, stale: bool = False) -> str:
        header = (f'Digest realm="{self.realm}", charset="UTF-8", algorithm=MD5, '
                  f'nonce="{self.nonce()}", qop="auth"')
        return header + (", stale=true" if stale else "")

    def _nonce_state(self, nonce: str) -> str:
        stamp, _, mac = nonce.partition(":")
        expected = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            return "bad"
        try:
            age = time.time() - int(stamp, 16)
        except ValueError:
            return "bad"
        return "ok" if age <= self.nonce_ttl else "stale"

    def check(self, header: str | None, method: str, username: str, password: str
              ) -> tuple[bool, bool]:
        """(authorised, stale) for an ``Authorization`` header."""
        if not header or not header.lower().startswith("digest "):
            return False, False
        params = parse_params(header[7:])
        needed = ("username", "realm", "nonce", "uri", "response")
        if any(k not in params for k in needed) or params["realm"] != self.realm:
            return False, False
        state = self._nonce_state(params["nonce"])
        if state == "bad":
            return False, False
        ha1 = _md5(f"{username}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{params['uri']}")
        if params.get("qop"):
            expected = _md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:"
                            f"{params.get('cnonce', '')}:{params['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
        ok = params["username"] == username and hmac.compare_digest(expected,
                                                                    params["response"])
        if ok and state == "stale":
            return False, True
        return ok, False
