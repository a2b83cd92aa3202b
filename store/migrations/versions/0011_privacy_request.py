"""privacy_request: erased people the Platform's Privacy Service must forget too

A profile erasure queues its identities, sealed with the secret key, and the next ``sync logs``
sends a delete job for them; once the Platform takes it the identities are cleared and the job id
is kept.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("regulation", sa.String(length=16), nullable=False),
        sa.Column("identities", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("job_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_request")),
    )
    with op.batch_alter_table("privacy_request") as batch:
        batch.create_index(batch.f("ix_privacy_request_sent_at"), ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_table("privacy_request")
