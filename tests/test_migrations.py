"""The migrations against a real PostgreSQL with pgvector, each on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.engine import create_engine
from itinera.db.models import TENANT_TABLES, Base
from itinera.db.schema import alembic_config
from tests.support.database import ScratchDatabase, create_database, dispose_database, run_alembic
from tests.support.servers import PostgresServer

pytestmark = pytest.mark.slow

# What the migration created (alembic's own version table stays, empty).
OUR_OBJECTS = text(
    """
    SELECT 'relation ' || c.relname FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic\\_version%'
       AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
    UNION ALL
    SELECT 'function ' || proname FROM pg_proc
     WHERE pronamespace = 'public'::regnamespace
       AND proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
    UNION ALL
    SELECT 'policy ' || polname FROM pg_policy
    UNION ALL
    SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typname NOT IN ('alembic_version', '_alembic_version')
       AND t.typowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
    """
)


@pytest.fixture
async def empty_database(postgres: PostgresServer) -> AsyncIterator[ScratchDatabase]:
    database = await create_database(postgres, migrate_to=None, embedding_dim=1536)
    yield database
    await dispose_database(postgres, database)


@pytest.fixture
async def owner(empty_database: ScratchDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        empty_database.owner_url, empty_database.settings(), application_name="migration-tests"
    )
    yield engine
    await engine.dispose()


async def _columns(engine: AsyncEngine) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'alembic_version'"
            )
        )
        return {(row.table_name, row.column_name) for row in rows}


async def test_upgrade_from_empty_creates_every_table_with_row_level_security(
    empty_database: ScratchDatabase, owner: AsyncEngine
) -> None:
    await run_alembic(empty_database.settings(embedding_dim=1536), "upgrade", "head")
    async with owner.connect() as conn:
        tables = {
            row.relname: (row.relrowsecurity, row.relforcerowsecurity)
            for row in await conn.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                )
            )
        }
        policies = {
            (row.tablename, row.policyname, tuple(row.roles))
            for row in await conn.execute(
                text("SELECT tablename, policyname, roles FROM pg_policies")
            )
        }
        vector_type = await conn.scalar(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'embedding'::regclass AND attname = 'embedding'"
            )
        )
        app_role = (
            await conn.execute(
                text("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = 'itinera_app'")
            )
        ).one()
        begin_executors = {
            row.grantee
            for row in await conn.execute(
                text(
                    "SELECT grantee FROM information_schema.routine_privileges "
                    "WHERE routine_name = 'itinera_begin' AND privilege_type = 'EXECUTE'"
                )
            )
        }
        app_owns = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_class "
                "WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = 'itinera_app')"
            )
        )

    assert set(Base.metadata.tables) | {"alembic_version"} == set(tables)
    for table in TENANT_TABLES:
        assert tables[table] == (True, True), f"{table} must ENABLE and FORCE row level security"
        assert (table, "tenant_isolation", ("itinera_app",)) in policies
        assert (table, "owner_all", ("itinera_owner",)) in policies
    assert tables["org"] == (False, False)
    assert vector_type == "vector(1536)"
    assert app_role == (False, False)
    assert app_owns == 0
    assert begin_executors == {"itinera_app", "itinera_owner"}, "not PUBLIC"


async def test_downgrade_to_base_leaves_nothing_behind(
    empty_database: ScratchDatabase, owner: AsyncEngine
) -> None:
    settings = empty_database.settings()
    await run_alembic(settings, "upgrade", "head")
    await run_alembic(settings, "downgrade", "base")
    async with owner.connect() as conn:
        leftovers = (await conn.execute(OUR_OBJECTS)).scalars().all()
        grants_to_app = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_namespace, aclexplode(nspacl) AS acl "
                "WHERE nspname = 'public' AND acl.grantee = 'itinera_app'::regrole"
            )
        )
        revision = await conn.scalar(text("SELECT count(*) FROM alembic_version"))
    assert leftovers == []
    assert grants_to_app == 0
    assert revision == 0


async def test_upgrade_downgrade_upgrade_round_trips(
    empty_database: ScratchDatabase, owner: AsyncEngine
) -> None:
    settings = empty_database.settings()
    await run_alembic(settings, "upgrade", "head")
    first = await _columns(owner)
    await run_alembic(settings, "downgrade", "base")
    assert await _columns(owner) == set()
    await run_alembic(settings, "upgrade", "head")
    assert await _columns(owner) == first


async def test_models_and_migrations_do_not_drift(empty_database: ScratchDatabase) -> None:
    settings = empty_database.settings()
    await run_alembic(settings, "upgrade", "head")
    # `alembic check` raises when autogenerate would emit any operation;
    # run_alembic turns its warnings into errors too.
    await run_alembic(settings, "check")


async def test_every_upgrade_step_is_additive(
    empty_database: ScratchDatabase, owner: AsyncEngine
) -> None:
    settings = empty_database.settings()
    scripts = ScriptDirectory.from_config(alembic_config(settings))
    revisions = list(reversed(list(scripts.walk_revisions())))
    assert revisions, "there are migrations"
    before = await _columns(owner)
    for script in revisions:
        await run_alembic(settings, "upgrade", script.revision)
        after = await _columns(owner)
        dropped = before - after
        assert not dropped, f"revision {script.revision} drops {sorted(dropped)}"
        before = after
