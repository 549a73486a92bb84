"""Password hashes: made by argon2-cffi, argon2id ones verified by libsodium, others by
argon2-cffi, with the same answers either way."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import VerifyMismatchError
from nacl.exceptions import InvalidkeyError
from nacl.pwhash import argon2id as sodium_argon2id

from authority.identity.passwords import PasswordHasher

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture(scope="module")
def stored(hasher: PasswordHasher) -> str:
    return hasher.hash(PASSWORD)


def test_a_hash_verifies_its_password_only(hasher: PasswordHasher, stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=7168,t=5,p=1$")
    assert hasher.verify(stored, PASSWORD)
    assert not hasher.verify(stored, PASSWORD + " ")
    assert not hasher.verify(stored, "")
    assert not hasher.verify(stored, "口令" + PASSWORD)


def test_libsodium_and_argon2_cffi_agree_on_the_stored_hash(stored: str) -> None:
    # The hash argon2-cffi made verifies in libsodium, and a wrong password fails in both.
    assert sodium_argon2id.verify(stored.encode(), PASSWORD.encode())
    assert Argon2Hasher().verify(stored, PASSWORD)
    with pytest.raises(InvalidkeyError):
        sodium_argon2id.verify(stored.encode(), b"wrong password!")
    with pytest.raises(VerifyMismatchError):
        Argon2Hasher().verify(stored, "wrong password!")


def test_unknown_account_checks_the_decoy_and_is_refused(hasher: PasswordHasher) -> None:
    # No stored hash: the decoy is verified (same work), and the answer is always no.
    assert not hasher.verify(None, PASSWORD)
    assert not hasher.verify(None, "decoy password never accepted")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$" + "A" * 200,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$wrong-tag-é",
    ],
)
def test_a_malformed_hash_never_verifies(hasher: PasswordHasher, stored: str) -> None:
    assert not hasher.verify(stored, PASSWORD)


def test_other_argon2_hashes_still_verify(hasher: PasswordHasher) -> None:
    # Older or other-parameter hashes verify (then need a rehash): more lanes through
    # libsodium, another variant through argon2-cffi.
    lanes = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=4).hash(PASSWORD)
    variant = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, type=Type.I).hash(PASSWORD)
    # The configuration used before 2026-12-07 (OWASP's 19 MiB, t=2 option).
    earlier = Argon2Hasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(PASSWORD)
    assert earlier.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    for stored in (lanes, variant, earlier):
        assert hasher.verify(stored, PASSWORD)
        assert not hasher.verify(stored, PASSWORD + "!")
        assert hasher.needs_rehash(stored)
