"""Threads for LangGraph: thread, thread_checkpoint, thread_blob, thread_write.

A thread is named by the client, unique per org, and has an id its rows carry.
Checkpoints are keyed by (thread, namespace, the client's checkpoint id); the
channel values live apart, one row per (channel, version), shared by every
checkpoint of the namespace that names that version; pending writes are keyed by
(checkpoint, task, position) and refer to the thread only, since they may be
saved before their checkpoint. Checkpoint ids, task ids and task paths are
compared in code-point order (the "C" collation), as the client orders them.
Metadata has a GIN index (jsonb_path_ops) for containment filters. There is
no org-wide index on checkpoint ids: the planner would take it for the newest
checkpoint of one thread too (walking every newer checkpoint of the org to reach
an idle thread's), where the primary key is the right one.

Grants and Row-Level Security as for every tenant table of 0001.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "itinera_app"
OWNER_ROLE = "itinera_owner"
TABLES = ("thread", "thread_checkpoint", "thread_blob", "thread_write")
THREAD_OF = "itinera_thread(uuid, text, uuid, boolean)"


def _thread_columns(table: str) -> list[Any]:
    """org_id and thread_id, with the foreign keys every child of a thread has."""
    return [
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("thread_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f(f"fk_{table}_org_id"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "thread_id"],
            ["thread.org_id", "thread.id"],
            name=op.f(f"fk_{table}_org_id_thread_id"),
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "thread",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_checkpoint_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_thread_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_thread")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_thread_org_id_name")),
    )
    op.create_index("ix_thread_last_checkpoint_at", "thread", ["last_checkpoint_at"])

    op.create_table(
        "thread_checkpoint",
        *_thread_columns("thread_checkpoint"),
        sa.Column("checkpoint_ns", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(collation="C"), nullable=False),
        sa.Column("parent_checkpoint_id", sa.Text(collation="C"), nullable=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "channel_versions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            name=op.f("pk_thread_checkpoint"),
        ),
    )
    op.create_index(
        "ix_thread_checkpoint_metadata",
        "thread_checkpoint",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )

    op.create_table(
        "thread_blob",
        *_thread_columns("thread_blob"),
        sa.Column("checkpoint_ns", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint(
            "org_id",
            "thread_id",
            "checkpoint_ns",
            "channel",
            "version",
            name=op.f("pk_thread_blob"),
        ),
    )

    op.create_table(
        "thread_write",
        *_thread_columns("thread_write"),
        sa.Column("checkpoint_ns", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(collation="C"), nullable=False),
        sa.Column("task_id", sa.Text(collation="C"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("task_path", sa.Text(collation="C"), server_default="", nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id",
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "idx",
            name=op.f("pk_thread_write"),
        ),
    )

    for table in TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            "USING (org_id = nullif(current_setting('itinera.org_id', true), '')::uuid)"
        )
        op.execute(f"CREATE POLICY owner_all ON {table} TO {OWNER_ROLE} USING (true)")

    # The id of a thread by name, made if need be, for the statement that saves into
    # it. A statement's snapshot cannot see a thread another transaction made after
    # it began, though its insert waits for that one and then meets the row; each
    # statement of a VOLATILE function takes a fresh snapshot, so the read that
    # follows here does see it. Saving a checkpoint moves the thread's age on (at
    # most once a minute: every save writing the row would cost a row version each)
    # and holds the row to the end of the transaction, so saves of one thread take
    # turns; pending writes only share it, so parallel tasks save side by side.
    op.execute(
        """
        CREATE FUNCTION itinera_thread(
            org uuid, thread_name text, new_id uuid, saves_checkpoint boolean
        )
        RETURNS uuid
        LANGUAGE plpgsql
        VOLATILE
        SET search_path = public, pg_temp
        AS $$
        DECLARE
            found_id uuid;
        BEGIN
            LOOP
                IF saves_checkpoint THEN
                    INSERT INTO thread (org_id, id, name) VALUES (org, new_id, thread_name)
                    ON CONFLICT (org_id, name) DO UPDATE SET last_checkpoint_at = now()
                        WHERE thread.last_checkpoint_at < now() - interval '1 minute'
                    RETURNING id INTO found_id;
                ELSE
                    INSERT INTO thread (org_id, id, name) VALUES (org, new_id, thread_name)
                    ON CONFLICT (org_id, name) DO NOTHING
                    RETURNING id INTO found_id;
                END IF;
                IF found_id IS NOT NULL THEN
                    RETURN found_id;
                END IF;
                SELECT id INTO found_id FROM thread
                WHERE org_id = org AND name = thread_name
                FOR KEY SHARE;
                IF found_id IS NOT NULL THEN
                    RETURN found_id;
                END IF;
                -- Deleted between the two statements: make it again.
            END LOOP;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {THREAD_OF} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {THREAD_OF} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {THREAD_OF}")
    op.drop_table("thread_write")
    op.drop_table("thread_blob")
    op.drop_index(
        "ix_thread_checkpoint_metadata",
        table_name="thread_checkpoint",
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    op.drop_table("thread_checkpoint")
    op.drop_index("ix_thread_last_checkpoint_at", table_name="thread")
    op.drop_table("thread")
