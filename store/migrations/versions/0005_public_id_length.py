"""Public identifiers up to 255 characters (Campaign Standard pkeys run to 199)

Widens app.campaign_standard_pkey, app.edge_config_id, app.experience_cloud_org,
app_platform.integration_key and push_identity.org_id from 200 to 255 characters. SQLite does
not enforce a VARCHAR's length, so only PostgreSQL's columns change (rebuilding SQLite's app
table would cascade deletes into its platform rows).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = [
    ("app", "campaign_standard_pkey"),
    ("app", "edge_config_id"),
    ("app", "experience_cloud_org"),
    ("app_platform", "integration_key"),
    ("push_identity", "org_id"),
]


def _resize(length_from: int, length_to: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table, column, type_=sa.String(length=length_to), existing_type=sa.String(length=length_from)
        )


def upgrade() -> None:
    _resize(200, 255)


def downgrade() -> None:
    _resize(255, 200)
