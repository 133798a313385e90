"""Two independent walls between tenants: repository scoping and Row-Level Security."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.engine import create_engine
from itinera.db.models import TENANT_TABLES, Destination, new_id
from itinera.db.pool import DriverPool, request_pool
from itinera.db.unit_of_work import TENANT_SETTING, UnitOfWork
from itinera.domain.itineraries.repository import ItineraryRepository
from itinera.domain.users.repository import UserRepository
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.rows import insert_everywhere
from tests.support.tenants import Tenant


@pytest.fixture
async def app_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Connections of the service role, as the running service has them."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, settings, application_name="tenancy-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
async def owner_pool(settings: Settings) -> AsyncIterator[DriverPool]:
    """The owner role (RLS lets it see every org), transactions begun by the unit of work."""
    assert settings.admin_database_url is not None
    pool = request_pool(settings.admin_database_url, settings, application_name="tenancy-tests")
    yield pool
    await pool.close()


@pytest.fixture
async def service_pool(settings: Settings) -> AsyncIterator[DriverPool]:
    """The service's own request pool: transactions begun and ended by the unit of work."""
    assert settings.database_url is not None
    pool = request_pool(settings.database_url, settings, application_name="tenancy-tests")
    yield pool
    await pool.close()


async def tables_with_org_id(engine: AsyncEngine) -> list[str]:
    """Asked of the database, not of a list: a table the models forget is still found."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_class c "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' "
                "WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace "
                "ORDER BY c.relname"
            )
        )
        return [row.relname for row in rows]


def _as_tenant(org_id: object) -> text:
    return text(f"SELECT set_config('{TENANT_SETTING}', '{org_id}', true)")


async def test_row_level_security_hides_every_table_of_another_org(
    tenant: Tenant,
    other_tenant: Tenant,
    owner_engine: AsyncEngine,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    async with owner_engine.begin() as conn:
        await insert_everywhere(
            conn, tenant.org_id, tenant.admin.user_id, dim=settings.embedding_dim
        )
        await insert_everywhere(
            conn, other_tenant.org_id, other_tenant.admin.user_id, dim=settings.embedding_dim
        )
    tables = await tables_with_org_id(app_engine)
    # Every table that holds org_id is a tenant table of the models, and the other way round.
    assert tables == sorted(TENANT_TABLES)
    for table in tables:
        async with app_engine.begin() as conn:
            await conn.execute(_as_tenant(other_tenant.org_id))
            # No filter at all: a forgotten WHERE still cannot reach org A.
            seen = {row.org_id for row in await conn.execute(text(f"SELECT * FROM {table}"))}
        assert seen == {other_tenant.org_id}, table
        async with app_engine.begin() as conn:
            await conn.execute(_as_tenant(tenant.org_id))
            seen = {row.org_id for row in await conn.execute(text(f"SELECT * FROM {table}"))}
        assert seen == {tenant.org_id}, table
        async with app_engine.connect() as conn:
            count = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
        assert count == 0, f"{table}: no setting must mean no rows"


async def test_a_cross_tenant_insert_is_refused(
    tenant: Tenant, other_tenant: Tenant, app_engine: AsyncEngine
) -> None:
    async with app_engine.connect() as conn:
        await conn.begin()
        await conn.execute(_as_tenant(other_tenant.org_id))
        statement = Destination.__table__.insert().values(
            org_id=tenant.org_id, id=new_id(), slug="smuggled", name="X", country="EG", lat=0, lon=0
        )
        with pytest.raises(DBAPIError, match="row-level security"):
            await conn.execute(statement)
        await conn.rollback()


async def test_repositories_filter_by_org_even_without_rls(
    tenant: Tenant, other_tenant: Tenant, owner_pool: DriverPool
) -> None:
    """Wall 1 alone: the owner's connection sees every org, the repository does not."""
    for org_id, found in ((tenant.org_id, True), (other_tenant.org_id, False)):
        uow = UnitOfWork(owner_pool, org_id)
        try:
            # RLS lets the owner see org A's user from org B's transaction...
            visible = await uow.fetchval(
                "SELECT count(*) FROM app_user WHERE id = $1", [tenant.admin.user_id]
            )
            assert visible == 1
            # ...the repository, filtering by its transaction's org, does not.
            user = await UserRepository(uow).get(tenant.admin.user_id)
            assert (user is not None) is found
        finally:
            await uow.close()


async def test_rls_holds_even_when_a_repository_asks_for_the_wrong_org(
    tenant: Tenant, other_tenant: Tenant, service_pool: DriverPool
) -> None:
    """Wall 2 alone: a repository built for org A inside org B's transaction finds nothing."""
    uow = UnitOfWork(service_pool, tenant.org_id)
    # The opening message names org A, then (last, so it wins) sets org B for RLS.
    await uow.use_settings({TENANT_SETTING: str(other_tenant.org_id)})
    try:
        repository = UserRepository(uow)
        assert await repository.get(tenant.admin.user_id) is None
        itineraries = ItineraryRepository(uow)
        assert await itineraries.list(limit=10, after=None, created_by=None, status=None) == (
            [],
            None,
        )
    finally:
        await uow.close()


async def test_the_setting_does_not_outlive_its_transaction(
    tenant: Tenant, settings: Settings
) -> None:
    assert settings.database_url is not None
    pool = request_pool(
        settings.database_url,
        settings.replace(db_pool_size=1, db_max_overflow=0),
        application_name="tenancy-tests",
    )
    try:
        uow = UnitOfWork(pool, tenant.org_id)
        assert await UserRepository(uow).get(tenant.admin.user_id)
        await uow.commit()
        await uow.close()
        # The same (only) pooled connection, next user: nothing of the last tenant.
        connection = await pool.acquire()
        try:
            leftover = await connection.fetchval("SELECT current_setting($1, true)", TENANT_SETTING)
            users = await connection.fetchval("SELECT count(*) FROM app_user")
        finally:
            pool.release(connection)
        assert leftover in (None, "")
        assert users == 0
    finally:
        await pool.close()


async def test_concurrent_requests_of_two_orgs_on_two_connections(
    tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    narrow = settings.replace(db_pool_size=2, db_max_overflow=0)
    accounts = [tenant.admin, other_tenant.admin, tenant.member, other_tenant.member] * 40
    async with running_app(narrow) as client:

        async def whoami(headers: dict[str, str]) -> httpx.Response:
            return await client.get("/v1/me", headers=headers)

        answers = await asyncio.gather(*(whoami(account.headers) for account in accounts))
        listings = await asyncio.gather(
            *(
                client.get("/v1/users", headers=a.headers)
                for a in (tenant.admin, other_tenant.admin) * 20
            )
        )
    for account, answer in zip(accounts, answers, strict=True):
        assert answer.status_code == 200
        assert answer.json()["org"]["id"] == str(account.org_id)
        assert answer.json()["user"]["id"] == str(account.user_id)
    for n, listing in enumerate(listings):
        owner = (tenant, other_tenant)[n % 2]
        ids = {user["id"] for user in listing.json()["items"]}
        assert ids == {str(owner.admin.user_id), str(owner.member.user_id)}
