"""app.user_key_verification and app.user_key_secret: verified user keys

Anyone holding an app's public integration key could link a token to any profile by sending that
profile's user key. An app may now require that the user key be vouched for by an HMAC its
backend computes with a secret of the app's (sealed like provider credentials). Existing apps
keep linking as before ("off") and have no secret until one is made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app") as batch:
        batch.add_column(sa.Column("user_key_verification", sa.String(length=16), nullable=False, server_default="off"))
        batch.add_column(sa.Column("user_key_secret", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("app") as batch:
        batch.drop_column("user_key_secret")
        batch.drop_column("user_key_verification")
