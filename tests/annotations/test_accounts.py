"""Curator accounts: scrypt hashes with their own salt and parameters, constant-time checks."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest

from annotations import accounts
from annotations.accounts import (
    MIN_PASSWORD,
    SALT_BYTES,
    add_curator,
    check_curator_name,
    hash_password,
    verify_curator,
    verify_password,
)
from annotations.store import AnnotationInputError, AnnotationStore

PASSWORD = "correct horse battery"


@pytest.fixture
def store(tmp_path):
    with AnnotationStore(tmp_path / "site.db") as opened:
        yield opened


def test_the_hash_is_scrypt_n_2_14_r_8_p_1_with_a_16_byte_salt():
    hashed = hash_password(PASSWORD)
    assert hashed.params == {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 64}
    assert len(hashed.salt) == SALT_BYTES
    # Recomputed independently with hashlib: the stored hash is plain scrypt of the UTF-8 password.
    assert hashed.hash == hashlib.scrypt(PASSWORD.encode(), salt=hashed.salt, n=2 ** 14, r=8, p=1, dklen=64)
    assert hash_password(PASSWORD).salt != hashed.salt  # a fresh salt every time
    assert hashed.to_json() == {"params": hashed.params}


def test_verify_password_accepts_only_the_password():
    hashed = hash_password(PASSWORD)
    assert verify_password(PASSWORD, hashed)
    for wrong in ("correct horse battery ", "Correct horse battery", "", "x" * 5000, None):
        assert not verify_password(wrong, hashed)


def test_stored_parameters_are_used_when_verifying():
    weaker = hash_password(PASSWORD, params={"n": 2 ** 10, "r": 8, "p": 1, "dklen": 32})
    assert len(weaker.hash) == 32 and verify_password(PASSWORD, weaker)


def test_a_curator_can_be_added_and_verified(store, tmp_path):
    record = add_curator(store, "ada.lovelace", PASSWORD)
    assert record.to_json() == {"name": "ada.lovelace", "created": record.created}
    assert verify_curator(store, "ada.lovelace", PASSWORD)
    assert not verify_curator(store, "ada.lovelace", PASSWORD + "!")
    assert not verify_curator(store, "nobody", PASSWORD)
    assert not verify_curator(store, "not a valid name", PASSWORD)
    assert [c.name for c in store.curators()] == ["ada.lovelace"]
    # Only the hash is kept: the password is nowhere in the database files.
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("site.db"))
    assert PASSWORD.encode() not in everything
    row = sqlite3.connect(tmp_path / "site.db").execute("SELECT password_hash, salt FROM curators").fetchone()
    assert (len(row[0]), len(row[1])) == (64, 16)


def test_a_second_add_is_refused_unless_it_replaces(store):
    first = add_curator(store, "ada", PASSWORD)
    with pytest.raises(AnnotationInputError, match="name: curator 'ada' exists already"):
        add_curator(store, "ada", "another password")
    assert verify_curator(store, "ada", PASSWORD)
    replaced = add_curator(store, "ada", "another password", replace=True)
    assert replaced.created == first.created
    assert verify_curator(store, "ada", "another password") and not verify_curator(store, "ada", PASSWORD)


def test_an_unknown_name_costs_one_hash_like_a_known_one(store, monkeypatch):
    add_curator(store, "ada", PASSWORD)
    calls = []
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *args: calls.append(args) or real(*args))
    verify_curator(store, "ada", "wrong password")
    verify_curator(store, "nobody", "wrong password")
    assert len(calls) == 2


@pytest.mark.parametrize("name", ["", " ada", "ada lovelace", "-ada", ".ada", "a" * 41, "adä", "ada\n", "a/b", None])
def test_bad_names_are_refused(store, name):
    with pytest.raises(AnnotationInputError) as error:
        add_curator(store, name, PASSWORD)
    assert error.value.field == "name"
    assert store.curators() == []


@pytest.mark.parametrize("name", ["a", "ada", "Ada_Lovelace-2", "a" * 40, "curator.1"])
def test_good_names_pass(name):
    assert check_curator_name(name) == name


def test_short_and_huge_passwords_are_refused(store):
    for password in ("x" * (MIN_PASSWORD - 1), "x" * 2000, 12345678901):
        with pytest.raises(AnnotationInputError) as error:
            add_curator(store, "ada", password)
        assert error.value.field == "password"
    assert store.curators() == []
