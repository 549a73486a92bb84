"""CRLs: structure per RFC 5280 §5 and revocation as openssl sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from authority.errors import ConfigurationError, InvalidInput
from authority.pki.crl import RevocationReason, RevokedEntry, build_crl, parse_reason
from tests.unit.pki import pki_fixtures
from tests.unit.pki.pki_fixtures import Pki, openssl

pki = pki_fixtures.pki
pki_files = pki_fixtures.pki_files

NOW = datetime.now(UTC).replace(microsecond=0)
RFC_NAMES = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
]


def ca_crl(pki: Pki, *entries: RevokedEntry, number: int = 1) -> bytes:
    return build_crl(
        pki.ca,
        pki.ca_signer,
        number=number,
        this_update=NOW - timedelta(minutes=1),
        next_update=NOW + timedelta(days=1),
        revoked=entries,
    )


def root_crl(pki: Pki) -> bytes:
    return build_crl(
        pki.root,
        pki.root_signer,
        number=1,
        this_update=NOW - timedelta(minutes=1),
        next_update=NOW + timedelta(days=30),
        revoked=[],
    )


def write_crl(path: Path, *ders: bytes) -> Path:
    path.write_bytes(b"".join(x509.load_der_x509_crl(d).public_bytes(Encoding.PEM) for d in ders))
    return path


def verify_seal(pki_files: dict[str, Path], crl_der: bytes, root_crl_der: bytes | None = None):
    """``openssl verify`` of the seal: leaf-only CRL check, or the whole chain with both CRLs."""
    directory = pki_files["root"].parent
    if root_crl_der is None:
        crl_args = ["-crl_check", "-CRLfile", write_crl(directory / "ca.crl", crl_der)]
    else:
        crls = write_crl(directory / "crls.pem", crl_der, root_crl_der)
        crl_args = ["-crl_check_all", "-CRLfile", crls]
    return openssl(
        "verify",
        "-CAfile",
        pki_files["root"],
        "-untrusted",
        pki_files["ca"],
        *crl_args,
        pki_files["seal"],
    )


def test_crl_structure(pki: Pki) -> None:
    revoked_at = NOW - timedelta(hours=2)
    der = ca_crl(
        pki,
        RevokedEntry(1001, revoked_at, RevocationReason.KEY_COMPROMISE),
        RevokedEntry(1002, revoked_at, RevocationReason.UNSPECIFIED),
        RevokedEntry(1003, revoked_at, RevocationReason.CERTIFICATE_HOLD),
        number=42,
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(pki.ca.public_key())
    assert crl.issuer == pki.ca.subject
    assert crl.last_update_utc == NOW - timedelta(minutes=1)
    assert crl.next_update_utc == NOW + timedelta(days=1)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert number.value.crl_number == 42 and not number.critical
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = pki.ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    entries = {e.serial_number: e for e in crl}
    assert sorted(entries) == [1001, 1002, 1003]
    assert entries[1001].revocation_date_utc == revoked_at
    assert entries[1001].extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert entries[1003].extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.certificate_hold
    )
    # RFC 5280 §5.3.1: "unspecified" is expressed by the absence of reasonCode.
    assert len(entries[1002].extensions) == 0


def test_openssl_reads_and_verifies_the_crl(pki: Pki, pki_files) -> None:
    der = ca_crl(pki, RevokedEntry(pki.seal.serial_number, NOW, RevocationReason.SUPERSEDED))
    path = write_crl(pki_files["root"].parent / "ca.crl", der)
    result = openssl("crl", "-in", path, "-noout", "-text", "-CAfile", pki_files["ca"])
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr
    assert "X509v3 CRL Number: \n                1\n" in result.stdout
    assert f"Serial Number: {pki.seal.serial_number:040X}" in result.stdout
    assert "X509v3 CRL Reason Code: \n                Superseded" in result.stdout


@pytest.mark.parametrize("whole_chain", [False, True])
def test_openssl_accepts_an_unrevoked_seal(pki: Pki, pki_files, whole_chain: bool) -> None:
    result = verify_seal(pki_files, ca_crl(pki), root_crl(pki) if whole_chain else None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{pki_files['seal']}: OK"


@pytest.mark.parametrize("whole_chain", [False, True])
def test_openssl_rejects_a_revoked_seal(pki: Pki, pki_files, whole_chain: bool) -> None:
    root = root_crl(pki) if whole_chain else None
    first = verify_seal(pki_files, ca_crl(pki, RevokedEntry(5, NOW)), root)
    assert first.returncode == 0, first.stderr  # an unrelated serial changes nothing
    crl = ca_crl(
        pki,
        RevokedEntry(5, NOW),
        RevokedEntry(pki.seal.serial_number, NOW, RevocationReason.KEY_COMPROMISE),
        number=2,
    )
    result = verify_seal(pki_files, crl, root)
    assert result.returncode != 0
    assert "error 23 at 0 depth lookup: certificate revoked" in result.stderr


def test_openssl_wants_the_crl_it_is_told_to_check(pki: Pki, pki_files) -> None:
    # Without the root's CRL a whole-chain check cannot pass: the check is real.
    result = openssl(
        "verify",
        "-CAfile",
        pki_files["root"],
        "-untrusted",
        pki_files["ca"],
        "-crl_check_all",
        "-CRLfile",
        write_crl(pki_files["root"].parent / "only-ca.crl", ca_crl(pki)),
        pki_files["seal"],
    )
    assert result.returncode != 0
    assert "unable to get certificate CRL" in result.stderr


def test_openssl_rejects_a_crl_signed_by_another_key(pki: Pki, pki_files) -> None:
    # Same bytes as a genuine CRL of the CA, but signed by a stranger's key.
    stranger = ec.generate_private_key(ec.SECP256R1())
    genuine = x509.load_der_x509_crl(ca_crl(pki))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(genuine.issuer)
        .last_update(genuine.last_update_utc)
        .next_update(genuine.next_update_utc)
    )
    for extension in genuine.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    forged = builder.sign(stranger, hashes.SHA256()).public_bytes(Encoding.DER)
    path = write_crl(pki_files["root"].parent / "forged.crl", forged)
    # openssl crl exits 0 either way (OpenSSL 3.0); its verdict is on stderr.
    result = openssl("crl", "-in", path, "-noout", "-CAfile", pki_files["ca"])
    assert result.stderr.strip() == "verify failure"
    chain = verify_seal(pki_files, forged)
    assert chain.returncode != 0
    assert "CRL signature failure" in chain.stderr
    genuine_path = write_crl(pki_files["root"].parent / "genuine.crl", ca_crl(pki))
    assert (
        "verify OK"
        in openssl("crl", "-in", genuine_path, "-noout", "-CAfile", pki_files["ca"]).stderr
    )


@pytest.mark.parametrize("name", RFC_NAMES)
def test_parse_reason_accepts_every_rfc_name(name: str) -> None:
    reason = parse_reason(name)
    assert reason.value == name
    assert RevocationReason.from_code(reason.code) is reason


def test_reason_codes_match_rfc_5280() -> None:
    assert [r.code for r in RevocationReason] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert [r.flag.value for r in RevocationReason] == RFC_NAMES
    with pytest.raises(InvalidInput):
        RevocationReason.from_code(7)


@pytest.mark.parametrize("name", ["key_compromise", "KeyCompromise", "", "compromised"])
def test_parse_reason_names_the_valid_reasons(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_reason(name)
    assert caught.value.detail == (
        f"unknown revocation reason {name!r}; valid reasons: " + ", ".join(RFC_NAMES)
    )
    assert caught.value.extensions["valid"] == RFC_NAMES


def test_remove_from_crl_is_refused_in_a_full_crl(pki: Pki) -> None:
    with pytest.raises(InvalidInput, match="delta"):
        ca_crl(pki, RevokedEntry(9, NOW, RevocationReason.REMOVE_FROM_CRL))


def test_duplicate_serials_are_refused(pki: Pki) -> None:
    with pytest.raises(InvalidInput, match="twice"):
        ca_crl(pki, RevokedEntry(9, NOW), RevokedEntry(9, NOW - timedelta(days=1)))


def test_bad_parameters_are_refused(pki: Pki) -> None:
    with pytest.raises(InvalidInput, match="later"):
        build_crl(pki.ca, pki.ca_signer, number=1, this_update=NOW, next_update=NOW, revoked=[])
    with pytest.raises(InvalidInput, match="20 octets"):
        build_crl(
            pki.ca,
            pki.ca_signer,
            number=-1,
            this_update=NOW,
            next_update=NOW + timedelta(1),
            revoked=[],
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        build_crl(
            pki.ca,
            pki.ca_signer,
            number=1,
            this_update=datetime(2030, 1, 1),
            next_update=NOW + timedelta(1),
            revoked=[],
        )
    with pytest.raises(ConfigurationError, match="not the key of the CRL issuer"):
        build_crl(
            pki.ca,
            pki.root_signer,
            number=1,
            this_update=NOW,
            next_update=NOW + timedelta(1),
            revoked=[],
        )
