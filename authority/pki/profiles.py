"""Certificate profiles (RFC 5280; ETSI EN 319 412-1/-3/-5 for the agency seal).

Root, issuing CA, time-stamping unit, OCSP responder and agency seal: each
profile takes the subject, its public key, the issuer certificate, the issuer's
:class:`~authority.pki.keystore.Signer` and the issuer's public URLs, and
returns the signed certificate. Validity is clamped to the issuer's notAfter.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from authority.errors import ConfigurationError, InvalidInput
from authority.pki.keystore import Signer
from authority.pki.x509sign import sign_certificate

# Default lifetimes (keyword arguments of each profile override them).
ROOT_VALIDITY = timedelta(days=20 * 365 + 5)
ISSUING_CA_VALIDITY = timedelta(days=10 * 365 + 2)
TSA_VALIDITY = timedelta(days=10 * 365 + 2)
OCSP_VALIDITY = timedelta(days=365)
SEAL_VALIDITY = timedelta(days=3 * 365 + 1)

# Policy identifiers. 2.999 is the ITU-T X.660 "example" arc: it is valid but
# belongs to nobody. An operator MUST replace AUTHORITY_OID_ARC with an arc it
# owns (e.g. an IANA private enterprise number 1.3.6.1.4.1.<PEN>) before
# issuing production certificates; the sub-arcs below stay as they are.
AUTHORITY_OID_ARC = "2.999.4711"
SEAL_POLICY_OID = AUTHORITY_OID_ARC + ".1.1"  # certificate policy of agency seals
# Only the authority's own trust-list seal carries this policy; verifiers of the trust
# list require it, so no agency seal (which chains to the same root) can sign a list.
TRUST_LIST_POLICY_OID = AUTHORITY_OID_ARC + ".1.2"
TSA_POLICY_OID = AUTHORITY_OID_ARC + ".2.1"  # time-stamping policy (RFC 3161 TSTInfo.policy)

# ETSI EN 319 412-5 QC statements and RFC 9336.
OID_QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"  # id-pe-qcStatements (RFC 3739 §3.2.6)
OID_QC_COMPLIANCE = "0.4.0.1862.1.1"  # esi4-qcStatement-1
OID_QC_TYPE = "0.4.0.1862.1.6"  # esi4-qcStatement-6
OID_QCT_ESEAL = "0.4.0.1862.1.6.2"  # id-etsi-qct-eseal
OID_QC_CC_LEGISLATION = "0.4.0.1862.1.7"  # esi4-qcStatement-7
OID_KP_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning (RFC 9336 §3.1)

# Agency seal EKU. Validators differ in what they demand of a document signer:
# - poppler (pdfsig, Okular, Evince) verifies the signer with NSS
#   CERT_PKIXVerifyCert(certificateUsageEmailSigner); NSS grants the e-mail
#   signer type to a certificate with an EKU only if that EKU contains
#   id-kp-emailProtection (cert_ComputeCertType), so without it poppler reports
#   a generic certificate error;
# - Adobe Acrobat/Reader accepts a signing certificate whose EKU, when present,
#   contains one of emailProtection, Adobe Authentic Documents Trust
#   (1.2.840.113583.1.1.5), Microsoft Document Signing or anyExtendedKeyUsage;
# - OpenSSL's smimesign purpose (and most S/MIME-derived CMS validators) also
#   requires emailProtection when an EKU is present;
# - RFC 9336 id-kp-documentSigning is the standard purpose for "contents
#   consumed by people" and what newer validators look for.
# So the seal carries emailProtection (what today's tools check) plus
# documentSigning (the standard statement of purpose), non-critical so that a
# validator that knows neither still applies RFC 5280 §4.2.1.12 leniently.
# Adobe's own OID is left out: it asserts membership of Adobe's trust list.
SEAL_EKU = (ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier(OID_KP_DOCUMENT_SIGNING))

_URL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AGENCY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")
_UB_NAME = 64  # ub-common-name / ub-organization-name (RFC 5280 Appendix A.1)


def new_serial() -> int:
    """A fresh positive 159-bit serial number with 158 random bits.

    RFC 5280 §4.1.2.2: serials MUST be positive and at most 20 octets; CA/B
    Forum practice asks for at least 64 random bits. The top bit is fixed so
    the DER INTEGER is always exactly 20 octets.
    """
    return secrets.randbits(158) | (1 << 158)


@dataclass(frozen=True)
class PkiUrls:
    """Where relying parties find one issuer's certificate, CRL and OCSP responder."""

    ca_issuers: str
    crl: str
    ocsp: str | None

    @classmethod
    def for_issuer(cls, base_url: str, issuer_name: str, *, ocsp: bool = True) -> PkiUrls:
        """The URLs published under ``base_url`` for the CA named ``issuer_name``.

        caIssuers points at the DER form ``/pki/ca/{name}.cer``: RFC 5280
        §4.2.2.1 says an HTTP caIssuers URI MUST point to a single DER
        certificate or a certs-only CMS message. The CRL URI points at
        ``/pki/crl/{name}.crl``, which MUST be a single DER CRL (§4.2.1.13).
        """
        return cls(
            ca_issuers=ca_certificate_url(base_url, issuer_name, der=True),
            crl=crl_url(base_url, issuer_name),
            ocsp=ocsp_url(base_url) if ocsp else None,
        )


