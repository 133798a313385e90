"""itinera_begin(org, member, lock, admin): the caller's rights from the database.

The opening statement of a request's transaction now also checks the caller's
role as it is in the database at that moment, not as the access token claimed
it up to fifteen minutes ago: with ``admin`` true, a caller who is not (or no
longer) an enabled admin is refused with SQLSTATE 42501.

An overload beside the three-argument function of 0002 rather than a
replacement, so a replica of the previous build keeps working during a rolling
upgrade. It has no defaults: a call with three arguments still resolves to the
old one alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "itinera_begin(uuid, uuid, bigint, boolean)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION itinera_begin(org uuid, member uuid, lock bigint, admin boolean)
        RETURNS void
        LANGUAGE plpgsql
        SET search_path = public, pg_temp
        AS $$
        DECLARE
            caller_role text;
        BEGIN
            -- Transaction-local: gone at COMMIT or ROLLBACK, never left on a pooled connection.
            PERFORM set_config('itinera.org_id', org::text, true);
            IF member IS NOT NULL THEN
                SELECT u.role INTO caller_role
                FROM app_user u WHERE u.org_id = org AND u.id = member AND NOT u.disabled;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'the user no longer exists or is disabled'
                        USING ERRCODE = 'invalid_authorization_specification';
                END IF;
                IF admin AND caller_role IS DISTINCT FROM 'admin' THEN
                    RAISE EXCEPTION 'only admins may do this'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
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
