"""itinera_store_response(): an idempotency record written in the COMMIT message.

A request with an ``Idempotency-Key`` stores its response with its writes,
then commits. Sent as its own prepared statement, the record cost a round trip
of its own before the ``COMMIT``; this function lets the record travel in the
same message, ``SELECT itinera_store_response(...); COMMIT``, its values
inlined as literals (the simple query protocol carries no parameters). Inside
the function the upsert is a statement PL/pgSQL prepares once per connection.

An expired record of the same key may still be there (sweeps only reclaim
space): the caller holds the key's lock, so it is overwritten.

Additive: a replica of the previous build keeps storing records itself.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "itinera_store_response(uuid, text, bytea, smallint, jsonb, bytea, integer)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION itinera_store_response(
            member uuid,
            idempotency_key text,
            request_fingerprint bytea,
            response_status smallint,
            response_headers jsonb,
            response_body bytea,
            ttl_seconds integer
        )
        RETURNS void
        LANGUAGE plpgsql
        SET search_path = public, pg_temp
        AS $$
        BEGIN
            -- Under the caller's Row-Level Security: the tenant is the transaction's.
            INSERT INTO idempotency_record AS r
                (org_id, user_id, key, fingerprint, status, headers, body, created_at, expires_at)
            VALUES (
                current_setting('itinera.org_id')::uuid, member, idempotency_key,
                request_fingerprint, response_status, response_headers, response_body,
                now(), now() + make_interval(secs => ttl_seconds)
            )
            ON CONFLICT (org_id, user_id, key) DO UPDATE SET
                fingerprint = excluded.fingerprint,
                status = excluded.status,
                headers = excluded.headers,
                body = excluded.body,
                created_at = excluded.created_at,
                expires_at = excluded.expires_at;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO itinera_app")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
