"""One receive and one open per message in trackingLog

Tracking URLs are public, so a caller could repeat one call to write any number of rows (each
exported to the Platform) and push a delivery's rates up. Repeated receive and open rows of a
message are deleted (the first one stays), and a partial unique index keeps one of each from now
on. Clicks stay free of it: a message may be clicked again, at most once a minute per action
(:mod:`domain.tracking`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ONCE = "interaction IN ('received', 'opened')"


def upgrade() -> None:
    op.execute(
        "DELETE FROM trackinglog WHERE interaction IN ('received', 'opened') AND EXISTS ("
        "SELECT 1 FROM trackinglog first WHERE first.broadlog_id = trackinglog.broadlog_id "
        "AND first.interaction = trackinglog.interaction AND first.id < trackinglog.id)"
    )
    op.create_index(
        "uq_trackinglog_once",
        "trackinglog",
        ["broadlog_id", "interaction"],
        unique=True,
        sqlite_where=sa.text(ONCE),
        postgresql_where=sa.text(ONCE),
    )


def downgrade() -> None:
    op.drop_index("uq_trackinglog_once", table_name="trackinglog")
