"""What a person's account page reads that no other domain keeps: data released to
portals, and how often each licence was verified online (counts per day, never who)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base


class DataRelease(Base):
    """A portal received a person's data: tokens were issued to it with these scopes."""

    __tablename__ = "data_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # The USCC of the business the person acted for, if any.
    business: Mapped[str | None] = mapped_column(String(18))
    released_at: Mapped[datetime]


class VerificationDay(Base):
    """How many times a licence was verified online on one UTC day, and the last time."""

    __tablename__ = "licence_verifications"
    __table_args__ = (UniqueConstraint("licence_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    licence_id: Mapped[str] = mapped_column(ForeignKey("licences.id"), index=True)
    day: Mapped[date]
    count: Mapped[int]
    last_at: Mapped[datetime]
