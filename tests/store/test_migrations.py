"""Data migrations, run on a SQLite file of their own: upgrade and downgrade keep what they convert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import String, text

from store import db as store_db
from store.models import Base
from tests.conftest import runtime_of
from tests.values import ECID, FCM_TOKEN, ORG, ORG_2, ecid, fcm_token

ROWS = [  # trackingLog id, log_date: id order is not time order (ids from a sequence, PostgreSQL)
    (1, "2026-12-07 10:00:00.000000"),
    (2, "2026-12-07 10:00:05.000000"),
    (3, "2026-12-07 10:00:02.000000"),
    (4, "2026-12-07 10:00:09.000000"),
]


def _database(tmp_path: Path, watermark: str | None) -> str:
    url = f"sqlite:///{tmp_path / 'migrate.db'}"
    store_db.upgrade(url, "0003")
    engine = store_db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO app (id, name, created_at, updated_at) VALUES (1, 'Shop', :t, :t)"), {"t": ROWS[0][1]}
        )
        conn.execute(
            text(
                "INSERT INTO delivery (id, app_id, name, message, target, platforms, status, validity_seconds, "
                "created_at, updated_at) VALUES (1, 1, 'Sale', '{}', '{}', '[]', 'completed', 86400, :t, :t)"
            ),
            {"t": ROWS[0][1]},
        )
        conn.execute(
            text(
                "INSERT INTO broadlog (id, delivery_id, channel, status, attempts, resent_after_crash, created_at, "
                "event_date) VALUES (1, 1, 42, 1, 1, 0, :t, :t)"
            ),
            {"t": ROWS[0][1]},
        )
        for row_id, moment in ROWS:
            conn.execute(
                text(
                    "INSERT INTO trackinglog (id, broadlog_id, delivery_id, interaction, source, log_date) "
                    "VALUES (:i, 1, 1, 'opened', 'campaign-classic', :t)"
                ),
                {"i": row_id, "t": moment},
            )
        conn.execute(
            text("INSERT INTO sync_state (stream, watermark, updated_at) VALUES ('export:trackinglog', :w, :t)"),
            {"w": watermark, "t": ROWS[0][1]},
        )
    engine.dispose()
    return url


def _watermark(url: str) -> str | None:
    engine = store_db.make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT watermark FROM sync_state WHERE stream = 'export:trackinglog'")).scalar()
    engine.dispose()
    return value


def test_an_id_watermark_becomes_a_time_watermark_that_loses_nothing(tmp_path: Path) -> None:
    url = _database(tmp_path, "2")  # rows 1 and 2 were exported; 3 (older than 2) and 4 were not
    store_db.upgrade(url, "0004")
    # Row 3's time: rows 3 and 4 go, and so does row 2 again (same _id, deduplicated by the Platform).
    assert _watermark(url) == "2026-12-07T10:00:02+00:00|0"
    store_db.downgrade(url, "0003")
    assert _watermark(url) == "1"  # rows 2, 3 and 4 are after that time: back to sending from id 2


def test_a_watermark_past_every_row_stays_past_every_row(tmp_path: Path) -> None:
    url = _database(tmp_path, "4")
    store_db.upgrade(url, "0004")
    assert _watermark(url) == "2026-12-07T10:00:09+00:00|4"
    store_db.downgrade(url, "0003")
    assert _watermark(url) == "4"


def _identities(url: str) -> list[tuple[str | None, str, str]]:
    engine = store_db.make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT org_id, ecid, token FROM push_identity ORDER BY org_id, ecid")).all()
    engine.dispose()
    return [(org, ecid, token) for org, ecid, token in rows]


def test_push_identities_become_per_org_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    store_db.upgrade(url, "0005")
    engine = store_db.make_engine(url)
    with engine.begin() as conn:
        insert = text(
            "INSERT INTO push_identity (ecid, org_id, token, created_at, updated_at) VALUES (:e, :o, :k, :t, :t)"
        )
        conn.execute(insert, {"e": ECID, "o": ORG, "k": FCM_TOKEN, "t": ROWS[0][1]})
        conn.execute(insert, {"e": ecid("orphan"), "o": None, "k": fcm_token("orphan"), "t": ROWS[0][1]})
    store_db.upgrade(url, "0006")
    assert _identities(url) == [(ORG, ECID, FCM_TOKEN)]  # a row no org can reach is dropped
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO push_identity (ecid, org_id, token, created_at, updated_at) VALUES (:e, :o, :k, :t, :t)"),
            {"e": ECID, "o": ORG_2, "k": fcm_token("other org"), "t": ROWS[1][1]},
        )
    engine.dispose()
    assert len(_identities(url)) == 2  # one ECID, two orgs
    store_db.downgrade(url, "0005")
    assert _identities(url) == [(ORG_2, ECID, fcm_token("other org"))]  # the newest row of the ECID


def test_repeated_receives_and_opens_are_dropped_and_clicks_kept(tmp_path: Path) -> None:
    url = _database(tmp_path, None)  # trackingLog rows 1-4: opens of broadLog 1
    store_db.upgrade(url, "0006")
    engine = store_db.make_engine(url)
    with engine.begin() as conn:
        for row_id in (5, 6):
            conn.execute(
                text(
                    "INSERT INTO trackinglog (id, broadlog_id, delivery_id, interaction, source, log_date) "
                    "VALUES (:i, 1, 1, 'clicked', 'campaign-standard', :t)"
                ),
                {"i": row_id, "t": ROWS[0][1]},
            )
    store_db.upgrade(url, "0007")
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT id, interaction FROM trackinglog ORDER BY id")).all()
    assert [tuple(row) for row in kept] == [(1, "opened"), (5, "clicked"), (6, "clicked")]
    store_db.downgrade(url, "0006")
    engine.dispose()


def test_the_models_are_what_the_migrations_build(app: Flask) -> None:
    """A model changed without a migration (or the reverse) fails here, on the test database
    (SQLite, or PostgreSQL in CI's second run), which the suite migrated to the newest revision."""

    def compare_type(
        context: Any, inspected: Any, metadata: Any, inspected_type: Any, metadata_type: Any
    ) -> bool | None:
        # SQLite does not enforce VARCHAR lengths, so migration 0005 widened them on PostgreSQL only.
        if context.dialect.name == "sqlite" and isinstance(metadata_type, String):
            return not isinstance(inspected_type, String)
        return None  # Alembic's own comparison

    with runtime_of(app).engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": compare_type})
        assert compare_metadata(context, Base.metadata) == []
