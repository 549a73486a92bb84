"""Pages for people: data released to portals, online verification counts, agency staff.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A person's account page shows which portal received which of their data and
how often each of their licences was verified online (per UTC day, never by
whom); the agency console is open to citizens holding a staff role in an agency.
"""

import sqlalchemy as sa
from alembic import op

from authority.db.base import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("business", sa.String(length=18), nullable=True),
        sa.Column("released_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_data_releases_citizen_id_citizens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_releases")),
    )
    with op.batch_alter_table("data_releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_releases_citizen_id"), ["citizen_id"])

    op.create_table(
        "licence_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("licence_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["licence_id"],
            ["licences.id"],
            name=op.f("fk_licence_verifications_licence_id_licences"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_verifications")),
        sa.UniqueConstraint(
            "licence_id", "day", name=op.f("uq_licence_verifications_licence_id_day")
        ),
    )
    with op.batch_alter_table("licence_verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_verifications_licence_id"), ["licence_id"])

    op.create_table(
        "agency_staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_agency_staff_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_agency_staff_citizen_id_citizens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_staff")),
        sa.UniqueConstraint(
            "agency_id", "citizen_id", name=op.f("uq_agency_staff_agency_id_citizen_id")
        ),
    )
    with op.batch_alter_table("agency_staff", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agency_staff_agency_id"), ["agency_id"])
        batch_op.create_index(batch_op.f("ix_agency_staff_citizen_id"), ["citizen_id"])


def downgrade() -> None:
    with op.batch_alter_table("agency_staff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agency_staff_citizen_id"))
        batch_op.drop_index(batch_op.f("ix_agency_staff_agency_id"))
    op.drop_table("agency_staff")
    with op.batch_alter_table("licence_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_verifications_licence_id"))
    op.drop_table("licence_verifications")
    with op.batch_alter_table("data_releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_releases_citizen_id"))
    op.drop_table("data_releases")
