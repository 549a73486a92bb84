"""The licence PDF: rendered from the licence, sealed PAdES-B-LT by its agency's seal.

Made on first download and stored: the long-term validation material
(OCSP answers, CRLs) it embeds is taken at sealing time, in process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authority.agencies.models import Agency
from authority.licences.models import Licence, LicenceType
from authority.licences.service import effective_status
from authority.pki.models import CertificateRecord
from authority.pki.service import Pki, load_certificate
from authority.seals.pades import pki_revocation_material, seal_pdf
from authority.seals.pdf_render import (
    LICENCE_SEAL_BOX,
    LicenceField,
    LicenceView,
    render_licence_pdf,
)
from authority.seals.pdf_signer import KeyStorePdfSigner
from authority.seals.qr import qr_url
from authority.seals.qr_render import qr_png

HOLDER_LABELS = {
    "citizen": ("公民身份号码", "Resident identity number"),
    "business": ("统一社会信用代码", "Unified social credit code"),
}
STATUS_LABELS = {
    "valid": ("有效", "Valid"),
    "suspended": ("暂停", "Suspended"),
    "revoked": ("已撤销", "Revoked"),
    "expired": ("已过期", "Expired"),
}


def _labels(name: str, spec: Any) -> tuple[str, str]:
    """A field's bilingual labels from its schema ``title`` ("中文 / English")."""
    title = spec.get("title") if isinstance(spec, dict) else None
    if isinstance(title, str) and " / " in title:
        zh, en = title.split(" / ", 1)
        return zh.strip(), en.strip()
    return (title or name), (title or name)


def field_labels(schema: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each data field's labels, ``{"zh", "en"}``, from the type's JSON Schema titles."""
    properties: dict[str, Any] = schema.get("properties", {})
    labels = {}
    for name, spec in properties.items():
        zh, en = _labels(name, spec)
        labels[name] = {"zh": zh, "en": en}
    return labels


def licence_view(
    issuer: str, licence: Licence, licence_type: LicenceType, agency: Agency, now: datetime
) -> LicenceView:
    """What the printed licence shows."""
    properties: dict[str, Any] = licence_type.schema.get("properties", {})
    fields = tuple(
        LicenceField(*_labels(name, properties.get(name)), str(value))
        for name, value in licence.data.items()
    )
    url = qr_url(issuer, licence.qr_payload)
    status_zh, status_en = STATUS_LABELS[effective_status(licence, now)]
    id_zh, id_en = HOLDER_LABELS[licence.holder_kind]
    return LicenceView(
        title_zh=licence_type.name_zh,
        title_en=licence_type.name_en,
        number=licence.number,
        type_name_zh=licence_type.name_zh,
        type_name_en=licence_type.name_en,
        agency_name_zh=agency.name,
        agency_name_en=agency.name,
        holder_name=licence.holder_name,
        holder_id_label_zh=id_zh,
        holder_id_label_en=id_en,
        holder_id=licence.holder_id,
        valid_from=licence.valid_from.date(),
        valid_until=licence.valid_until.date(),
        issued_on=licence.issued_at.date(),
        status_zh=status_zh,
        status_en=status_en,
        fields=fields,
        qr_png=qr_png(url),
        verify_url=url,
    )


def sealed_pdf(
    pki: Pki,
    issuer: str,
    licence: Licence,
    licence_type: LicenceType,
    agency: Agency,
    now: datetime,
) -> bytes:
    """The licence PDF sealed PAdES-B-LT with the seal that sealed its document."""
    record = pki.session.get(CertificateRecord, licence.seal_certificate_id)
    issuer_record = pki.session.get(CertificateRecord, record.issuer_id) if record else None
    assert record is not None and issuer_record is not None
    seal = load_certificate(record)
    revocation, timestamper = pki_revocation_material(pki, seal, now)
    signer = KeyStorePdfSigner(pki.signer(record), seal, [load_certificate(issuer_record)])
    pdf = render_licence_pdf(licence_view(issuer, licence, licence_type, agency, now))
    return seal_pdf(
        pdf,
        signer,
        box=LICENCE_SEAL_BOX,
        timestamper=timestamper,
        revocation=revocation,
        agency_zh=agency.name,
        agency_en=agency.name,
    )
