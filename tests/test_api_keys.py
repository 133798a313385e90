"""API keys: admins make them for users of their org; a key acts as its user, as the
database has that user when each request starts."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import ApiKey
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.http import assert_problem
from tests.support.rate_limits import limited, unique_address
from tests.support.tenants import Account, Tenant, add_user

TRIP = {"title": "Red Sea", "start_date": "2027-01-01", "end_date": "2027-01-08"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def create_key(
    client: httpx.AsyncClient, admin: Account, user: Account, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/api-keys",
        json={"user_id": str(user.user_id), "name": "nightly worker", **extra},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored(engine: AsyncEngine, key_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(ApiKey).where(ApiKey.id == uuid.UUID(key_id)))).one()


async def test_a_key_acts_as_its_user_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    created = await create_key(client, tenant.admin, tenant.member)
    secret = created["secret"]
    assert re.fullmatch(rf"itk_{tenant.org_id}\.[A-Za-z0-9_-]{{43}}", secret)
    assert created["user_id"] == str(tenant.member.user_id)
    assert created["name"] == "nightly worker"
    assert (created["expires_at"], created["last_used_at"], created["revoked_at"]) == (
        None,
        None,
        None,
    )

    me = await client.get("/v1/me", headers=bearer(secret))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == str(tenant.member.user_id)
    made = await client.post(
        "/v1/itineraries",
        json=TRIP,
        headers={**bearer(secret), "Idempotency-Key": f"k-{uuid.uuid4()}"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == str(tenant.member.user_id)

    row = await stored(owner_engine, created["id"])
    assert row.key_hash == hashlib.sha256(secret.encode()).digest()
    async with owner_engine.connect() as conn:
        whole_row = await conn.scalar(
            text("SELECT api_key::text FROM api_key WHERE id = :id"), {"id": created["id"]}
        )
        records = await conn.scalar(
            text(
                "SELECT string_agg(convert_from(body, 'UTF8'), '') FROM idempotency_record "
                "WHERE org_id = :org"
            ),
            {"org": tenant.org_id},
        )
    secret_part = secret.rpartition(".")[2]
    assert secret_part not in str(whole_row)
    assert secret_part not in str(records)


async def test_the_list_shows_no_secret_and_filters_by_user(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    mine = await create_key(client, tenant.admin, tenant.member)
    admins = await create_key(client, tenant.admin, tenant.admin)
    listed = await client.get("/v1/api-keys", headers=tenant.admin.headers)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["items"]] == [admins["id"], mine["id"]]
    assert all("secret" not in k for k in listed.json()["items"])
    assert mine["secret"].rpartition(".")[2] not in listed.text
    only = await client.get(
        "/v1/api-keys",
        params={"user_id": str(tenant.member.user_id), "limit": 1},
        headers=tenant.admin.headers,
    )
    assert [k["id"] for k in only.json()["items"]] == [mine["id"]]


async def test_a_revoked_key_is_refused_on_the_next_request(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.admin.headers)
    assert revoked.status_code == 204
    assert_problem(await client.get("/v1/me", headers=bearer(key["secret"])), 401)
    again = await client.delete(f"/v1/api-keys/{key['id']}", headers=tenant.admin.headers)
    assert again.status_code == 204
    listed = await client.get("/v1/api-keys", headers=tenant.admin.headers)
    assert listed.json()["items"][0]["revoked_at"] is not None


async def test_disabling_the_user_refuses_their_key_on_the_next_request(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    disabled = await client.patch(
        f"/v1/users/{tenant.member.user_id}", json={"disabled": True}, headers=tenant.admin.headers
    )
    assert disabled.status_code == 200
    assert_problem(await client.get("/v1/me", headers=bearer(key["secret"])), 401)


async def test_admin_rights_of_a_key_are_its_user_s_now(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine, settings: Settings
) -> None:
    member_key = await create_key(client, tenant.admin, tenant.member)
    assert_problem(await client.get("/v1/api-keys", headers=bearer(member_key["secret"])), 403)
    assert_problem(await client.get("/v1/users", headers=bearer(member_key["secret"])), 403)

    second = await add_user(owner_engine, settings, tenant.org_id, "admin")
    admin_key = await create_key(client, tenant.admin, second)
    assert (await client.get("/v1/users", headers=bearer(admin_key["secret"]))).status_code == 200
    demoted = await client.patch(
        f"/v1/users/{second.user_id}", json={"role": "member"}, headers=tenant.admin.headers
    )
    assert demoted.status_code == 200
    assert_problem(await client.get("/v1/users", headers=bearer(admin_key["secret"])), 403)
    assert (await client.get("/v1/me", headers=bearer(admin_key["secret"]))).status_code == 200


async def test_another_org_s_admin_neither_sees_nor_revokes_a_key(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)
    theirs = await client.get("/v1/api-keys", headers=other_tenant.admin.headers)
    assert theirs.json()["items"] == []
    assert_problem(
        await client.delete(f"/v1/api-keys/{key['id']}", headers=other_tenant.admin.headers), 404
    )
    assert_problem(
        await client.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=tenant.admin.headers), 404
    )
    # Nor make one for a user of another org.
    foreign = await client.post(
        "/v1/api-keys",
        json={"user_id": str(tenant.member.user_id), "name": "x"},
        headers=other_tenant.admin.headers,
    )
    assert_problem(foreign, 422)
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200


async def test_malformed_unknown_and_misprefixed_keys_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)
    secret_part = key["secret"].rpartition(".")[2]
    for bad in (
        "itk_",
        "itk_not-an-org.abc",
        f"itk_{tenant.org_id}.{secret_part}x",
        f"itk_{tenant.org_id}.{'A' * 43}",
        f"itk_{str(tenant.org_id).upper()}.{secret_part}",
        # Org A's key under org B's prefix: the tenant is B's, the hash is no key there.
        f"itk_{other_tenant.org_id}.{secret_part}",
        f"{tenant.org_id}.{secret_part}",  # the form of a refresh token
    ):
        response = await client.get("/v1/me", headers=bearer(bad))
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_expired_key_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert_problem(
        await client.post(
            "/v1/api-keys",
            json={"user_id": str(tenant.member.user_id), "name": "x", "expires_at": past},
            headers=tenant.admin.headers,
        ),
        422,
    )
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    key = await create_key(client, tenant.admin, tenant.member, expires_at=soon)
    assert key["expires_at"] is not None
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert_problem(await client.get("/v1/me", headers=bearer(key["secret"])), 401)


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    first = (await stored(owner_engine, key["id"])).last_used_at
    assert first is not None
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    assert (await stored(owner_engine, key["id"])).last_used_at == first

    two_minutes_ago = first - timedelta(minutes=2)
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key["id"]))
            .values(last_used_at=two_minutes_ago)
        )
    assert (await client.get("/v1/me", headers=bearer(key["secret"]))).status_code == 200
    assert (await stored(owner_engine, key["id"])).last_used_at > first


async def db_round_trips(client: httpx.AsyncClient, method: str, route: str) -> float:
    exposition = (await client.get("/metrics")).text
    pattern = (
        rf'^itinera_db_round_trips_total\{{method="{method}",route="{re.escape(route)}"\}} (\S+)$'
    )
    match = re.search(pattern, exposition, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_remembered_key_costs_the_round_trips_of_an_access_token(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.admin, tenant.member)

    async def cost(headers: dict[str, str]) -> float:
        before = await db_round_trips(client, "GET", "/v1/me")
        assert (await client.get("/v1/me", headers=headers)).status_code == 200
        return await db_round_trips(client, "GET", "/v1/me") - before

    with_token = await cost(tenant.member.headers)
    first_use = await cost(bearer(key["secret"]))
    steady = await cost(bearer(key["secret"]))
    # Resolving the key once: open (tenant set), look up, roll back.
    assert first_use == with_token + 3
    assert steady == with_token


async def test_guessing_keys_from_one_address_runs_dry_at_the_auth_ip_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    guessing = limited(settings, auth_ip=3).replace(trusted_proxies=("127.0.0.1/32",))
    address = {"X-Forwarded-For": unique_address()}
    async with running_app(guessing) as client:
        answers = []
        for _ in range(5):
            guess = f"itk_{tenant.org_id}.{uuid.uuid4().hex}{uuid.uuid4().hex[:11]}"
            response = await client.get("/v1/me", headers={**bearer(guess), **address})
            answers.append(response.status_code)
        # Each unknown key costs a database lookup, so each takes a token of the address.
        assert answers == [401, 401, 401, 429, 429]
        refused = await client.get("/v1/me", headers={**bearer(guess), **address})
        assert refused.json()["violated-policies"] == ["auth-ip"]
        # Another address is not held back by this one's guesses.
        other = await client.get(
            "/v1/me", headers={**bearer(guess), "X-Forwarded-For": unique_address()}
        )
        assert other.status_code == 401
