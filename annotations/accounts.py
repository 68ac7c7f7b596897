"""Curator accounts: names and scrypt password hashes (set by `alexnet-archive curator add NAME`).

scrypt with n=2**14, r=8, p=1 (the parameters the scrypt paper and Python's docs give for
interactive logins: ~16 MiB and tens of milliseconds per try) and a 16-byte random salt per
account. The parameters are stored with each hash, so they can be raised later without
locking anyone out. Comparison is constant-time, and a login for an unknown name still pays
for one hash, so timing does not tell which names exist.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from annotations.store import AnnotationInputError, AnnotationStore, CuratorRecord

SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 64
SALT_BYTES = 16
MIN_PASSWORD = 10
MAX_PASSWORD = 1024        # scrypt takes anything; a limit keeps a login form from being a CPU sink
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def default_params() -> dict:
    return {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "dklen": SCRYPT_DKLEN}


@dataclass(frozen=True, slots=True)
class PasswordHash:
    hash: bytes
    salt: bytes
    params: dict

    def to_json(self) -> dict:
        return {"params": dict(self.params)}  # never the hash or the salt


def check_curator_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise AnnotationInputError(
            "name", "a curator name is 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_password(password: object) -> str:
    if not isinstance(password, str):
        raise AnnotationInputError("password", "is not text")
    if len(password) < MIN_PASSWORD:
        raise AnnotationInputError("password", f"is shorter than {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AnnotationInputError("password", f"is longer than {MAX_PASSWORD} characters")
    return password


def _scrypt(password: str, salt: bytes, params: dict) -> bytes:
    n, r, p, dklen = params["n"], params["r"], params["p"], params["dklen"]
    # OpenSSL's default memory cap (32 MiB) is near 128*n*r; leave room for stronger stored params.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str, *, salt: bytes | None = None, params: dict | None = None) -> PasswordHash:
    password = check_password(password)
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    params = default_params() if params is None else dict(params)
    return PasswordHash(_scrypt(password, salt, params), salt, params)


def verify_password(password: str, stored: PasswordHash) -> bool:
    """True when `password` hashes to `stored` (compared in constant time)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    return hmac.compare_digest(_scrypt(password, stored.salt, stored.params), stored.hash)


def add_curator(store: AnnotationStore, name: str, password: str, *, replace: bool = False) -> CuratorRecord:
    """Create a curator account (or, with replace=True, set a new password for one)."""
    name = check_curator_name(name)
    hashed = hash_password(password)
    return store.save_curator(name, hashed.hash, hashed.salt, hashed.params, replace=replace)


# A stand-in hash for unknown names: verifying against it costs what a real check costs.
_DUMMY = PasswordHash(b"\0" * SCRYPT_DKLEN, b"\0" * SALT_BYTES, default_params())


def verify_curator(store: AnnotationStore, name: str, password: str) -> bool:
    """True when `name` is a curator and `password` is theirs."""
    record = store.curator(name) if isinstance(name, str) and NAME_PATTERN.fullmatch(name) else None
    stored = PasswordHash(record.password_hash, record.salt, record.params) if record else _DUMMY
    matches = verify_password(password, stored)
    return matches and record is not None
