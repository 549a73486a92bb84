"""Certificate profiles and the HSM-friendly signing path, checked with cryptography and openssl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from authority.errors import ConfigurationError, InvalidInput
from authority.pki import profiles
from authority.pki.keystore import KeyAlgorithm, KeyStoreError
from authority.pki.x509sign import sign_certificate
from tests.unit.pki import pki_fixtures
from tests.unit.pki.memory_signer import MemoryKeyStore
from tests.unit.pki.pki_fixtures import AGENCY, BASE_URL, IDENTITY, Pki, ca_urls, openssl

pki = pki_fixtures.pki
pki_files = pki_fixtures.pki_files


def ext(
    cert: x509.Certificate, cls: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(cls)


def test_chain_signatures_verify(pki: Pki) -> None:
    pki.root.verify_directly_issued_by(pki.root)
    pki.ca.verify_directly_issued_by(pki.root)
    for cert in (pki.seal, pki.tsa, pki.ocsp):
        cert.verify_directly_issued_by(pki.ca)


def test_signature_algorithms_follow_the_issuer_key(pki: Pki) -> None:
    assert pki.root.signature_hash_algorithm.name == "sha384"
    assert pki.ca.signature_hash_algorithm.name == "sha384"  # signed by the P-384 root
    assert pki.seal.signature_hash_algorithm.name == "sha256"  # signed by the P-256 CA
    assert pki.seal.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256


@pytest.mark.parametrize(
    ("name", "purpose"),
    [("seal", "smimesign"), ("tsa", "timestampsign"), ("ocsp", "ocsphelper")],
)
def test_openssl_verifies_each_leaf_for_its_purpose(pki_files, name, purpose) -> None:
    result = openssl(
        "verify",
        "-CAfile",
        pki_files["root"],
        "-untrusted",
        pki_files["ca"],
        "-purpose",
        purpose,
        pki_files[name],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{pki_files[name]}: OK"


@pytest.mark.parametrize(
    ("name", "purpose"), [("seal", "sslserver"), ("seal", "smimeencrypt"), ("ocsp", "smimesign")]
)
def test_openssl_refuses_other_purposes(pki_files, name, purpose) -> None:
    result = openssl(
        "verify",
        "-CAfile",
        pki_files["root"],
        "-untrusted",
        pki_files["ca"],
        "-purpose",
        purpose,
        pki_files[name],
    )
    assert result.returncode != 0
    assert "error 26 at 0 depth lookup: unsuitable certificate purpose" in result.stderr


def test_root_profile(pki: Pki) -> None:
    root = pki.root
    assert root.subject == root.issuer
    assert root.subject.rfc4514_string() == "CN=Test Authority Root CA,O=Test Government,C=CN"
    basic = ext(root, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 1
    usage = ext(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext(root, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(pki.root_signer.public_key)
    assert ext(root, x509.AuthorityKeyIdentifier).value.key_identifier == ski.value.digest
    assert root.not_valid_after_utc - root.not_valid_before_utc == profiles.ROOT_VALIDITY


def test_issuing_ca_profile(pki: Pki) -> None:
    ca = pki.ca
    assert ca.issuer == pki.root.subject
    basic = ext(ca, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert (
        ext(ca, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(pki.root, x509.SubjectKeyIdentifier).value.digest
    )
    aia = ext(ca, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{BASE_URL}/pki/ca/root.cer"),
    ]
    crl_dp = ext(ca, x509.CRLDistributionPoints).value
    assert [n.value for n in crl_dp[0].full_name] == [f"{BASE_URL}/pki/crl/root.crl"]
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == profiles.ISSUING_CA_VALIDITY


def test_tsa_profile(pki: Pki) -> None:
    eku = ext(pki.tsa, x509.ExtendedKeyUsage)
    assert eku.critical  # RFC 3161 §2.3
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = ext(pki.tsa, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    crl_dp = ext(pki.tsa, x509.CRLDistributionPoints).value
    assert [n.value for n in crl_dp[0].full_name] == [f"{BASE_URL}/pki/crl/seal-ca.crl"]


def test_ocsp_profile(pki: Pki) -> None:
    eku = ext(pki.ocsp, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert isinstance(ext(pki.ocsp, x509.OCSPNoCheck).value, x509.OCSPNoCheck)
    usage = ext(pki.ocsp, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        ext(pki.ocsp, x509.CRLDistributionPoints)
    assert pki.ocsp.not_valid_after_utc - pki.ocsp.not_valid_before_utc == profiles.OCSP_VALIDITY


def test_seal_profile(pki: Pki) -> None:
    seal = pki.seal
    attrs = [(a.oid, a.value) for a in seal.subject]
    assert attrs == [
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, "Ministry of Testing"),
        (NameOID.ORGANIZATION_IDENTIFIER, "GV:CN-MOT"),
        (NameOID.COMMON_NAME, "Ministry of Testing"),
    ]
    usage = ext(seal, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_encipherment
    eku = ext(seal, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert [o.dotted_string for o in eku.value] == ["1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36"]
    policies = ext(seal, x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [profiles.SEAL_POLICY_OID]
    aia = ext(seal, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{BASE_URL}/pki/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{BASE_URL}/pki/ca/seal-ca.cer"),
    ]
    assert (
        ext(seal, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(pki.ca, x509.SubjectKeyIdentifier).value.digest
    )
    with pytest.raises(x509.ExtensionNotFound):
        ext(seal, x509.BasicConstraints)
    assert seal.not_valid_after_utc - seal.not_valid_before_utc == profiles.SEAL_VALIDITY


def test_seal_qc_statements_decode_independently(pki: Pki, pki_files) -> None:
    qc = pki.seal.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(profiles.OID_QC_STATEMENTS)
    )
    assert not qc.critical
    # Walk the DER by hand with generic ASN.1 types, not with the schema that wrote it.
    statements = core.Sequence.load(qc.value.value)
    decoded = []
    for index in range(len(statements)):
        statement = core.Sequence.load(statements[index].dump())
        oid = core.ObjectIdentifier.load(statement[0].dump()).dotted
        info = [core.Asn1Value.load(statement[1].dump())] if len(statement) > 1 else []
        decoded.append((oid, [i.dump() for i in info]))
    assert [d[0] for d in decoded] == ["0.4.0.1862.1.1", "0.4.0.1862.1.6", "0.4.0.1862.1.7"]
    assert decoded[0][1] == []
    assert decoded[1][1] == [bytes.fromhex("3009060704008e46010602")]
    assert decoded[2][1] == [b"\x30\x04\x13\x02CN"]
    # openssl names the extension and its ETSI OIDs when asked to parse the extension value.
    text = openssl("x509", "-in", pki_files["seal"], "-noout", "-text").stdout
    assert "qcStatements:" in text
    assert (
        "X509v3 Extended Key Usage: \n                E-mail Protection, 1.3.6.1.5.5.7.3.36" in text
    )
    der = pki_files["seal"].with_suffix(".der")
    der.write_bytes(pki.seal.public_bytes(serialization.Encoding.DER))
    parsed = openssl("asn1parse", "-inform", "DER", "-in", der).stdout.splitlines()
    line = next(i for i, ln in enumerate(parsed) if ":qcStatements" in ln)
    offset = parsed[line + 1].split(":")[0].strip()
    inner = openssl("asn1parse", "-inform", "DER", "-in", der, "-strparse", offset).stdout
    assert "OBJECT            :0.4.0.1862.1.1" in inner
    assert "OBJECT            :0.4.0.1862.1.6.2" in inner
    assert "PRINTABLESTRING   :CN" in inner


def test_eu_seal_omits_qc_legislation() -> None:
    der = profiles.qc_statements_der()
    assert b"\x06\x06\x04\x00\x8e\x46\x01\x07" not in der
    assert der == bytes.fromhex(
        "301f"  # SEQUENCE OF QCStatement
        "3008 0606 04008e460101"  # QcCompliance, no statementInfo
        "3013 0606 04008e460106 3009 0607 04008e46010602"  # QcType { qct-eseal }
    )


def test_organization_identifier_schemes() -> None:
    assert AGENCY.organization_identifier == "GV:CN-MOT"
    with_uscc = profiles.AgencySeal(code="x", name="X", country="CN", uscc="11100000000013338W")
    assert with_uscc.organization_identifier == "NTRCN-11100000000013338W"
    with pytest.raises(InvalidInput):
        _ = profiles.AgencySeal(
            code="x", name="X", country="CN", uscc="not-a-uscc"
        ).organization_identifier
    with pytest.raises(InvalidInput):
        _ = profiles.AgencySeal(code="bad code!", name="X", country="CN").organization_identifier


@pytest.mark.parametrize(
    "identity",
    [
        profiles.AuthorityIdentity(name="T", organisation="O", country="China"),
        profiles.AuthorityIdentity(name="T", organisation="O", country="cn"),
        profiles.AuthorityIdentity(name="T" * 60, organisation="O", country="CN"),
        profiles.AuthorityIdentity(name="T", organisation="", country="CN"),
    ],
)
def test_bad_subject_data_is_refused(identity: profiles.AuthorityIdentity) -> None:
    with pytest.raises(InvalidInput):
        identity.root_subject()


def test_urls() -> None:
    urls = profiles.PkiUrls.for_issuer("https://trust.example.gov/", "seal-ca")
    assert urls == profiles.PkiUrls(
        ca_issuers="https://trust.example.gov/pki/ca/seal-ca.cer",
        crl="https://trust.example.gov/pki/crl/seal-ca.crl",
        ocsp="https://trust.example.gov/pki/ocsp",
    )
    assert profiles.ca_certificate_url(BASE_URL, "root", der=False) == f"{BASE_URL}/pki/ca/root.pem"
    assert profiles.tsa_url(BASE_URL) == f"{BASE_URL}/pki/tsa"
    with pytest.raises(InvalidInput):
        profiles.crl_url(BASE_URL, "../etc/passwd")
    with pytest.raises(ConfigurationError):
        profiles.ocsp_url("ftp://example.org")


def test_new_serial_is_positive_20_octets_and_random() -> None:
    serials = {profiles.new_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(s.bit_length() == 159 for s in serials)
    assert all(len(core.Integer(s).contents) == 20 for s in serials)


def test_validity_is_clamped_to_the_issuer(pki: Pki) -> None:
    cert, _ = pki.new_seal()
    longer = profiles.seal_certificate(
        AGENCY,
        cert.public_key(),
        pki.ca,
        pki.ca_signer,
        ca_urls(),
        validity=timedelta(days=365 * 50),
    )
    assert longer.not_valid_after_utc == pki.ca.not_valid_after_utc


def test_explicit_serial_and_start(pki: Pki) -> None:
    start = datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    cert = profiles.tsa_certificate(
        IDENTITY.tsa_subject(),
        pki.tsa.public_key(),
        pki.ca,
        pki.ca_signer,
        ca_urls(),
        serial=12345,
        not_before=start,
        validity=timedelta(days=30),
    )
    assert cert.serial_number == 12345
    assert cert.not_valid_before_utc == start.replace(microsecond=0)
    assert cert.not_valid_after_utc == start.replace(microsecond=0) + timedelta(days=30)
    with pytest.raises(InvalidInput):
        profiles.tsa_certificate(
            IDENTITY.tsa_subject(), pki.tsa.public_key(), pki.ca, pki.ca_signer, ca_urls(), serial=0
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        profiles.tsa_certificate(
            IDENTITY.tsa_subject(),
            pki.tsa.public_key(),
            pki.ca,
            pki.ca_signer,
            ca_urls(),
            not_before=datetime(2030, 1, 1),
        )


def test_issuer_key_and_role_are_checked(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="is not the key of issuer"):
        profiles.seal_certificate(AGENCY, pki.seal.public_key(), pki.ca, pki.root_signer, ca_urls())
    with pytest.raises(ConfigurationError, match="is not a CA certificate"):
        profiles.seal_certificate(
            AGENCY, pki.seal.public_key(), pki.seal, pki.seal_signer, ca_urls()
        )


class _LyingStore(MemoryKeyStore):
    """Signs with a different key than the one it reports."""

    def sign(self, handle: str, data: bytes) -> bytes:
        other = self.generate("other", self.get(handle).algorithm)
        return super().sign(other.handle, data)


def test_a_signature_from_the_wrong_key_is_never_released() -> None:
    store = _LyingStore()
    signer = store.signer(store.generate("root").handle)
    with pytest.raises(KeyStoreError, match="does not verify"):
        profiles.root_ca_certificate(IDENTITY.root_subject(), signer)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_sign_certificate_keeps_the_tbs_and_uses_the_store_key(algorithm: KeyAlgorithm) -> None:
    store = MemoryKeyStore()
    signer = store.signer(store.generate("k", algorithm).handle)
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(IDENTITY.root_subject())
        .issuer_name(IDENTITY.root_subject())
        .public_key(signer.public_key)
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    before = store.sign_calls
    cert = sign_certificate(builder, signer)
    assert store.sign_calls == before + 1
    cert.verify_directly_issued_by(cert)
    assert cert.signature_hash_algorithm.name == algorithm.hash_algorithm.name
    assert isinstance(cert.signature_hash_algorithm, type(algorithm.hash_algorithm))
    assert cert.serial_number == 7
    assert cert.fingerprint(hashes.SHA256()) != b""
