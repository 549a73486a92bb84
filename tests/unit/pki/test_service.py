"""The PKI service: renewal of the authority's own certificates, the trust-list seal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from authority.agencies.service import create_agency
from authority.db.base import utcnow
from authority.pki.models import CertificateRole
from authority.pki.service import TSA_NAME, Pki, load_certificate
from authority.pki.trust_list import (
    TrustListInvalid,
    build_trust_list,
    seal_document,
    verify_trust_list,
)


def _root(pki: Pki) -> x509.Certificate:
    return load_certificate(pki.ca("root"))


def test_a_list_sealed_by_an_agency_seal_is_refused(pki: Pki) -> None:
    _, agency_seal = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    document = build_trust_list(pki, utcnow())
    verify_trust_list(document, _root(pki))
    # The agency seal chains to the same root, but is not the trust-list seal.
    document["seal"] = seal_document(pki, document, agency_seal)
    with pytest.raises(TrustListInvalid, match="not the authority's trust-list seal"):
        verify_trust_list(document, _root(pki))


def test_the_trust_list_seal_is_renewed_before_it_expires(pki: Pki) -> None:
    old = pki.trust_list_seal()
    old.not_after = utcnow() + timedelta(days=30)
    created = pki.ensure_hierarchy(utcnow())
    assert created == ["trust-list seal certificate"]
    new = pki.trust_list_seal()
    assert new.id != old.id and old.superseded_at is not None
    verify_trust_list(build_trust_list(pki, utcnow()), _root(pki))
    assert pki.ensure_hierarchy(utcnow()) == []


def test_the_time_stamping_unit_is_renewed_within_a_year_of_its_end(pki: Pki) -> None:
    old = pki.current(CertificateRole.TSA, TSA_NAME)
    old.not_after = utcnow() + timedelta(days=200)
    assert pki.ensure_hierarchy(utcnow()) == ["time-stamping unit certificate"]
    assert pki.current(CertificateRole.TSA, TSA_NAME).id != old.id
    assert old.superseded_at is not None
