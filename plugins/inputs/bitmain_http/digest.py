"""HTTP Digest authentication (RFC 7616, MD5, ``qop="auth"``) as Antminer's lighttpd speaks it.

This is the client side, :class:`DigestClient` (the checking side the simulator needs is
:mod:`.sim.digest_server`). The client remembers each host's challenge and answers it
pre-emptively with an increasing nonce count, so a known device costs one round trip per
request, not two; a stale or refused nonce (another 401) is answered once with the fresh
challenge.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from sys import intern

__all__ = ["Challenge", "DigestClient", "parse_challenge", "parse_params"]

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
    # one challenge is kept per device: what every device says alike is held once
    return Challenge(realm=intern(params["realm"]), nonce=params["nonce"],
                     qop="auth" if (not qops or "auth" in qops) else intern(qops[0]),
                     opaque=params.get("opaque"),
                     algorithm=intern(params.get("algorithm", "MD5")))


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


