"""Agency records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from authority.db.base import Base, utcnow


class Agency(Base):
    """A public body registered with the authority."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgencyStaff(Base):
    """A citizen who works for an agency and may use its console."""

    __tablename__ = "agency_staff"
    __table_args__ = (UniqueConstraint("agency_id", "citizen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), index=True)
    # clerk: issues and searches; officer: also suspends, reinstates and revokes.
    role: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
