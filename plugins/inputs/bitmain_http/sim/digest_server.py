"""HTTP digest authentication, the checking side: what lighttpd's mod_auth does on a real
Antminer, as the simulated web interface needs it (the client side is :mod:`..digest`)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from webbo.plugins.inputs.bitmain_http.digest import _md5, parse_params

__all__ = ["DigestServer"]


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
