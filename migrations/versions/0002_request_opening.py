"""itinera_begin(): a request's tenant, caller check and idempotency lock in one call.

The service opens every transaction with ``BEGIN; SELECT itinera_begin(...)``
sent as one message: a single round trip sets the tenant for Row-Level
Security, checks that the caller still exists and is enabled (SQLSTATE 28000
when not), and takes an idempotency key's advisory lock (55P03 when another
request holds it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "itinera_begin(uuid, uuid, bigint)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION itinera_begin(org uuid, member uuid DEFAULT NULL, lock bigint DEFAULT NULL)
        RETURNS void
        LANGUAGE plpgsql
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            -- Transaction-local: gone at COMMIT or ROLLBACK, never left on a pooled connection.
            PERFORM set_config('itinera.org_id', org::text, true);
            IF member IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM app_user u WHERE u.org_id = org AND u.id = member AND NOT u.disabled
            ) THEN
                RAISE EXCEPTION 'the user no longer exists or is disabled'
                    USING ERRCODE = 'invalid_authorization_specification';
            END IF;
            IF lock IS NOT NULL AND NOT pg_try_advisory_xact_lock(lock) THEN
                RAISE EXCEPTION 'the lock is held by another transaction'
                    USING ERRCODE = 'lock_not_available';
            END IF;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO itinera_app")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
