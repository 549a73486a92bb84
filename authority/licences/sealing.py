"""Sealing licences with the issuing agency's seal: the document (CAdES-B-T) and the QR.

:class:`AgencySealer` binds an agency's current seal key and certificate, the
seal CA certificate and the in-process time-stamping authority; issuance
calls it for each licence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authority.agencies.models import Agency
from authority.db.base import utcnow
from authority.licences.models import Licence, LicenceType
from authority.pki.models import CertificateRecord
from authority.pki.service import Pki, load_certificate
from authority.pki.tsa import build_request, new_nonce, token_from_response
from authority.seals.cades import DocumentSealer
from authority.seals.qr import QrClaims, encode_qr_seal

# At most this many of a type's data fields ride in the QR seal (size: version <= 12).
QR_FIELDS = 4


def qr_fields(licence_type: LicenceType, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The type-specific fields the QR carries: those the schema marks ``"x-qr": true``,
    else its required fields, in schema order, as text."""
    properties: dict[str, Any] = licence_type.schema.get("properties", {})
    marked = [
        name
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get("x-qr") is True
    ]
    chosen = marked or [n for n in properties if n in licence_type.schema.get("required", [])]
    fields = []
    for name in chosen[:QR_FIELDS]:
        value = data.get(name)
        if isinstance(value, str | int | float | bool) and value != "":
            fields.append((name, str(value)))
    return tuple(fields)


class AgencySealer:
    """Seals an agency's licences with its current seal."""

    def __init__(self, pki: Pki, agency: Agency) -> None:
        record = pki.agency_seal(agency)
        issuer = pki.session.get(CertificateRecord, record.issuer_id)
        assert issuer is not None
        self.seal_record = record
        self._signer = pki.signer(record)
        self._certificate = load_certificate(record)
        tsa = pki.time_stamp_authority()

        def timestamp(signature: bytes) -> bytes:
            # RFC 3161 over the signature value, from our own TSA, in process.
            request = build_request(signature, nonce=new_nonce(), cert_req=True)
            return token_from_response(tsa.respond(request, utcnow()))

        self._sealer = DocumentSealer(
            self._signer, self._certificate, [load_certificate(issuer)], timestamp
        )

    def seal_document(self, document: bytes, signing_time: datetime) -> tuple[bytes, int]:
        """The detached CAdES-B-T seal over ``document`` and the sealing certificate's id."""
        return self._sealer.seal(document, signing_time), self.seal_record.id

    def qr_payload(self, licence: Licence, licence_type: LicenceType, agency: Agency) -> str:
        """The compact QR seal of ``licence``'s essential fields."""
        claims = QrClaims(
            number=licence.number,
            type_code=licence_type.code,
            holder_kind=licence.holder_kind,
            holder_id=licence.holder_id,
            holder_name=licence.holder_name,
            issued_on=licence.issued_at.date(),
            valid_from=licence.valid_from.date(),
            valid_until=licence.valid_until.date(),
            fields=qr_fields(licence_type, licence.data),
        )
        return encode_qr_seal(claims, self._signer, self._certificate)
