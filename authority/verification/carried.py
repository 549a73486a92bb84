"""What a CMS seal carries beside its signature: certificates, digest algorithms, attributes.

RFC 5652 leaves the SignedData's ``certificates`` and ``digestAlgorithms``
outside the signature. A verifier that ignored them would call a seal whose
carried certificates were altered after sealing valid; ours requires every
carried certificate (in the seal and in its time-stamp tokens) to be one the
trust context knows, ``digestAlgorithms`` to name exactly the signer's, the
version numbers to be those RFC 5652 prescribes for the structure, and no
unsigned attribute but the signature time-stamp.
"""

from __future__ import annotations

from asn1crypto import cms, core

from authority.pki.asn1 import original_bytes
from authority.seals.cades import check_versions
from authority.verification.report import SealFailure, SubIndication
from authority.verification.trust import TrustContext

_MAX_DEPTH = 2  # a seal, and the time-stamp tokens inside it


def _read(der: bytes, depth: int) -> list[bytes]:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed_data = info["content"]
    check_versions(signed_data)
    carried = [
        original_bytes(choice.chosen)
        for choice in signed_data["certificates"] or []
        if choice.name == "certificate"
    ]
    if any(choice.name != "certificate" for choice in signed_data["certificates"] or []):
        raise ValueError("only X.509 certificates may be carried")
    listed = {a["algorithm"].native for a in signed_data["digest_algorithms"]}
    used = {s["digest_algorithm"]["algorithm"].native for s in signed_data["signer_infos"]}
    if listed != used:
        raise ValueError("digestAlgorithms does not name exactly the signers' digests")
    for signer in signed_data["signer_infos"]:
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
