"""delivery.signed_tracking: whether a delivery's pushes carry signed tracking ids

From this revision on, every push carries a short MAC of its broadLog and delivery ids, and a
tracking call for its message must show it. Deliveries made before were sent without one, and
their pushes may still be opened: they keep being tracked by their ids alone (false here).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("signed_tracking", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("signed_tracking")
