"""Verdicts and sub-indications that need an unusual artefact, made with the real PKI.

Online verification reads this installation's database; offline verification
reads a trust list built and sealed by the same PKI, then checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.agencies.service import create_agency, revoke_seal, rotate_seal
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.db.session import Database
from authority.instance import Instance
from authority.licences.models import Licence
from authority.licences.sealing import AgencySealer
from authority.licences.service import (
    LicenceRequest,
    change_status,
    create_licence_type,
    issue_licences,
)
from authority.pki.crl import RevocationReason
from authority.pki.models import CertificateRole
from authority.pki.service import OCSP_NAME, Pki, load_certificate
from authority.pki.trust_list import build_trust_list, root_of, verify_trust_list
from authority.pki.tsa import build_request, new_nonce, token_from_response
from authority.seals.cades import DocumentSealer
from authority.verification import verifier
from authority.verification.report import Report, SubIndication, Verdict
from authority.verification.service import (
    offline_context,
    online_context,
    verify_document,
    verify_qr,
)
from authority.verification.trust import TrustContext

SCHEMA = {"type": "object", "properties": {"category": {"type": "string"}}}
HOLDER = "11010519491231002X"


@dataclass
class World:
    session: Session
    pki: Pki
    agency: Agency
    issuer: str

    def issue(self, **changes: datetime) -> Licence:
        request = LicenceRequest(
            "VERD-A", "citizen", HOLDER, "赵六", {"category": "A"},
            changes.get("valid_from"), changes.get("valid_until"),
        )  # fmt: skip
        (licence,) = issue_licences(
            self.session, AgencySealer(self.pki, self.agency), self.agency, [request],
            issuer=self.issuer, actor="test", now=utcnow(),
        )  # fmt: skip
        return licence

    def online(self) -> TrustContext:
        return online_context(self.session, self.issuer, utcnow())

    def offline(self, now: datetime | None = None) -> TrustContext:
        document = build_trust_list(self.pki, now or utcnow())
        verified = verify_trust_list(document, root_of(document))
        return offline_context(verified, pinned=True, now=utcnow())


@pytest.fixture
def world(instance: Instance, database: Database) -> Iterator[World]:
    with database.session() as session:
        pki = pki_for(instance, session)
        agency, _ = create_agency(pki, "VERD", "Agency of Verdicts", utcnow())
        create_licence_type(
            session, agency, code="VERD-A", name_zh="许可", name_en="Permit",
            schema=SCHEMA, validity_days=30, now=utcnow(),
        )  # fmt: skip
        yield World(session, pki, agency, instance.settings.issuer)


def outcome(report: Report) -> tuple[str, str, str | None]:
    data = report.as_dict()
    return data["verdict"], data["indication"], data["subindication"]


def checks(report: Report) -> dict[str, str]:
    return {c.name: c.outcome.value for c in report.checks}


def test_a_seal_time_stamped_before_its_certificate_existed(world: World) -> None:
    licence = world.issue()
    record = world.pki.agency_seal(world.agency)
    tsa = world.pki.time_stamp_authority()
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)

    def backdated(signature: bytes) -> bytes:
        request = build_request(signature, nonce=new_nonce(), cert_req=True)
        return token_from_response(tsa.respond(request, long_ago))

    sealer = DocumentSealer(world.pki.signer(record), load_certificate(record), [], backdated)
    seal = sealer.seal(licence.document, long_ago)
    report = verify_document(world.online(), licence.document, seal, utcnow())
    assert outcome(report) == ("UNKNOWN", "INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")


def test_a_document_sealed_with_the_ocsp_key_is_not_an_agency_seal(world: World) -> None:
    licence = world.issue()
    record = world.pki.current(CertificateRole.OCSP, OCSP_NAME)
    sealer = DocumentSealer(world.pki.signer(record), load_certificate(record))
    report = verify_document(
        world.online(), licence.document, sealer.seal(licence.document, utcnow()), utcnow()
    )
    assert outcome(report) == ("UNKNOWN", "INDETERMINATE", "SIG_CONSTRAINTS_FAILURE")
    assert checks(report)["certificate-role"] == "failed"


def test_a_trust_list_older_than_the_seal_says_try_later(world: World) -> None:
    older = world.offline()
    rotate_seal(world.pki, "VERD", utcnow())
    licence = world.issue()
    report = verify_qr(older, licence.qr_payload, utcnow())
    assert outcome(report) == ("UNKNOWN", "INDETERMINATE", "TRY_LATER")
    report = verify_document(older, licence.document, licence.seal, utcnow())
    assert outcome(report) == ("UNKNOWN", "INDETERMINATE", "TRY_LATER")
    assert outcome(verify_qr(world.offline(), licence.qr_payload, utcnow()))[0] == "VALID"


def test_a_seal_retired_for_cessation_keeps_its_qr_valid_offline(world: World) -> None:
    licence = world.issue()
    revoke_seal(
        world.pki, "VERD", RevocationReason.CESSATION_OF_OPERATION, utcnow() + timedelta(days=2)
    )
    report = verify_qr(world.offline(), licence.qr_payload, utcnow())
    assert outcome(report) == ("VALID", "TOTAL_PASSED", None)
    assert checks(report)["certificate-status"] == "warning"


def test_a_compromised_seal_makes_its_qr_unknown_offline_but_valid_online(world: World) -> None:
    licence = world.issue()
    revoke_seal(world.pki, "VERD", RevocationReason.KEY_COMPROMISE, utcnow() + timedelta(days=2))
    assert outcome(verify_qr(world.offline(), licence.qr_payload, utcnow())) == (
        "UNKNOWN", "INDETERMINATE", "REVOKED_NO_POE",
    )  # fmt: skip
    assert outcome(verify_qr(world.online(), licence.qr_payload, utcnow()))[0] == "VALID"


def test_suspension_and_revocation_reach_the_offline_verifier(world: World) -> None:
    suspended, revoked = world.issue(), world.issue()
    change_status(world.session, suspended, "suspend", "inspection", "test", utcnow())
    change_status(world.session, revoked, "revoke", "fraud", "test", utcnow())
    context = world.offline()
    assert outcome(verify_qr(context, suspended.qr_payload, utcnow())) == (
        "SUSPENDED", "TOTAL_PASSED", None,
    )  # fmt: skip
    assert outcome(verify_qr(context, revoked.qr_payload, utcnow()))[0] == "REVOKED"


def test_a_stale_trust_list_is_said(world: World) -> None:
    licence = world.issue()
    stale = world.offline(now=utcnow() - timedelta(days=2))
    report = verify_qr(stale, licence.qr_payload, utcnow())
    assert checks(report)["trust-list"] == "warning"


def test_a_licence_not_yet_in_force(world: World) -> None:
    start = utcnow() + timedelta(days=10)
    licence = world.issue(valid_from=start, valid_until=start + timedelta(days=30))
    assert outcome(verify_qr(world.offline(), licence.qr_payload, utcnow()))[0] == "INVALID"
    report = verify_qr(world.online(), licence.qr_payload, utcnow())
    assert outcome(report) == ("INVALID", "TOTAL_PASSED", None)
    assert checks(report)["validity-period"] == "failed"


def test_a_kept_signature_counts_only_where_its_certificate_is_offered(world: World) -> None:
    licence = world.issue()
    online = world.online()
    assert verify_qr(online, licence.qr_payload, online.as_of).verdict is Verdict.VALID
    assert licence.qr_payload in verifier._verified_seals
    # The same payload, verified where the sealing certificate is not offered: not ours.
    without_seals = replace(
        online,
        certificates=[k for k in online.certificates if k.role != CertificateRole.SEAL.value],
    )
    report = verify_qr(without_seals, licence.qr_payload, online.as_of)
    assert (report.verdict, report.subindication) == (
        Verdict.INVALID,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    )
    # One character changed is another payload: checked afresh, never VALID.
    payload = licence.qr_payload
    index = len(payload) - 10
    changed = payload[:index] + ("0" if payload[index] != "0" else "1") + payload[index + 1 :]
    assert verify_qr(online, changed, online.as_of).verdict is Verdict.INVALID
    assert changed not in verifier._verified_seals
