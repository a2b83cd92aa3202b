"""trackingLog export watermark: by (log_date, id) instead of id

The export read trackingLog in id order. On PostgreSQL ids come from a sequence, which is not
commit order, so it now reads trackingLog in commit-ordered time like the other streams
(store.clock). This converts a stored id watermark W into a time watermark that loses nothing:
every row after W has a log_date at or after the oldest of them, so the new watermark starts
there; rows at or before W that share that time are sent again with the same ``_id`` (the
Platform deduplicates them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 16:30:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STREAM = "export:trackinglog"


def _aware(value: object) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _watermark(conn: sa.Connection) -> str | None:
    return conn.execute(sa.text("SELECT watermark FROM sync_state WHERE stream = :s"), {"s": STREAM}).scalar()


def _set(conn: sa.Connection, value: str | None) -> None:
    conn.execute(sa.text("UPDATE sync_state SET watermark = :w WHERE stream = :s"), {"w": value, "s": STREAM})


def upgrade() -> None:
    conn = op.get_bind()
    old = _watermark(conn)
    if not old or "|" in old:
        return
    last_sent = int(old)
    first_after = conn.execute(
        sa.text("SELECT min(log_date) FROM trackinglog WHERE id > :w"), {"w": last_sent}
    ).scalar()
    if first_after is not None:
        _set(conn, f"{_aware(first_after).isoformat()}|0")
        return
    newest = conn.execute(
        sa.text("SELECT log_date, id FROM trackinglog WHERE id <= :w ORDER BY log_date DESC, id DESC LIMIT 1"),
        {"w": last_sent},
    ).first()
    _set(conn, None if newest is None else f"{_aware(newest[0]).isoformat()}|{newest[1]}")


def downgrade() -> None:
    conn = op.get_bind()
    old = _watermark(conn)
    if not old or "|" not in old:
        return
    moment, _, row_id = old.rpartition("|")
    naive = datetime.fromisoformat(moment).astimezone(UTC).replace(tzinfo=None)
    after = sa.text("SELECT min(id) FROM trackinglog WHERE log_date > :m OR (log_date = :m AND id > :i)")
    first_after = conn.execute(
        after.bindparams(sa.bindparam("m", type_=sa.DateTime())), {"m": naive, "i": int(row_id)}
    ).scalar()
    if first_after is None:
        first_after = (conn.execute(sa.text("SELECT max(id) FROM trackinglog")).scalar() or 0) + 1
    _set(conn, str(first_after - 1))
