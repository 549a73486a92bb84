"""Persistence: the SQLAlchemy base, column types, the Database handle and the models."""

from authority.db.base import Base, UTCDateTime, utcnow
from authority.db.session import Database

__all__ = ["Base", "Database", "UTCDateTime", "utcnow"]
