"""Curator sessions and CSRF tokens: HMAC-SHA256 under the database's site secret.

Nothing is kept server-side: a cookie carries what it claims and a signature over it.

- Session cookie ``curator``: ``NAME|EXPIRY|SIG`` with SIG = HMAC(secret, "session|NAME|EXPIRY")
  (EXPIRY in Unix seconds). HttpOnly, SameSite=Lax, Secure on https. A session whose
  curator no longer exists is refused (the caller checks the account).
- Visitor forms (annotate, login) use a double-submit token: GET sets the cookie ``csrf``
  to ``NONCE.SIG`` (SIG = HMAC(secret, "csrf|NONCE")) and puts the same token in the form;
  a POST must bring both, equal, and signed by this site. Another site can make a browser
  send the cookie but can neither read it nor forge a signed one.
- Curator forms carry a per-session token, HMAC(secret, "curator-csrf|" + session cookie):
  it changes with every login and is worthless without the session.

Signatures are compared in constant time (hmac.compare_digest).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "curator"
CSRF_COOKIE = "csrf"
CSRF_FIELD = "csrf"
SESSION_SECONDS = 12 * 3600   # a working day; log in again after that
CSRF_SECONDS = 2 * 3600       # how long an unposted form's cookie lives


def _sign(secret: bytes, purpose: str, payload: str) -> str:
    digest = hmac.new(secret, f"{purpose}|{payload}".encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# --- visitor forms: double-submit token ------------------------------------------------------

def new_csrf_token(secret: bytes) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_sign(secret, 'csrf', nonce)}"


def csrf_token_valid(secret: bytes, cookie: str | None, form: str | None) -> bool:
    """The cookie and the form bring the same token, and this site signed it."""
    if not cookie or not form or len(cookie) > 200 or not _same(cookie, form):
        return False
    nonce, _, signature = cookie.partition(".")
    return bool(nonce) and bool(signature) and _same(signature, _sign(secret, "csrf", nonce))


# --- curator sessions ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Session:
    curator: str
    expires: int
    cookie: str       # the cookie's value, which the per-session form token is derived from

    def to_json(self) -> dict:
        return {"curator": self.curator, "expires": self.expires}


def new_session(secret: bytes, curator: str, *, now: float | None = None,
                seconds: int = SESSION_SECONDS) -> Session:
    expires = int((time.time() if now is None else now) + seconds)
    payload = f"{curator}|{expires}"
    return Session(curator, expires, f"{payload}|{_sign(secret, 'session', payload)}")


def read_session(secret: bytes, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie proves, or None (missing, altered, expired)."""
    if not cookie or len(cookie) > 300:
        return None
    parts = cookie.split("|")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return None
    name, expires, signature = parts
    if not _same(signature, _sign(secret, "session", f"{name}|{expires}")):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return Session(name, int(expires), cookie)


def session_form_token(secret: bytes, session: Session) -> str:
    return _sign(secret, "curator-csrf", session.cookie)


def session_form_token_valid(secret: bytes, session: Session, form: str | None) -> bool:
    return bool(form) and len(form or "") < 200 and _same(form or "", session_form_token(secret, session))
