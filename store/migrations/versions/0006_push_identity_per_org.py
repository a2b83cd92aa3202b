"""push_identity keyed by (org_id, ecid): one org's /id calls never touch another org's tokens

The ECID service's ``/id`` carries the org id (``d_orgid``) with the ECID and the push token. Keyed
by the ECID alone, a token sent through org A replaced the one org B's apps held for the same
ECID. Rows without an org (never written by pushgate) cannot be reached by any org and are dropped.
Downgrading keeps the most recently updated row of each ECID.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM push_identity WHERE org_id IS NULL")
    with op.batch_alter_table("push_identity", recreate="always") as batch:
        batch.alter_column("org_id", existing_type=sa.String(length=255), nullable=False)
        batch.drop_constraint("pk_push_identity", type_="primary")
        batch.create_primary_key("pk_push_identity", ["org_id", "ecid"])


def downgrade() -> None:
    op.execute(
        "DELETE FROM push_identity WHERE EXISTS (SELECT 1 FROM push_identity newer "
        "WHERE newer.ecid = push_identity.ecid AND (newer.updated_at > push_identity.updated_at "
        "OR (newer.updated_at = push_identity.updated_at AND newer.org_id > push_identity.org_id)))"
    )
    with op.batch_alter_table("push_identity", recreate="always") as batch:
        batch.drop_constraint("pk_push_identity", type_="primary")
        batch.create_primary_key("pk_push_identity", ["ecid"])
        batch.alter_column("org_id", existing_type=sa.String(length=255), nullable=True)
