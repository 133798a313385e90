"""Admin rights come from the database as each request starts, never from the token's claim."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import AppUser
from itinera.settings import Settings
from tests.support.http import assert_problem
from tests.support.tenants import Account, Tenant, add_user, make_tenant


async def enabled_admins(engine: AsyncEngine, tenant: Tenant) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(AppUser)
            .where(
                AppUser.org_id == tenant.org_id,
                AppUser.role == "admin",
                AppUser.disabled.is_(False),
            )
        )
    return int(count or 0)


async def second_admin(engine: AsyncEngine, settings: Settings, tenant: Tenant) -> Account:
    return await add_user(engine, settings, tenant.org_id, "admin")


async def test_a_demoted_admin_loses_admin_rights_with_the_old_token(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine, settings: Settings
) -> None:
    a2 = await second_admin(owner_engine, settings, tenant)
    demoted = await client.patch(
        f"/v1/users/{a2.user_id}", json={"role": "member"}, headers=tenant.admin.headers
    )
    assert demoted.status_code == 200

    # a2's token still says "admin": none of it counts any more.
    assert_problem(await client.get("/v1/users", headers=a2.headers), 403)
    assert_problem(await client.get(f"/v1/users/{a2.user_id}", headers=a2.headers), 403)
    repromoted = await client.patch(
        f"/v1/users/{a2.user_id}", json={"role": "admin"}, headers=a2.headers
    )
    assert_problem(repromoted, 403)
    coup = await client.patch(
        f"/v1/users/{tenant.admin.user_id}", json={"disabled": True}, headers=a2.headers
    )
    assert_problem(coup, 403)
    created = await client.post(
        "/v1/users",
        json={"email": "sleeper@example.com", "password": "a long password", "role": "admin"},
        headers=a2.headers,
    )
    assert_problem(created, 403)

    # Still a member: the rest of the API works as before.
    assert (await client.get("/v1/me", headers=a2.headers)).json()["user"]["role"] == "member"
    listed = await client.get("/v1/users", headers=tenant.admin.headers)
    assert {u["email"] for u in listed.json()["items"]} == {
        tenant.admin.email,
        tenant.member.email,
        a2.email,
    }


async def test_a_promoted_member_has_admin_rights_with_the_old_token(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    promoted = await client.patch(
        f"/v1/users/{tenant.member.user_id}", json={"role": "admin"}, headers=tenant.admin.headers
    )
    assert promoted.status_code == 200
    assert (await client.get("/v1/users", headers=tenant.member.headers)).status_code == 200


async def test_an_admin_may_step_down_while_another_admin_remains(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine, settings: Settings
) -> None:
    await second_admin(owner_engine, settings, tenant)
    stepped_down = await client.patch(
        f"/v1/users/{tenant.admin.user_id}", json={"role": "member"}, headers=tenant.admin.headers
    )
    assert stepped_down.status_code == 200
    assert await enabled_admins(owner_engine, tenant) == 1


async def test_the_last_admin_cannot_step_down_or_disable_themselves(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    for change in ({"role": "member"}, {"disabled": True}):
        refused = await client.patch(
            f"/v1/users/{tenant.admin.user_id}", json=change, headers=tenant.admin.headers
        )
        assert_problem(refused, 409)
    assert await enabled_admins(owner_engine, tenant) == 1


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, owner_engine: AsyncEngine, settings: Settings
) -> None:
    # Several rounds, each with a fresh org: the two requests interleave
    # differently from round to round.
    for change in ({"role": "member"}, {"disabled": True}) * 5:
        tenant = await make_tenant(owner_engine, settings)
        a2 = await second_admin(owner_engine, settings, tenant)
        first, second = await asyncio.gather(
            client.patch(f"/v1/users/{a2.user_id}", json=change, headers=tenant.admin.headers),
            client.patch(f"/v1/users/{tenant.admin.user_id}", json=change, headers=a2.headers),
        )
        statuses = sorted((first.status_code, second.status_code))
        assert statuses in ([200, 401], [200, 403]), (first.text, second.text)
        assert await enabled_admins(owner_engine, tenant) == 1