def _base(base_url: str) -> str:
    if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", base_url):
        raise ConfigurationError(f"issuer base URL must be an http(s) URL, not {base_url!r}")
    return base_url.rstrip("/")


def _url_name(name: str) -> str:
    if not _URL_NAME.match(name):
        raise InvalidInput(f"CA name {name!r} must be 1-64 of A-Z a-z 0-9 . _ - (URL-safe)")
    return name


def ca_certificate_url(base_url: str, name: str, *, der: bool = True) -> str:
    """URL of CA ``name``'s certificate: ``.cer`` (DER) or ``.pem``."""
    return f"{_base(base_url)}/pki/ca/{_url_name(name)}.{'cer' if der else 'pem'}"


def crl_url(base_url: str, name: str) -> str:
    """URL of CA ``name``'s CRL (DER)."""
    return f"{_base(base_url)}/pki/crl/{_url_name(name)}.crl"


def ocsp_url(base_url: str) -> str:
    """URL of the OCSP responder (RFC 6960 over HTTP)."""
    return f"{_base(base_url)}/pki/ocsp"


def tsa_url(base_url: str) -> str:
    """URL of the time-stamping authority (RFC 3161 over HTTP)."""
    return f"{_base(base_url)}/pki/tsa"


def _check_country(country: str) -> str:
    if not _COUNTRY.match(country):
        raise InvalidInput(f"country must be an ISO 3166 alpha-2 code in capitals, not {country!r}")
    return country


def _check_name(label: str, value: str) -> str:
    if not value.strip() or len(value) > _UB_NAME:
        raise InvalidInput(f"{label} must be 1-{_UB_NAME} characters, not {value!r}")
    return value


@dataclass(frozen=True)
class AuthorityIdentity:
    """Who runs the PKI: the names of the authority's own certificates derive from it."""

    name: str
    organisation: str
    country: str

    def _subject(self, common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, _check_country(self.country)),
                x509.NameAttribute(
                    NameOID.ORGANIZATION_NAME, _check_name("organisation", self.organisation)
                ),
                x509.NameAttribute(NameOID.COMMON_NAME, _check_name("common name", common_name)),
            ]
        )

    def root_subject(self) -> x509.Name:
        """``C=…, O=…, CN=<name> Root CA``."""
        return self._subject(f"{self.name} Root CA")

    def seal_ca_subject(self) -> x509.Name:
        """``C=…, O=…, CN=<name> Seal CA``."""
        return self._subject(f"{self.name} Seal CA")

    def tsa_subject(self) -> x509.Name:
        """``C=…, O=…, CN=<name> Time-Stamping Unit``."""
        return self._subject(f"{self.name} Time-Stamping Unit")

    def ocsp_subject(self) -> x509.Name:
        """``C=…, O=…, CN=<name> OCSP Responder``."""
        return self._subject(f"{self.name} OCSP Responder")


@dataclass(frozen=True)
class AgencySeal:
    """The legal person an agency seal certificate names (ETSI EN 319 412-3 §4.2.1)."""

    code: str
    name: str
    country: str
    uscc: str | None = None

    @property
    def organization_identifier(self) -> str:
        """The EN 319 412-1 §5.1.4 semantic identifier of the agency.

        With a unified social credit code (GB 32100, the national register
        identifier every Chinese public body holds) it is ``NTR<C>-<USCC>``;
        the "NTR" type denotes a national register identifier. Without one it
        uses the locally defined scheme the clause allows (two letters and a
        colon): ``GV:<C>-<AGENCY CODE>``, where "GV" means "agency code
        registered with this authority".
        """
        country = _check_country(self.country)
        if self.uscc is not None:
            if not _USCC.match(self.uscc):
                raise InvalidInput(f"{self.uscc!r} is not an 18-character USCC (GB 32100)")
            return f"NTR{country}-{self.uscc}"
        if not _AGENCY_CODE.match(self.code):
            raise InvalidInput(f"agency code {self.code!r} must be 1-32 of A-Z a-z 0-9 _ -")
        return f"GV:{country}-{self.code.upper()}"

    def subject(self) -> x509.Name:
        """``C, O=<agency name>, organizationIdentifier, CN=<agency name>``.

        EN 319 412-3 §4.2.1: countryName, organizationName and
        organizationIdentifier shall be present; commonName names the seal.
        """
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, _check_country(self.country)),
                x509.NameAttribute(
                    NameOID.ORGANIZATION_NAME, _check_name("agency name", self.name)
                ),
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, self.organization_identifier),
                x509.NameAttribute(NameOID.COMMON_NAME, _check_name("agency name", self.name)),
            ]
        )


