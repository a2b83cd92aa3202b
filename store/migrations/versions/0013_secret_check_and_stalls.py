"""secret_check: a value sealed with the secret key; delivery_stall: platforms of running deliveries
whose messages cannot go out

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The check value itself is written by the first start with the key (store.secret_check): a
    # migration does not hold the key.
    op.create_table(
        "secret_check",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secret_check")),
    )
    op.create_table(
        "delivery_stall",
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_delivery_stall_delivery_id_delivery"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("delivery_id", "platform", name=op.f("pk_delivery_stall")),
    )


def downgrade() -> None:
    op.drop_table("delivery_stall")
    op.drop_table("secret_check")
