"""Pending authorization requests bound to the browser that started them; codes
bound to a DPoP key; clients' sector identifier URIs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A pending authorization request stores the hash of a cookie given to the
browser that started it; the login, second-factor, business and consent steps
refuse any other browser (login CSRF, session fixation). An authorization
code keeps the DPoP key thumbprint of its request (RFC 9449 §10). A client may
name a sector_identifier_uri, whose host is its pairwise sector (OIDC Core §8.1).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sector_identifier_uri", sa.String(length=2048), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("sector_identifier_uri")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("authorization_requests", schema=None) as batch_op:
        batch_op.drop_column("browser_hash")
