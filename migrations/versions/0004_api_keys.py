"""API keys for machine clients, and itinera_begin_key(...) to open a key's transaction.

A key is ``itk_<org_id>.<base64url(32 random bytes)>``; only its SHA-256 is
stored. The opening statement of a request made with a key calls
``itinera_begin_key`` instead of ``itinera_begin``: in that one statement it
sets the tenant, checks that the key is live (not revoked, not expired) and
belongs to the enabled user the service resolved it to, checks admin rights
when the route needs them, takes the idempotency lock, and notes the key's use
(at most once a minute: a key used by a busy worker must not rewrite its row
on every request).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "itinera_app"
OWNER_ROLE = "itinera_owner"
TABLE = "api_key"
SIGNATURE = "itinera_begin_key(uuid, bytea, uuid, bigint, boolean)"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id", "user_id"],
            ["app_user.org_id", "app_user.id"],
            name=op.f("fk_api_key_org_id_user_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["org.id"], name=op.f("fk_api_key_org_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("org_id", "key_hash", name=op.f("uq_api_key_org_id_key_hash")),
    )
    op.create_index("ix_api_key_org_id_user_id", TABLE, ["org_id", "user_id"], unique=False)
    # The same grants and policies as every tenant table of 0001 (_grant_and_isolate).
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {TABLE} TO {APP_ROLE} "
        "USING (org_id = nullif(current_setting('itinera.org_id', true), '')::uuid)"
    )
    op.execute(f"CREATE POLICY owner_all ON {TABLE} TO {OWNER_ROLE} USING (true)")

    op.execute(
        """
        CREATE FUNCTION itinera_begin_key(
            org uuid, key_hash bytea, member uuid, lock bigint, admin boolean
        )
        RETURNS uuid
        LANGUAGE plpgsql
        SET search_path = public, pg_temp
        AS $$
        DECLARE
            key_id uuid;
            key_user uuid;
            caller_role text;
        BEGIN
            -- Transaction-local: gone at COMMIT or ROLLBACK, never left on a pooled connection.
            PERFORM set_config('itinera.org_id', org::text, true);
            SELECT k.id, k.user_id, u.role INTO key_id, key_user, caller_role
            FROM api_key k
            JOIN app_user u ON u.org_id = k.org_id AND u.id = k.user_id
            WHERE k.org_id = org
              AND k.key_hash = itinera_begin_key.key_hash
              AND k.revoked_at IS NULL
              AND (k.expires_at IS NULL OR k.expires_at > now())
              AND NOT u.disabled
              -- The user the service resolved the key to (NULL: resolve it now).
              AND (member IS NULL OR k.user_id = member);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the API key is not valid, or its user is disabled'
                    USING ERRCODE = 'invalid_authorization_specification';
            END IF;
            IF admin AND caller_role IS DISTINCT FROM 'admin' THEN
                RAISE EXCEPTION 'only admins may do this'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF lock IS NOT NULL AND NOT pg_try_advisory_xact_lock(lock) THEN
                RAISE EXCEPTION 'the lock is held by another transaction'
                    USING ERRCODE = 'lock_not_available';
            END IF;
            -- At most once a minute: a steady client must not write the row per request.
            -- SKIP LOCKED: a concurrent request of the same key that is noting it
            -- already does the job; waiting for its transaction would only add latency.
            UPDATE api_key SET last_used_at = now()
            WHERE api_key.org_id = org AND api_key.id = (
                SELECT k.id FROM api_key k
                WHERE k.org_id = org AND k.id = key_id
                  AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
                FOR UPDATE SKIP LOCKED
            );
            RETURN key_user;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.drop_index("ix_api_key_org_id_user_id", table_name=TABLE)
    op.drop_table(TABLE)
