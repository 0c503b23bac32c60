"""Signed, expiring values for responders: dashboard sessions and stream tickets.

Contract:
- `Signer.sign(purpose, value, ttl)` gives "<expires>.<value>.<mac>", the MAC being
  HMAC-SHA256(secret, purpose NUL expires NUL value) in hex. `verify(purpose, signed)` gives
  `value` back while unexpired and untampered, else None. A value signed for one purpose
  (a stream ticket) is never valid for another (a session).
- What is signed is a token's SHA-256 (the hash the store keeps, not the token): a session
  or ticket is only as good as the token behind it, which is checked again on every use
  (revoked, expired, role).
- The secret is `[http] session_secret`, or random per process when unset.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable


class Signer:
    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    def _mac(self, purpose: str, expires: int, value: str) -> str:
        message = f"{purpose}\0{expires}\0{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, purpose: str, value: str, ttl_seconds: float) -> str:
        if "." in value:
            raise ValueError("a signed value holds no dots")
        expires = int(self._clock() + ttl_seconds)
        return f"{expires}.{value}.{self._mac(purpose, expires, value)}"

    def verify(self, purpose: str, signed: str | None) -> str | None:
        if not signed or len(signed) > 512:
            return None
        parts = signed.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        expires, value, mac = int(parts[0]), parts[1], parts[2]
        if expires < self._clock():
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(purpose, expires, value).encode()):
            return None
        return value

    def csrf(self, session: str) -> str:
        """The CSRF token of the dashboard's forms for one session (sessions are HttpOnly
        cookies a cross-site page cannot read, so it cannot know this either)."""
        return hmac.new(self._secret, f"csrf\0{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session).encode(), str(token).encode())
