"""Registering agencies and managing their seals: the rules, and every refusal."""

from __future__ import annotations

import pytest

from authority.agencies.service import create_agency, revoke_seal, rotate_seal
from authority.db.base import utcnow
from authority.errors import Conflict, InvalidInput, NotFound
from authority.pki.crl import RevocationReason, parse_reason, parse_revocation_reason
from authority.pki.service import NoActiveSeal, Pki


def test_create_issues_a_first_seal(pki: Pki) -> None:
    agency, seal = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    assert agency.code == "MOT"
    assert seal.agency_id == agency.id
    assert seal.role == "seal"
    assert pki.agency_seal(agency).serial == seal.serial


@pytest.mark.parametrize("code", ["", "-MOT", "MO T", "M" * 33, "部门"])
def test_bad_codes_are_refused(pki: Pki, code: str) -> None:
    with pytest.raises(InvalidInput, match="agency code"):
        create_agency(pki, code, "Name", utcnow())


@pytest.mark.parametrize("name", ["", "   ", "N" * 65])
def test_bad_names_are_refused(pki: Pki, name: str) -> None:
    with pytest.raises(InvalidInput, match="agency name must be 1-64"):
        create_agency(pki, "MOT", name, utcnow())


def test_duplicate_code_is_a_conflict(pki: Pki) -> None:
    create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    with pytest.raises(Conflict, match="already exists"):
        create_agency(pki, "MOT", "Another", utcnow())


def test_rotation_supersedes_but_keeps_the_old_seal_good(pki: Pki) -> None:
    agency, first = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    previous, second = rotate_seal(pki, "MOT", utcnow())
    assert previous is first
    assert first.superseded_at is not None
    assert first.revoked_at is None
    assert second.key_handle != first.key_handle
    assert pki.agency_seal(agency) is second


def test_revoke_current_then_nothing_left(pki: Pki) -> None:
    agency, seal = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    revoked = revoke_seal(pki, "MOT", RevocationReason.KEY_COMPROMISE, utcnow())
    assert revoked is seal
    assert seal.revocation_reason == "keyCompromise"
    with pytest.raises(NoActiveSeal, match="seal rotate --agency MOT"):
        pki.agency_seal(agency)
    with pytest.raises(NoActiveSeal):
        revoke_seal(pki, "MOT", RevocationReason.KEY_COMPROMISE, utcnow())


def test_revoke_a_superseded_seal_by_serial(pki: Pki) -> None:
    _, first = create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    rotate_seal(pki, "MOT", utcnow())
    revoke_seal(pki, "MOT", RevocationReason.KEY_COMPROMISE, utcnow(), serial=first.serial)
    assert first.revoked_at is not None
    with pytest.raises(Conflict, match="already revoked"):
        revoke_seal(pki, "MOT", RevocationReason.SUPERSEDED, utcnow(), serial=first.serial)
    with pytest.raises(NotFound, match="no seal certificate with serial 1234"):
        revoke_seal(pki, "MOT", RevocationReason.SUPERSEDED, utcnow(), serial="1234")


def test_unknown_agency(pki: Pki) -> None:
    with pytest.raises(NotFound, match="no agency with code 'NOPE'"):
        rotate_seal(pki, "NOPE", utcnow())


def test_reason_names_follow_rfc_5280() -> None:
    assert parse_reason("keyCompromise") is RevocationReason.KEY_COMPROMISE
    with pytest.raises(InvalidInput, match="keyCompromise"):
        parse_reason("stolen")


@pytest.mark.parametrize(
    "code", ["trust-list", "Trust-List", "AUTHORITY", "root", "seal-ca", "tsa", "OCSP"]
)
def test_the_authoritys_own_names_are_reserved(pki: Pki, code: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        create_agency(pki, code, "Impostor", utcnow())


def test_codes_differing_only_in_case_are_one_agency(pki: Pki) -> None:
    create_agency(pki, "MOT", "Ministry of Transport", utcnow())
    with pytest.raises(Conflict, match="'MOT' already exists"):
        create_agency(pki, "mot", "Impostor", utcnow())


@pytest.mark.parametrize("name", ["removeFromCRL", "certificateHold"])
def test_reasons_that_cannot_be_final_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="revocation is final"):
        parse_revocation_reason(name)
    assert parse_revocation_reason("keyCompromise") is RevocationReason.KEY_COMPROMISE
