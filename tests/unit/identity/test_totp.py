"""RFC 6238 time-based one-time passwords against the RFC's own test vectors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from authority.identity import totp

# RFC 6238 Appendix B: seeds are ASCII "1234567890" repeated to the hash's size.
SHA1_SEED = b"12345678901234567890"
SHA256_SEED = b"12345678901234567890123456789012"
SHA512_SEED = SHA1_SEED * 3 + b"1234"


@pytest.mark.parametrize(
    ("unix_time", "sha1", "sha256", "sha512"),
    [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ],
)
def test_rfc6238_appendix_b(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    step = unix_time // 30
    assert totp.hotp(SHA1_SEED, step, digits=8) == sha1
    assert totp.hotp(SHA256_SEED, step, digits=8, digest="sha256") == sha256
    assert totp.hotp(SHA512_SEED, step, digits=8, digest="sha512") == sha512


def test_codes_match_within_one_step_and_never_twice() -> None:
    secret = base64.b32encode(SHA1_SEED).decode().rstrip("=")
    at = datetime.fromtimestamp(1234567890, UTC)
    code = totp.code_at(secret, at)
    step = totp.time_step(at)
    assert totp.matching_step(secret, code, at, None) == step
    assert (
        totp.matching_step(secret, code, datetime.fromtimestamp(1234567890 + 30, UTC), None) == step
    )
    assert (
        totp.matching_step(secret, code, datetime.fromtimestamp(1234567890 + 60, UTC), None) is None
    )
    assert totp.matching_step(secret, code, at, last_step=step) is None  # replay refused
    assert totp.matching_step(secret, "12345", at, None) is None
    assert totp.matching_step(secret, "abcdef", at, None) is None


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXP", "11010519491231002X", "https://id.example.gov")
    assert uri.startswith("otpauth://totp/https%3A//id.example.gov%3A11010519491231002X?")
    assert "secret=JBSWY3DPEHPK3PXP" in uri
    assert "period=30" in uri and "digits=6" in uri
