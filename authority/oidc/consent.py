"""Consent: which scopes a person agreed to release to which portal, remembered
and revocable (OIDC Core §3.1.2.4)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from authority.audit.trail import CONSENT_GIVEN, CONSENT_WITHDRAWN, record
from authority.identity.models import Citizen
from authority.oidc.models import Consent, OAuthClient

# Scopes that release nothing about the person need no consent of their own.
SILENT_SCOPES = frozenset({"openid"})


# Built once (as every login asks): cheaper than building it each time.
_LIVE_CONSENT = select(Consent).where(
    Consent.citizen_id == bindparam("citizen_id"),
    Consent.client_id == bindparam("client_id"),
    Consent.withdrawn_at.is_(None),
)


def has_consent(
    session: Session, citizen: Citizen, client: OAuthClient, scopes: Sequence[str]
) -> bool:
    """Whether the person's remembered consent covers ``scopes`` for ``client``."""
    consent = session.scalar(
        _LIVE_CONSENT, {"citizen_id": citizen.id, "client_id": client.client_id}
    )
    wanted = set(scopes) - SILENT_SCOPES
    return consent is not None and wanted <= set(consent.scopes)


def grant_consent(
    session: Session, citizen: Citizen, client: OAuthClient, scopes: Sequence[str], now: datetime
) -> Consent:
    """Remember that the person agreed to ``scopes`` for ``client`` (adds to earlier ones)."""
    consent = session.scalar(
        select(Consent).where(
            Consent.citizen_id == citizen.id, Consent.client_id == client.client_id
        )
    )
    if consent is None:
        consent = Consent(
            citizen_id=citizen.id, client_id=client.client_id, scopes=[], granted_at=now
        )
        session.add(consent)
    previous = [] if consent.withdrawn_at is not None else list(consent.scopes)
    consent.scopes = sorted(set(previous) | set(scopes))
    consent.granted_at = now
    consent.withdrawn_at = None
    session.flush()
    record(
        session,
        CONSENT_GIVEN,
        f"citizen:{citizen.id}",
        f"client:{client.client_id}",
        {"scopes": consent.scopes},
    )
    return consent


@dataclass(frozen=True)
class GivenConsent:
    """A consent as the person sees it: which portal, which data, since when."""

    client_id: str
    portal: str
    scopes: list[str]
    granted_at: datetime


def consents_of(session: Session, citizen: Citizen) -> list[GivenConsent]:
    """The consents the person has given and not withdrawn, newest first."""
    rows = session.execute(
        select(Consent, OAuthClient.name)
        .join(OAuthClient, OAuthClient.client_id == Consent.client_id)
        .where(Consent.citizen_id == citizen.id, Consent.withdrawn_at.is_(None))
        .order_by(Consent.granted_at.desc())
    ).all()
    return [
        GivenConsent(
            c.client_id, name, [s for s in c.scopes if s not in SILENT_SCOPES], c.granted_at
        )
        for c, name in rows
    ]


def withdraw_consent(session: Session, citizen: Citizen, client_id: str, now: datetime) -> bool:
    """Withdraw the person's consent for ``client_id``; whether there was one."""
    consent = session.scalar(
        select(Consent).where(
            Consent.citizen_id == citizen.id,
            Consent.client_id == client_id,
            Consent.withdrawn_at.is_(None),
        )
    )
    if consent is None:
        return False
    consent.withdrawn_at = now
    record(session, CONSENT_WITHDRAWN, f"citizen:{citizen.id}", f"client:{client_id}")
    return True
