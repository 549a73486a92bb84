"""PKI records: agencies, every issued certificate, and each CA's current CRL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The PKI must answer OCSP and CRL queries from the database, and remember
which key handle each certificate certifies, so a rotated or revoked seal
keeps its history.
"""

import sqlalchemy as sa
from alembic import op

from authority.db.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agencies')),
    sa.UniqueConstraint('code', name=op.f('uq_agencies_code'))
    )
    op.create_table('certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=True),
    sa.Column('issuer_id', sa.Integer(), nullable=True),
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=512), nullable=False),
    sa.Column('keystore', sa.String(length=8), nullable=False),
    sa.Column('key_handle', sa.String(length=64), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', UTCDateTime(), nullable=False),
    sa.Column('not_after', UTCDateTime(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('superseded_at', UTCDateTime(), nullable=True),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_certificates_agency_id_agencies')),
    sa.ForeignKeyConstraint(['issuer_id'], ['certificates.id'], name=op.f('fk_certificates_issuer_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('serial', name=op.f('uq_certificates_serial'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificates_key_handle'), ['key_handle'], unique=False)
        batch_op.create_index('ix_certificates_role_name', ['role', 'name'], unique=False)

    op.create_table('crls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('this_update', UTCDateTime(), nullable=False),
    sa.Column('next_update', UTCDateTime(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['certificates.id'], name=op.f('fk_crls_issuer_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crls')),
    sa.UniqueConstraint('issuer_id', name=op.f('uq_crls_issuer_id'))
    )


def downgrade() -> None:
    op.drop_table('crls')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_role_name')
        batch_op.drop_index(batch_op.f('ix_certificates_key_handle'))
        batch_op.drop_index(batch_op.f('ix_certificates_agency_id'))

    op.drop_table('certificates')
    op.drop_table('agencies')