class _QcStatement(core.Sequence):
    _fields = [  # noqa: RUF012 - asn1crypto schema
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):
    _child_spec = _QcStatement


class _OidList(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class _CountryList(core.SequenceOf):
    _child_spec = core.PrintableString


def qc_statements_der(*, legislation: Sequence[str] = ()) -> bytes:
    """DER of the QCStatements extension value of an agency seal (EN 319 412-5 §4.2).

    QcCompliance (§4.2.1) says the certificate is issued as qualified; QcType
    (§4.2.3) says it is for electronic seals. ``legislation`` lists the
    countries under whose law it is qualified (QcCClegislation, §4.2.4), used
    by a non-EU trust service; pass nothing for an EU qualified certificate.
    """
    statements = [
        _QcStatement({"statement_id": OID_QC_COMPLIANCE}),
        _QcStatement({"statement_id": OID_QC_TYPE, "statement_info": _OidList([OID_QCT_ESEAL])}),
    ]
    if legislation:
        countries = _CountryList([_check_country(c) for c in legislation])
        statements.append(
            _QcStatement({"statement_id": OID_QC_CC_LEGISLATION, "statement_info": countries})
        )
    return bytes(_QcStatements(statements).dump())


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _check_issuer(issuer: x509.Certificate, signer: Signer) -> bytes:
    """Refuse an issuer that is not a CA or whose key ``signer`` does not hold; return its SKI."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if signer.public_key.public_bytes(*fmt) != issuer.public_key().public_bytes(*fmt):
        name = issuer.subject.rfc4514_string()
        raise ConfigurationError(f"key {signer.handle!r} is not the key of issuer {name}")
    try:
        basic = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        # RFC 5280 §4.2.1.2: CA certificates MUST carry a subjectKeyIdentifier.
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        basic, ski = None, None
    if basic is None or ski is None or not basic.ca:
        raise ConfigurationError(f"{issuer.subject.rfc4514_string()} is not a CA certificate")
    return ski.digest


_Extensions = list[tuple[x509.ExtensionType, bool]]  # (extension, critical)


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    signer: Signer,
    extensions: _Extensions,
    *,
    urls: PkiUrls | None,
    crl: bool = True,
    serial: int | None,
    not_before: datetime | None,
    validity: timedelta,
) -> x509.Certificate:
    """Build and sign one certificate; ``issuer`` None means self-signed."""
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    # RFC 5280 §4.2.1.1: AKI keyIdentifier = the issuer's SKI (our own for a root).
    aki = ski.digest if issuer is None else _check_issuer(issuer, signer)
    start = _utc(not_before)
    end = start + validity if issuer is None else min(start + validity, issuer.not_valid_after_utc)
    if end <= start:
        raise InvalidInput("validity ends before it starts (is the issuer expired?)")
    serial = new_serial() if serial is None else serial
    if not 0 < serial < 1 << 159:
        raise InvalidInput("serial must be positive and fit in 20 octets (RFC 5280 §4.1.2.2)")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
    )
    # RFC 5280 §4.2.1.2: SKI MUST NOT be critical; §4.2.1.1: AKI MUST NOT be critical.
    key_ids: _Extensions = [(ski, False), (x509.AuthorityKeyIdentifier(aki, None, None), False)]
    every = key_ids + extensions
    if urls is not None:
        every += _locations(urls, crl=crl)
    for extension, critical in every:
        builder = builder.add_extension(extension, critical=critical)
    return sign_certificate(builder, signer)


def _locations(urls: PkiUrls, *, crl: bool) -> _Extensions:
    """AIA (RFC 5280 §4.2.2.1, MUST be non-critical) and CRL DP (§4.2.1.13)."""
    uri = x509.UniformResourceIdentifier
    access = []
    if urls.ocsp is not None:
        access.append(x509.AccessDescription(AuthorityInformationAccessOID.OCSP, uri(urls.ocsp)))
    access.append(
        x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, uri(urls.ca_issuers))
    )
    found: _Extensions = [(x509.AuthorityInformationAccess(access), False)]
    if crl:
        point = x509.DistributionPoint([uri(urls.crl)], None, None, None)
        found.append((x509.CRLDistributionPoints([point]), False))
    return found


def _key_usage(
    *, signature: bool = False, commitment: bool = False, ca: bool = False
) -> x509.KeyUsage:
    # RFC 5280 §4.2.1.3: keyUsage SHOULD be critical; a CA's MUST assert keyCertSign.
    return x509.KeyUsage(signature, commitment, False, False, False, ca, ca, False, False)


def _policies(*oids: str) -> x509.CertificatePolicies:
    return x509.CertificatePolicies(
        [x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids]
    )


def root_ca_certificate(
    subject: x509.Name,
    signer: Signer,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    validity: timedelta = ROOT_VALIDITY,
    path_length: int = 1,
) -> x509.Certificate:
    """A self-signed root: CA:TRUE pathlen 1, keyCertSign + cRLSign, SKI (= AKI)."""
    # RFC 5280 §4.2.1.9: basicConstraints MUST be critical in CA certificates.
    extensions: _Extensions = [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_key_usage(ca=True), True),
    ]
    return _issue(
        subject, signer.public_key, None, signer, extensions, urls=None,
        serial=serial, not_before=not_before, validity=validity,
    )  # fmt: skip


def issuing_ca_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_signer: Signer,
    urls: PkiUrls,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    validity: timedelta = ISSUING_CA_VALIDITY,
) -> x509.Certificate:
    """The CA that issues seal, TSA and OCSP certificates: CA:TRUE pathlen 0.

    ``urls`` are the root's: its CRL and caIssuers (and OCSP if it has one).
    """
    extensions: _Extensions = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(ca=True), True),
        # anyPolicy lets explicit-policy validators (RFC 5280 §6.1) accept the seal policy.
        (_policies("2.5.29.32.0"), False),
    ]
    return _issue(
        subject, public_key, issuer, issuer_signer, extensions, urls=urls,
        serial=serial, not_before=not_before, validity=validity,
    )  # fmt: skip


def tsa_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_signer: Signer,
    urls: PkiUrls,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    validity: timedelta = TSA_VALIDITY,
) -> x509.Certificate:
    """A time-stamping unit: EKU timeStamping (critical, alone); signature, non-repudiation."""
    extensions: _Extensions = [
        # RFC 3161 §2.3: the TSA certificate MUST contain only one EKU instance,
        # id-kp-timeStamping, and the extension MUST be critical.
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        (_key_usage(signature=True, commitment=True), True),
    ]
    return _issue(
        subject, public_key, issuer, issuer_signer, extensions, urls=urls,
        serial=serial, not_before=not_before, validity=validity,
    )  # fmt: skip


def ocsp_responder_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_signer: Signer,
    urls: PkiUrls,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    validity: timedelta = OCSP_VALIDITY,
) -> x509.Certificate:
    """A delegated OCSP responder for ``issuer``: EKU OCSPSigning and id-pkix-ocsp-nocheck."""
    extensions: _Extensions = [
        # RFC 6960 §4.2.2.2: a delegated responder MUST carry id-kp-OCSPSigning and be
        # issued directly by the CA whose certificates it answers for.
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
        # RFC 6960 §4.2.2.2.1: id-pkix-ocsp-nocheck: clients need not check the responder's
        # own status; its short validity is what limits a compromise. Hence no CRL DP.
        (x509.OCSPNoCheck(), False),
        (_key_usage(signature=True), True),
    ]
    return _issue(
        subject, public_key, issuer, issuer_signer, extensions, urls=urls, crl=False,
        serial=serial, not_before=not_before, validity=validity,
    )  # fmt: skip


def seal_certificate(
    seal: AgencySeal,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_signer: Signer,
    urls: PkiUrls,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    validity: timedelta = SEAL_VALIDITY,
    policy_oid: str = SEAL_POLICY_OID,
    qc_legislation: Sequence[str] | None = None,
) -> x509.Certificate:
    """An agency's electronic seal (ETSI EN 319 412-3, legal person).

    ``qc_legislation`` defaults to the agency's own country (QcCClegislation);
    pass ``()`` when the seal is an EU qualified certificate.
    """
    legislation = (seal.country,) if qc_legislation is None else tuple(qc_legislation)
    qc = qc_statements_der(legislation=legislation)
    extensions: _Extensions = [
        # EN 319 412-2 §4.3.2 (which EN 319 412-3 §4.1 applies to seals): keyUsage for
        # content commitment, digitalSignature and nonRepudiation, critical.
        (_key_usage(signature=True, commitment=True), True),
        (x509.ExtendedKeyUsage(list(SEAL_EKU)), False),
        # EN 319 412-2 §4.3.3: certificatePolicies shall be present.
        (_policies(policy_oid), False),
        # EN 319 412-5 §4.1 / RFC 3739 §3.2.6: QCStatements is non-critical.
        (x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_QC_STATEMENTS), qc), False),
    ]
    return _issue(
        seal.subject(), public_key, issuer, issuer_signer, extensions, urls=urls,
        serial=serial, not_before=not_before, validity=validity,
    )  # fmt: skip
