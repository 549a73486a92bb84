"""Licences: types with their schemas, licences, lifecycle events, number counters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Agencies issue licences of their types to citizens and businesses; each
licence keeps the exact sealed document, its seal and QR seal, and every
lifecycle change with who made it and why. Counters number licences per type
and year without ever giving one number twice.
"""

import sqlalchemy as sa
from alembic import op

from authority.db.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('licence_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_licence_types_agency_id_agencies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_types')),
    sa.UniqueConstraint('code', name=op.f('uq_licence_types_code'))
    )
    with op.batch_alter_table('licence_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licence_types_agency_id'), ['agency_id'], unique=False)

    op.create_table('licence_counters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('type_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['type_id'], ['licence_types.id'], name=op.f('fk_licence_counters_type_id_licence_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_counters')),
    sa.UniqueConstraint('type_id', 'year', name=op.f('uq_licence_counters_type_id_year'))
    )
    op.create_table('licences',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('type_id', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('holder_kind', sa.String(length=8), nullable=False),
    sa.Column('holder_id', sa.String(length=18), nullable=False),
    sa.Column('holder_name', sa.String(length=128), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('valid_from', UTCDateTime(), nullable=False),
    sa.Column('valid_until', UTCDateTime(), nullable=False),
    sa.Column('issued_at', UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_changed_at', UTCDateTime(), nullable=True),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.Column('seal', sa.LargeBinary(), nullable=False),
    sa.Column('seal_certificate_id', sa.Integer(), nullable=False),
    sa.Column('qr_payload', sa.Text(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=True),
    sa.Column('issued_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_licences_agency_id_agencies')),
    sa.ForeignKeyConstraint(['seal_certificate_id'], ['certificates.id'], name=op.f('fk_licences_seal_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['type_id'], ['licence_types.id'], name=op.f('fk_licences_type_id_licence_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licences')),
    sa.UniqueConstraint('number', name=op.f('uq_licences_number'))
    )
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licences_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_licences_holder_id'), ['holder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_licences_type_id'), ['type_id'], unique=False)

    op.create_table('licence_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('licence_id', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['licence_id'], ['licences.id'], name=op.f('fk_licence_events_licence_id_licences')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_events'))
    )
    with op.batch_alter_table('licence_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licence_events_licence_id'), ['licence_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('licence_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licence_events_licence_id'))

    op.drop_table('licence_events')
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licences_type_id'))
        batch_op.drop_index(batch_op.f('ix_licences_holder_id'))
        batch_op.drop_index(batch_op.f('ix_licences_agency_id'))

    op.drop_table('licences')
    op.drop_table('licence_counters')
    with op.batch_alter_table('licence_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licence_types_agency_id'))

    op.drop_table('licence_types')
