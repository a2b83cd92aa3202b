"""api_key_app: API keys limited to some apps

A key with rows here sees and acts on those apps only (their subscriptions, deliveries,
quarantine and SDK configurations); a key without any keeps the access of its role to every app.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key_app",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_key.id"], name=op.f("fk_api_key_app_api_key_id_api_key"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], name=op.f("fk_api_key_app_app_id_app"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("api_key_id", "app_id", name=op.f("pk_api_key_app")),
    )


def downgrade() -> None:
    op.drop_table("api_key_app")
