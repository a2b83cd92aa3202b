"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 14:53:29.808609
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.types
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("lookup", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("lookup", name=op.f("uq_api_key_lookup")),
    )
    op.create_table(
        "app",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("campaign_standard_pkey", sa.String(length=200), nullable=True),
        sa.Column("edge_config_id", sa.String(length=200), nullable=True),
        sa.Column("experience_cloud_org", sa.String(length=200), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app")),
        sa.UniqueConstraint("campaign_standard_pkey", name=op.f("uq_app_campaign_standard_pkey")),
        sa.UniqueConstraint("edge_config_id", name=op.f("uq_app_edge_config_id")),
        sa.UniqueConstraint("name", name=op.f("uq_app_name")),
    )
    with op.batch_alter_table("app", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_experience_cloud_org"), ["experience_cloud_org"], unique=False)

    op.create_table(
        "audience",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("segment_id", sa.String(length=255), nullable=True),
        sa.Column("last_import_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience")),
        sa.UniqueConstraint("segment_id", name=op.f("uq_audience_segment_id")),
    )
    op.create_table(
        "profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("push_consent", sa.String(length=1), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile")),
        sa.UniqueConstraint("external_id", name=op.f("uq_profile_external_id")),
    )
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_email"), ["email"], unique=False)

    op.create_table(
        "push_identity",
        sa.Column("ecid", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=200), nullable=True),
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ecid", name=op.f("pk_push_identity")),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "summary", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("ended_at", store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run")),
    )
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.create_index("ix_sync_run_job_started", ["job", "started_at"], unique=False)

    op.create_table(
        "sync_state",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.String(length=255), nullable=True),
        sa.Column("last_run_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Integer(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("first_error_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("last_error_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("unregistered_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], name=op.f("fk_address_app_id_app"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address")),
        sa.UniqueConstraint("app_id", "address", name=op.f("uq_address_app_id_address")),
    )
    op.create_table(
        "app_platform",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("integration_key", sa.String(length=200), nullable=False),
        sa.Column("app_identifier", sa.String(length=255), nullable=False),
        sa.Column("credential_kind", sa.String(length=32), nullable=True),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column("apns_environment", sa.String(length=16), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], name=op.f("fk_app_platform_app_id_app"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_platform")),
        sa.UniqueConstraint("app_id", "platform", name=op.f("uq_app_platform_app_id_platform")),
        sa.UniqueConstraint("integration_key", name=op.f("uq_app_platform_integration_key")),
    )
    with op.batch_alter_table("app_platform", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_platform_app_identifier"), ["app_identifier"], unique=False)

    op.create_table(
        "audience_member",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entered_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audience.id"], name=op.f("fk_audience_member_audience_id_audience"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_audience_member_profile_id_profile"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("audience_id", "profile_id", name=op.f("pk_audience_member")),
    )
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audience_member_profile_id"), ["profile_id"], unique=False)

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "message", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "target", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "platforms", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("schedule_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("rate_per_second", sa.Double(), nullable=True),
        sa.Column("validity_seconds", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("started_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("ended_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], name=op.f("fk_delivery_app_id_app"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_delivery_idempotency_key")),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_app_id"), ["app_id"], unique=False)

    op.create_table(
        "standard_registration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("ecid", sa.String(length=64), nullable=False),
        sa.Column("push_platform", sa.String(length=8), nullable=False),
        sa.Column(
            "fields", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("last_registered_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["app.id"], name=op.f("fk_standard_registration_app_id_app"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standard_registration")),
        sa.UniqueConstraint("app_id", "ecid", name=op.f("uq_standard_registration_app_id_ecid")),
    )
    with op.batch_alter_table("standard_registration", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_standard_registration_ecid"), ["ecid"], unique=False)

    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=1024), nullable=False),
        sa.Column("sdk", sa.String(length=24), nullable=False),
        sa.Column("push_provider", sa.String(length=16), nullable=False),
        sa.Column("user_key", sa.String(length=255), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("ecid", sa.String(length=64), nullable=True),
        sa.Column("device_imei", sa.String(length=255), nullable=True),
        sa.Column("device_name", sa.String(length=255), nullable=True),
        sa.Column("device_model", sa.String(length=255), nullable=True),
        sa.Column("device_brand", sa.String(length=255), nullable=True),
        sa.Column("device_manufacturer", sa.String(length=255), nullable=True),
        sa.Column("os_name", sa.String(length=64), nullable=True),
        sa.Column("os_version", sa.String(length=64), nullable=True),
        sa.Column("os_language", sa.String(length=64), nullable=True),
        sa.Column(
            "additional_params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("last_registered_at", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], name=op.f("fk_subscription_app_id_app"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_subscription_profile_id_profile"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
        sa.UniqueConstraint("app_id", "token", name=op.f("uq_subscription_app_id_token")),
    )
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_app_user_key", ["app_id", "user_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscription_ecid"), ["ecid"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscription_profile_id"), ["profile_id"], unique=False)

    op.create_table(
        "broadlog",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("failure_type", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", store.types.UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("resent_after_crash", sa.Boolean(), nullable=False),
        sa.Column("created_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("event_date", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_broadlog_delivery_id_delivery"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_broadlog_profile_id_profile"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_broadlog_subscription_id_subscription"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadlog")),
    )
    with op.batch_alter_table("broadlog", schema=None) as batch_op:
        batch_op.create_index("ix_broadlog_delivery_status", ["delivery_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_broadlog_profile_id"), ["profile_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_broadlog_provider_message_id"), ["provider_message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_broadlog_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "trackinglog",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("broadlog_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("interaction", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=True),
        sa.Column("action_id", sa.String(length=255), nullable=True),
        sa.Column("ecid", sa.String(length=64), nullable=True),
        sa.Column("log_date", store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadlog_id"], ["broadlog.id"], name=op.f("fk_trackinglog_broadlog_id_broadlog"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_trackinglog_delivery_id_delivery"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profile.id"], name=op.f("fk_trackinglog_profile_id_profile"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trackinglog")),
    )
    with op.batch_alter_table("trackinglog", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trackinglog_broadlog_id"), ["broadlog_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trackinglog_delivery_id"), ["delivery_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trackinglog", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trackinglog_delivery_id"))
        batch_op.drop_index(batch_op.f("ix_trackinglog_broadlog_id"))

    op.drop_table("trackinglog")
    with op.batch_alter_table("broadlog", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadlog_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_broadlog_provider_message_id"))
        batch_op.drop_index(batch_op.f("ix_broadlog_profile_id"))
        batch_op.drop_index("ix_broadlog_delivery_status")

    op.drop_table("broadlog")
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_profile_id"))
        batch_op.drop_index(batch_op.f("ix_subscription_ecid"))
        batch_op.drop_index("ix_subscription_app_user_key")

    op.drop_table("subscription")
    with op.batch_alter_table("standard_registration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_standard_registration_ecid"))

    op.drop_table("standard_registration")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_app_id"))

    op.drop_table("delivery")
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audience_member_profile_id"))

    op.drop_table("audience_member")
    with op.batch_alter_table("app_platform", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_platform_app_identifier"))

    op.drop_table("app_platform")
    op.drop_table("address")
    op.drop_table("sync_state")
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_run_job_started")

    op.drop_table("sync_run")
    op.drop_table("push_identity")
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_email"))

    op.drop_table("profile")
    op.drop_table("audience")
    with op.batch_alter_table("app", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_experience_cloud_org"))

    op.drop_table("app")
    op.drop_table("api_key")
