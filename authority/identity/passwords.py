"""Password hashing with argon2id (RFC 9106).

Parameters are one of the five argon2id configurations that OWASP's Password
Storage Cheat Sheet gives as its minimum, all of "an equal level of defense"
trading memory for passes: m=7 MiB, t=5 passes, p=1 lane (16-byte salt, 32-byte
tag), which is also Keycloak's default (the issue's reference for login
throughput). Of the five it costs the least CPU here, because its memory stays
in the processor's cache: 12.7 ms a verification against 23.3 ms for the 19 MiB,
t=2 option used until 2026-12-07, and the rest of a login runs faster with the
cache left intact (docs/identity.md, docs/performance.md). RFC 9106 §4's
low-memory option (64 MiB, t=3, p=4) costs many times the CPU per login, which
the issue's login throughput target cannot afford on one core. A stored hash
made with other parameters still verifies and is re-hashed with these at the
next successful login, so changing them is safe.

Hashes are made by argon2-cffi. An argon2id (version 19) hash is verified by
libsodium instead (PyNaCl): the same algorithm on the same stored hash with its
own parameters, but libsodium picks an AVX2 or AVX-512 block function for the
processor it runs on, where argon2-cffi's wheels are built for plain SSE2, so
a login's check costs about a fifth less CPU (docs/performance.md). Both
compare the tag in constant time; other hashes (argon2i, argon2d, version 16)
are verified by argon2-cffi.
"""

from __future__ import annotations

from argon2 import Parameters, Type
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from nacl.exceptions import InvalidkeyError
from nacl.pwhash import argon2id as sodium_argon2id

from authority.errors import InvalidInput

# OWASP Password Storage Cheat Sheet, argon2id minimum configuration (m=7 MiB, t=5, p=1).
PARAMETERS = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=5,
    memory_cost=7 * 1024,
    parallelism=1,
)
# The hashes libsodium verifies: argon2id, version 19 (whatever their cost parameters).
_SODIUM_PREFIX = "$argon2id$v=19$m="
_SODIUM_MAX_LENGTH = 127  # crypto_pwhash_STRBYTES less the terminating NUL
MIN_LENGTH = 12
MAX_LENGTH = 256


class PasswordHasher:
    """Hashes and checks passwords; the only place password bytes are handled."""

    def __init__(self) -> None:
        self._argon2 = Argon2Hasher.from_parameters(PARAMETERS)
        # Checked when the account is unknown, so that answer takes as long as a wrong
        # password (no user enumeration by timing).
        self._decoy = self._argon2.hash("decoy password never accepted")

    def hash(self, password: str) -> str:
        """The argon2id PHC string of an acceptable ``password``."""
        check_password_policy(password)
        return self._argon2.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; takes as long when ``stored`` is None."""
        encoded = stored or self._decoy
        if encoded.startswith(_SODIUM_PREFIX) and len(encoded) <= _SODIUM_MAX_LENGTH:
            try:
                sodium_argon2id.verify(encoded.encode("ascii"), password.encode("utf-8"))
            except (InvalidkeyError, UnicodeEncodeError):
                return False
            return stored is not None
        try:
            self._argon2.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than today's."""
        return self._argon2.check_needs_rehash(stored)


def check_password_policy(password: str) -> None:
    """Refuse passwords too short or too long to be a sensible secret."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidInput(f"a password must have {MIN_LENGTH} to {MAX_LENGTH} characters")
    if password != password.strip():
        raise InvalidInput("a password must not start or end with white space")
