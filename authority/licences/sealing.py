"""Sealing licences with the issuing agency's seal: the document (CAdES-B-T) and the QR.

:class:`AgencySealer` binds an agency's current seal key and certificate, the
seal CA certificate and the in-process time-stamping authority; issuance
calls it for each licence. :class:`SealerCache` keeps them between requests
for as long as their certificates stay current.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from authority.agencies.models import Agency
from authority.db.base import utcnow
from authority.licences.models import Licence, LicenceType
from authority.pki.models import CertificateRecord, CertificateRole
from authority.pki.service import TSA_NAME, Pki, load_certificate
from authority.seals.cades import DocumentSealer
from authority.seals.qr import QrClaims, QrSealer

# At most this many of a type's data fields ride in the QR seal (size: version <= 12).
QR_FIELDS = 4


def qr_fields(licence_type: LicenceType, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The type-specific fields the QR carries: those the schema marks ``"x-qr": true``,
    else its required fields, in schema order, as text."""
    return _field_values(qr_field_names(licence_type.schema), data)


def qr_field_names(schema: dict[str, Any]) -> list[str]:
    """The names of the fields :func:`qr_fields` takes from a licence type's ``schema``."""
    properties: dict[str, Any] = schema.get("properties", {})
    marked = [
        name
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get("x-qr") is True
    ]
    chosen = marked or [n for n in properties if n in schema.get("required", [])]
    return chosen[:QR_FIELDS]


def _field_values(names: list[str], data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    fields = []
    for name in names:
        value = data.get(name)
        if isinstance(value, str | int | float | bool) and value != "":
            fields.append((name, str(value)))
    return tuple(fields)


class AgencySealer:
    """Seals an agency's licences with its current seal.

    Built from the current seal and TSA certificates of ``pki`` (or the records
    given). Immutable once built: :class:`SealerCache` shares one between requests
    for as long as both certificates stay current.
    """

    def __init__(
        self,
        pki: Pki,
        agency: Agency,
        *,
        seal: CertificateRecord | None = None,
        tsu: CertificateRecord | None = None,
    ) -> None:
        record = seal if seal is not None else pki.agency_seal(agency)
        issuer = pki.session.get(CertificateRecord, record.issuer_id)
        assert issuer is not None
        self.seal_certificate_id = record.id
        signer = pki.signer(record)
        certificate = load_certificate(record)
        tsa = pki.time_stamp_authority(tsu)

        def stamp_many(signatures: Sequence[bytes]) -> list[bytes]:
            # RFC 3161 over each signature value, from our own TSA, in process: the
            # tokens respond() would grant, without requests to encode and parse back.
            digests = [hashlib.sha256(signature).digest() for signature in signatures]
            return tsa.stamp_many(digests, utcnow())

        def timestamp(signature: bytes) -> bytes:
            return stamp_many([signature])[0]

        self._sealer = DocumentSealer(
            signer,
            certificate,
            [load_certificate(issuer)],
            timestamp,
            stamp_many=stamp_many,
            timestamp_in_process=True,
        )
        self._qr = QrSealer(signer, certificate)
        # The last schema seen and its QR field names (a batch's licences share one).
        self._last_fields: tuple[dict[str, Any], list[str]] | None = None

    def seal_document(self, document: bytes, signing_time: datetime) -> tuple[bytes, int]:
        """The detached CAdES-B-T seal over ``document`` and the sealing certificate's id."""
        return self._sealer.seal(document, signing_time), self.seal_certificate_id

    def seal_documents(
        self, documents: Sequence[bytes], signing_time: datetime
    ) -> tuple[list[bytes], int]:
        """:meth:`seal_document` of each of ``documents`` (a batch's: signed back to back)."""
        return self._sealer.seal_many(documents, signing_time), self.seal_certificate_id

    def qr_payload(self, licence: Licence, licence_type: LicenceType, agency: Agency) -> str:
        """The compact QR seal of ``licence``'s essential fields."""
        return self.qr_payloads([(licence, licence_type)], agency)[0]

    def qr_payloads(
        self, licences: Sequence[tuple[Licence, LicenceType]], agency: Agency
    ) -> list[str]:
        """:meth:`qr_payload` of each (licence, its type), in order (signed back to back)."""
        return self._qr.seal_many(
            QrClaims(
                number=licence.number,
                type_code=licence_type.code,
                holder_kind=licence.holder_kind,
                holder_id=licence.holder_id,
                holder_name=licence.holder_name,
                issued_on=licence.issued_at.date(),
                valid_from=licence.valid_from.date(),
                valid_until=licence.valid_until.date(),
                fields=_field_values(self._field_names(licence_type.schema), licence.data),
            )
            for licence, licence_type in licences
        )

    def _field_names(self, schema: dict[str, Any]) -> list[str]:
        """:func:`qr_field_names`, worked out once for the schema of a batch's licences."""
        last = self._last_fields  # one read: other threads may replace it meanwhile
        if last is not None and last[0] is schema:
            return last[1]
        names = qr_field_names(schema)
        self._last_fields = (schema, names)
        return names


class SealerCache:
    """Agency sealers kept between requests, keyed by the certificates they seal with.

    :meth:`sealer` looks up the agency's current seal and the current TSA
    certificate on every call, in the caller's unit of work, and reuses a sealer
    only for that same pair. A rotated or revoked seal (or TSA certificate) stops
    being current once its change is committed, so no licence is sealed with it
    after that: the next call builds a sealer for the new certificate, or raises
    :class:`~authority.pki.service.NoActiveSeal`. What it saves is loading the
    certificates, building the TSA and checking each key with a signature.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._sealers: OrderedDict[tuple[int, int], AgencySealer] = OrderedDict()
        self._lock = threading.Lock()

    def sealer(self, pki: Pki, agency: Agency) -> AgencySealer:
        """A sealer with ``agency``'s current seal and the current TSA certificate."""
        seal = pki.agency_seal(agency)
        tsu = pki.current(CertificateRole.TSA, TSA_NAME)
        key = (seal.id, tsu.id)
        with self._lock:
            sealer = self._sealers.get(key)
            if sealer is not None:
                self._sealers.move_to_end(key)
                return sealer
        sealer = AgencySealer(pki, agency, seal=seal, tsu=tsu)
        with self._lock:
            self._sealers[key] = sealer
            while len(self._sealers) > self._size:
                self._sealers.popitem(last=False)
        return sealer
