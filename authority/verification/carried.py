"""What a CMS seal carries beside its signature: certificates, digest algorithms, attributes.

RFC 5652 leaves the SignedData's ``certificates`` and ``digestAlgorithms``
outside the signature. A verifier that ignored them would call a seal whose
carried certificates were altered after sealing valid; ours requires every
carried certificate (in the seal and in its time-stamp tokens) to be one the
trust context knows, ``digestAlgorithms`` to list exactly the signer's
digest algorithm (the same octets), algorithm parameters to be absent or NULL,
each signer to name a carried certificate by the exact octets of its issuer,
the version numbers to be those RFC 5652 prescribes for the structure, the
whole to be strict DER, and no unsigned attribute but the signature time-stamp.
"""

from __future__ import annotations

from asn1crypto import algos, cms, core

from authority.pki.asn1 import check_strict_der, original_bytes
from authority.seals.cades import check_versions
from authority.verification.report import SealFailure, SubIndication
from authority.verification.trust import TrustContext

_MAX_DEPTH = 2  # a seal, and the time-stamp tokens inside it


def _check_algorithm(identifier: algos.DigestAlgorithm | algos.SignedDigestAlgorithm) -> None:
    # RFC 5754 §2, RFC 5758 §3.2: a SHA-2 digest's parameters are absent or NULL, an
    # ECDSA signature's absent; nothing else may ride along outside the signature.
    parameters = identifier["parameters"]
    if not isinstance(parameters, core.Void | core.Null):
        raise ValueError(f"unexpected parameters for {identifier['algorithm'].dotted}")


def _read(der: bytes, depth: int) -> list[bytes]:
    if check_strict_der(der) != len(der):
        raise ValueError("octets after the ContentInfo")
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed_data = info["content"]
    check_versions(signed_data)
    choices = signed_data["certificates"] or []
    if any(choice.name != "certificate" for choice in choices):
        raise ValueError("only X.509 certificates may be carried")
    carried = [original_bytes(choice.chosen) for choice in choices]
    # Each signer names its certificate by the octets of its issuer: names compare
    # case-insensitively (RFC 5280 §7.1), so another spelling would still match.
    issued = {
        (original_bytes(tbs["issuer"]), tbs["serial_number"].native)
        for tbs in (choice.chosen["tbs_certificate"] for choice in choices)
    }
    listed = {original_bytes(a) for a in signed_data["digest_algorithms"]}
    used = {original_bytes(s["digest_algorithm"]) for s in signed_data["signer_infos"]}
    if listed != used:
        raise ValueError("digestAlgorithms does not name exactly the signers' digests")
    for signer in signed_data["signer_infos"]:
        sid = signer["sid"]
        if (
            sid.name != "issuer_and_serial_number"
            or (
                original_bytes(sid.chosen["issuer"]),
                sid.chosen["serial_number"].native,
            )
            not in issued
        ):
            raise ValueError("a signer names no carried certificate by its exact issuer")
        _check_algorithm(signer["digest_algorithm"])
        _check_algorithm(signer["signature_algorithm"])
        attributes = signer["unsigned_attrs"]
        for attribute in [] if isinstance(attributes, core.Void) else attributes:
            # Our seals carry one kind of unsigned attribute, the signature time-stamp
            # (EN 319 122-1 §5.3); time-stamp tokens carry none.
            if depth >= _MAX_DEPTH or attribute["type"].native != "signature_time_stamp_token":
                raise ValueError(f"unexpected unsigned attribute {attribute['type'].dotted}")
            for token in attribute["values"]:
                carried += _read(original_bytes(token), depth + 1)
    return carried


def check_carried(context: TrustContext, der: bytes) -> None:
    """Raise :class:`SealFailure` unless what ``der`` carries unsigned is as we seal it."""
    try:
        carried = _read(der, 1)
    except Exception as exc:  # asn1crypto raises many types on hostile input
        raise SealFailure(
            SubIndication.FORMAT_FAILURE, "carried-certificates", f"unreadable seal: {exc}"
        ) from None
    known = {k.der for k in context.certificates}
    unknown = [c for c in carried if c not in known]
    if unknown:
        raise SealFailure(
            SubIndication.FORMAT_FAILURE,
            "carried-certificates",
            f"the seal carries {len(unknown)} certificate(s) this authority did not issue",
        )
