"""itinera_expect_unrecorded_key(): an idempotency key's record checked in the opening message.

A request with an ``Idempotency-Key`` opens its transaction with the key's
advisory lock, then reads the key's record before its handler runs. Almost
always there is none. This function lets the opening message itself ask: it
raises SQLSTATE IT001 when the key has a live record, so the common case —
a new key — needs no statement of its own for the lookup, and only a replay
pays a second opening and the read.

Additive: a replica of the previous build keeps reading the record itself.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "itinera_expect_unrecorded_key(uuid, text)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION itinera_expect_unrecorded_key(member uuid, idempotency_key text)
        RETURNS void
        LANGUAGE plpgsql
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            -- Under the caller's Row-Level Security: the tenant is the transaction's.
            IF EXISTS (
                SELECT 1 FROM idempotency_record r
                WHERE r.org_id = current_setting('itinera.org_id')::uuid
                  AND r.user_id = member
                  AND r.key = idempotency_key
                  AND r.expires_at > now()
            ) THEN
                RAISE EXCEPTION 'the idempotency key has a stored response'
                    USING ERRCODE = 'IT001';
            END IF;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO itinera_app")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
