"""broadLog claim index: (delivery_id, status, channel, id) replaces (delivery_id, status)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadlog", schema=None) as batch_op:
        batch_op.create_index("ix_broadlog_claim", ["delivery_id", "status", "channel", "id"], unique=False)
        batch_op.drop_index("ix_broadlog_delivery_status")


def downgrade() -> None:
    with op.batch_alter_table("broadlog", schema=None) as batch_op:
        batch_op.create_index("ix_broadlog_delivery_status", ["delivery_id", "status"], unique=False)
        batch_op.drop_index("ix_broadlog_claim")
