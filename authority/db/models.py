"""Service-wide records, and the one import that registers every model.

Alembic and the drift test read ``Base.metadata``; importing this module makes
sure each domain's models are on it. A domain adds its ``models`` module to
the import list below when it gains tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class Installation(Base):
    """The one row that says this database belongs to an initialised Authority."""

    __tablename__ = "installation"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    instance_id: Mapped[str] = mapped_column(
        String(36), default=lambda: str(uuid.uuid4()), unique=True
    )
    issuer: Mapped[str] = mapped_column(String(2048))
    initialised_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Each domain's models register on Base.metadata when imported.
import authority.account.models  # noqa: E402
import authority.agencies.models  # noqa: E402
import authority.audit.models  # noqa: E402
import authority.identity.models  # noqa: E402
import authority.licences.models  # noqa: E402
import authority.oidc.models  # noqa: E402
import authority.pki.models  # noqa: E402, F401

metadata = Base.metadata
