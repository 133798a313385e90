"""The whole schema: tables, grants for the service role, Row-Level Security.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "itinera_app"
OWNER_ROLE = "itinera_owner"
TENANT_TABLES = (
    "app_user",
    "refresh_token",
    "destination",
    "dive_site",
    "knowledge_item",
    "embedding",
    "agent_run",
    "agent_tool_call",
    "agent_checkpoint",
    "itinerary",
    "chat_session",
    "chat_message",
    "lead",
    "idempotency_record",
)


def upgrade() -> None:
    dim = int(op.get_context().config.attributes.get("embedding_dim", 1536))
    # pgvector is usually created by a superuser beforehand (it is not a
    # trusted extension); create it here only when it is missing.
    op.execute(
        "DO $$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') "
        "THEN CREATE EXTENSION vector; END IF; END $$"
    )
    op.create_table(
        "org",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org")),
        sa.UniqueConstraint("slug", name=op.f("uq_org_slug")),
    )
    op.create_table(
        "app_user",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('member', 'admin')", name=op.f("ck_app_user_role")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_app_user_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_app_user")),
    )
    op.create_index(
        "uq_app_user_org_id_lower_email",
        "app_user",
        ["org_id", sa.literal_column("lower(email)")],
        unique=True,
    )
    op.create_table(
        "destination",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("country ~ '^[A-Z]{2}$'", name=op.f("ck_destination_country")),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_destination_lat")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_destination_lon")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_destination_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_destination")),
        sa.UniqueConstraint("org_id", "slug", name=op.f("uq_destination_org_id_slug")),
    )
    op.create_table(
        "agent_run",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.Text(), nullable=False),
        sa.Column(
            "plan", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_seq", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_agent_run_status"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "created_by"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_agent_run_org_id_created_by"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_agent_run_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_agent_run")),
    )
    op.create_index("ix_agent_run_created_at", "agent_run", ["created_at"], unique=False)
    op.create_index("ix_agent_run_finished_at", "agent_run", ["finished_at"], unique=False)
    op.create_index(
        "ix_agent_run_org_id_created_by_id",
        "agent_run",
        ["org_id", "created_by", "id"],
        unique=False,
    )
    op.create_table(
        "chat_session",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "profile", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "created_by"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_chat_session_org_id_created_by"),
            ondelete="SET NULL (created_by)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_chat_session_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_chat_session")),
    )
    op.create_index("ix_chat_session_expires_at", "chat_session", ["expires_at"], unique=False)
    op.create_index(
        "ix_chat_session_org_id_created_by_id",
        "chat_session",
        ["org_id", "created_by", "id"],
        unique=False,
    )
    op.create_table(
        "dive_site",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("destination_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("min_depth_m", sa.Float(), nullable=False),
        sa.Column("max_depth_m", sa.Float(), nullable=False),
        sa.Column("difficulty", sa.String(length=16), nullable=False),
        sa.Column("min_certification", sa.String(length=100), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "difficulty IN ('beginner', 'intermediate', 'advanced')",
            name=op.f("ck_dive_site_difficulty"),
        ),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_dive_site_lat")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_dive_site_lon")),
        sa.CheckConstraint(
            "min_depth_m >= 0 AND min_depth_m <= max_depth_m", name=op.f("ck_dive_site_depth_range")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            name=op.f("fk_dive_site_org_id_destination_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_dive_site_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_dive_site")),
    )
    op.create_index(
        "ix_dive_site_org_id_destination_id",
        "dive_site",
        ["org_id", "destination_id"],
        unique=False,
    )
    op.create_table(
        "idempotency_record",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_idempotency_record_org_id_user_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_idempotency_record_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "user_id", "key", name=op.f("pk_idempotency_record")),
    )
    op.create_index(
        "ix_idempotency_record_expires_at", "idempotency_record", ["expires_at"], unique=False
    )
    op.create_table(
        "knowledge_item",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=2048), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("destination_id", sa.UUID(), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            name=op.f("fk_knowledge_item_org_id_destination_id"),
            ondelete="SET NULL (destination_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_knowledge_item_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_knowledge_item")),
        sa.UniqueConstraint(
            "org_id", "content_hash", name=op.f("uq_knowledge_item_org_id_content_hash")
        ),
    )
    op.create_table(
        "refresh_token",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("family_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_refresh_token_org_id_user_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_refresh_token_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_refresh_token")),
        sa.UniqueConstraint(
            "org_id", "token_hash", name=op.f("uq_refresh_token_org_id_token_hash")
        ),
    )
    op.create_index(
        "ix_refresh_token_family_expires_at", "refresh_token", ["family_expires_at"], unique=False
    )
    op.create_index(
        "ix_refresh_token_org_id_family_id", "refresh_token", ["org_id", "family_id"], unique=False
    )
    op.create_index("ix_refresh_token_revoked_at", "refresh_token", ["revoked_at"], unique=False)
    op.create_table(
        "agent_checkpoint",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.UUID(), nullable=True),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "run_id", "parent_id"],
            ["agent_checkpoint.org_id", "agent_checkpoint.run_id", "agent_checkpoint.id"],
            name="fk_agent_checkpoint_parent",
            ondelete="SET NULL (parent_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "run_id"],
            ["agent_run.org_id", "agent_run.id"],
            name=op.f("fk_agent_checkpoint_org_id_run_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_agent_checkpoint_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_agent_checkpoint")),
        sa.UniqueConstraint(
            "org_id", "run_id", "id", name=op.f("uq_agent_checkpoint_org_id_run_id_id")
        ),
        sa.UniqueConstraint(
            "org_id", "run_id", "sequence", name=op.f("uq_agent_checkpoint_org_id_run_id_sequence")
        ),
    )
    op.create_table(
        "agent_tool_call",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "run_id"],
            ["agent_run.org_id", "agent_run.id"],
            name=op.f("fk_agent_tool_call_org_id_run_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_agent_tool_call_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_agent_tool_call")),
        sa.UniqueConstraint(
            "org_id", "run_id", "seq", name=op.f("uq_agent_tool_call_org_id_run_id_seq")
        ),
    )
    op.create_table(
        "chat_message",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'system', 'tool')", name=op.f("ck_chat_message_role")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "session_id"],
            ["chat_session.org_id", "chat_session.id"],
            name=op.f("fk_chat_message_org_id_session_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_chat_message_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_chat_message")),
    )
    op.create_index(
        "ix_chat_message_org_id_session_id_id",
        "chat_message",
        ["org_id", "session_id", "id"],
        unique=False,
    )
    op.create_table(
        "embedding",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("item_id", sa.UUID(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("chunk_text", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("embedding", Vector(dim), nullable=True),
        sa.Column("destination_id", sa.UUID(), nullable=True),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, chunk_text)", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            name=op.f("fk_embedding_org_id_destination_id"),
            ondelete="SET NULL (destination_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "item_id"],
            ["knowledge_item.org_id", "knowledge_item.id"],
            name=op.f("fk_embedding_org_id_item_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_embedding_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_embedding")),
        sa.UniqueConstraint(
            "org_id", "item_id", "chunk_index", name=op.f("uq_embedding_org_id_item_id_chunk_index")
        ),
    )
    op.create_index(
        "ix_embedding_embedding_hnsw",
        "embedding",
        ["embedding"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index("ix_embedding_org_id", "embedding", ["org_id"], unique=False)
    op.create_index("ix_embedding_tsv", "embedding", ["tsv"], unique=False, postgresql_using="gin")
    op.create_table(
        "itinerary",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=False),
        sa.Column("agent_run_id", sa.UUID(), nullable=True),
        sa.Column("destination_id", sa.UUID(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('draft', 'final')", name=op.f("ck_itinerary_status")),
        sa.CheckConstraint("start_date <= end_date", name=op.f("ck_itinerary_date_range")),
        sa.ForeignKeyConstraint(
            ["org_id", "agent_run_id"],
            ["agent_run.org_id", "agent_run.id"],
            name=op.f("fk_itinerary_org_id_agent_run_id"),
            ondelete="SET NULL (agent_run_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "created_by"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_itinerary_org_id_created_by"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            name=op.f("fk_itinerary_org_id_destination_id"),
            ondelete="SET NULL (destination_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_itinerary_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_itinerary")),
    )
    op.create_index(
        "ix_itinerary_org_id_created_by_id",
        "itinerary",
        ["org_id", "created_by", "id"],
        unique=False,
    )
    op.create_index(
        "ix_itinerary_status_end_date", "itinerary", ["status", "end_date"], unique=False
    )
    op.create_index(
        "ix_itinerary_status_updated_at", "itinerary", ["status", "updated_at"], unique=False
    )
    op.create_table(
        "lead",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("chat_session_id", sa.UUID(), nullable=True),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "chat_session_id"],
            ["chat_session.org_id", "chat_session.id"],
            name=op.f("fk_lead_org_id_chat_session_id"),
            ondelete="SET NULL (chat_session_id)",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_lead_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_lead")),
    )
    op.create_index(
        "uq_lead_org_id_lower_email_source",
        "lead",
        ["org_id", sa.literal_column("lower(email)"), "source"],
        unique=True,
    )
    _grant_and_isolate()


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {APP_ROLE}")
    op.drop_index("uq_lead_org_id_lower_email_source", table_name="lead")
    op.drop_table("lead")
    op.drop_index("ix_itinerary_status_updated_at", table_name="itinerary")
    op.drop_index("ix_itinerary_status_end_date", table_name="itinerary")
    op.drop_index("ix_itinerary_org_id_created_by_id", table_name="itinerary")
    op.drop_table("itinerary")
    op.drop_index("ix_embedding_tsv", table_name="embedding", postgresql_using="gin")
    op.drop_index("ix_embedding_org_id", table_name="embedding")
    op.drop_index(
        "ix_embedding_embedding_hnsw",
        table_name="embedding",
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.drop_table("embedding")
    op.drop_index("ix_chat_message_org_id_session_id_id", table_name="chat_message")
    op.drop_table("chat_message")
    op.drop_table("agent_tool_call")
    op.drop_table("agent_checkpoint")
    op.drop_index("ix_refresh_token_revoked_at", table_name="refresh_token")
    op.drop_index("ix_refresh_token_org_id_family_id", table_name="refresh_token")
    op.drop_index("ix_refresh_token_family_expires_at", table_name="refresh_token")
    op.drop_table("refresh_token")
    op.drop_table("knowledge_item")
    op.drop_index("ix_idempotency_record_expires_at", table_name="idempotency_record")
    op.drop_table("idempotency_record")
    op.drop_index("ix_dive_site_org_id_destination_id", table_name="dive_site")
    op.drop_table("dive_site")
    op.drop_index("ix_chat_session_org_id_created_by_id", table_name="chat_session")
    op.drop_index("ix_chat_session_expires_at", table_name="chat_session")
    op.drop_table("chat_session")
    op.drop_index("ix_agent_run_org_id_created_by_id", table_name="agent_run")
    op.drop_index("ix_agent_run_finished_at", table_name="agent_run")
    op.drop_index("ix_agent_run_created_at", table_name="agent_run")
    op.drop_table("agent_run")
    op.drop_table("destination")
    op.drop_index("uq_app_user_org_id_lower_email", table_name="app_user")
    op.drop_table("app_user")
    op.drop_table("org")
    # Drop pgvector only when this role created it; a superuser's stays.
    op.execute(
        "DO $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector' "
        "AND extowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) "
        "THEN DROP EXTENSION vector; END IF; END $$"
    )


def _grant_and_isolate() -> None:
    """Grants for the service role and Row-Level Security on every tenant table.

    The service role reads orgs, works on tenant rows of the org named by the
    transaction-local setting ``itinera.org_id`` (no setting: no rows), and can
    read the schema revision for readiness. FORCE makes the owner subject to
    RLS too, through its own allow-all policy.
    """
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON org TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")
    for table in TENANT_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            "USING (org_id = nullif(current_setting('itinera.org_id', true), '')::uuid)"
        )
        op.execute(f"CREATE POLICY owner_all ON {table} TO {OWNER_ROLE} USING (true)")
