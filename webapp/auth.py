"""Curator sessions and CSRF tokens: HMAC-SHA256 under the database's site secret.

A cookie carries what it claims and a signature over it; the server keeps only when each
curator last logged out.

- Session cookie ``curator``: ``NAME|ISSUED|EXPIRY|SIG`` with SIG = HMAC(secret,
  "session|NAME|ISSUED|EXPIRY") (ISSUED in Unix ms, EXPIRY in Unix seconds). HttpOnly,
  SameSite=Lax, Secure on https. The caller refuses a session whose curator no longer exists
  or logged out after it was issued (AnnotationStore.sessions_ended_before).
- Visitor forms (annotate, login) use a double-submit token: GET sets the cookie ``csrf``
  to ``NONCE.SIG`` (SIG = HMAC(secret, "csrf|NONCE")) and puts the same token in the form;
  a POST must bring both, equal, and signed by this site. Another site can make a browser
  send the cookie but can neither read it nor forge a signed one.
- Curator forms carry a per-session token, HMAC(secret, "curator-csrf|" + session cookie):
  it changes with every login and is worthless without the session.

Signatures are compared in constant time (hmac.compare_digest). Logging out ends every session
the curator had, copies of the cookie included.
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
    issued_ms: int
    expires: int
    cookie: str       # the cookie's value, which the per-session form token is derived from

    def to_json(self) -> dict:
        return {"curator": self.curator, "expires": self.expires}


def new_session(secret: bytes, curator: str, *, now: float | None = None,
                seconds: int = SESSION_SECONDS) -> Session:
    now = time.time() if now is None else now
    issued, expires = int(now * 1000), int(now + seconds)
    payload = f"{curator}|{issued}|{expires}"
    return Session(curator, issued, expires, f"{payload}|{_sign(secret, 'session', payload)}")


def read_session(secret: bytes, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie proves, or None (missing, altered, expired)."""
    if not cookie or len(cookie) > 300:
        return None
    parts = cookie.split("|")
    if len(parts) != 4 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    name, issued, expires, signature = parts
    if not _same(signature, _sign(secret, "session", f"{name}|{issued}|{expires}")):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return Session(name, int(issued), int(expires), cookie)


def session_form_token(secret: bytes, session: Session) -> str:
    return _sign(secret, "curator-csrf", session.cookie)


def session_form_token_valid(secret: bytes, session: Session, form: str | None) -> bool:
    return bool(form) and len(form or "") < 200 and _same(form or "", session_form_token(secret, session))
