"""A person's data history: which portal received which of their data, and when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from authority.account.models import DataRelease
from authority.db.bulk import insert_rows
from authority.identity.models import Citizen
from authority.oidc.models import OAuthClient

MAX_RELEASES_SHOWN = 200


@dataclass(frozen=True)
class Release:
    """A portal received the person's data."""

    portal: str
    scopes: list[str]
    business: str | None
    at: datetime


def record_release(
    session: Session,
    *,
    citizen_id: int,
    client_id: str,
    scopes: Sequence[str],
    business: str | None,
    now: datetime,
) -> None:
    """Remember that tokens carrying ``scopes`` of the person went to ``client_id``.

    Written straight away (:func:`~authority.db.bulk.insert_rows`): every token response
    writes one and nothing reads it back in the unit of work, so the ORM's flush
    bookkeeping would be pure cost.
    """
    row = {
        "citizen_id": citizen_id,
        "client_id": client_id,
        "scopes": list(scopes),
        "business": business,
        "released_at": now,
    }
    insert_rows(session, cast(Table, DataRelease.__table__), [row])


def releases(session: Session, citizen: Citizen) -> list[Release]:
    """Which portal received which of the person's data, newest first."""
    rows = session.execute(
        select(DataRelease, OAuthClient.name)
        .outerjoin(OAuthClient, OAuthClient.client_id == DataRelease.client_id)
        .where(DataRelease.citizen_id == citizen.id)
        .order_by(DataRelease.released_at.desc(), DataRelease.id.desc())
        .limit(MAX_RELEASES_SHOWN)
    ).all()
    return [
        Release(
            name or release.client_id, list(release.scopes), release.business, release.released_at
        )
        for release, name in rows
    ]
