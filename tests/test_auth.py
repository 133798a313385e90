"""Login, refresh-token rotation, logout, and what a bearer token must be."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time

import httpx
import jwt
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import AppUser, RefreshToken
from itinera.errors import AuthenticationError
from itinera.security.passwords import PasswordHasher
from itinera.security.principal import Principal
from itinera.settings import Settings
from tests.support.tenants import PASSWORD, Tenant, access_tokens, add_user


async def login(
    client: httpx.AsyncClient, tenant: Tenant, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/v1/auth/login", json={"org": tenant.slug, "email": email, "password": password}
    )


async def test_login_answers_a_token_pair(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await login(client, tenant, tenant.member.email.upper())
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith(f"{tenant.org_id}.")
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["user"] == {
        "id": str(tenant.member.user_id),
        "email": tenant.member.email,
        "role": "member",
    }
    assert me.json()["org"]["slug"] == tenant.slug


async def test_access_token_claims(client: httpx.AsyncClient, tenant: Tenant) -> None:
    token = (await login(client, tenant, tenant.admin.email)).json()["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert set(claims) == {"sub", "org_id", "role", "iat", "exp", "jti", "iss", "aud"}
    assert claims["exp"] - claims["iat"] == 900
    assert (claims["sub"], claims["org_id"], claims["role"]) == (
        str(tenant.admin.user_id),
        str(tenant.org_id),
        "admin",
    )


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "unknown org"])
async def test_bad_credentials_get_one_answer(
    client: httpx.AsyncClient, tenant: Tenant, case: str
) -> None:
    body = {"org": tenant.slug, "email": tenant.member.email, "password": PASSWORD}
    if case == "wrong password":
        body["password"] = "not the password"
    elif case == "unknown user":
        body["email"] = "nobody@example.com"
    else:
        body["org"] = "no-such-org"
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the org, email or password is not right"


async def test_unknown_user_costs_as_much_as_a_wrong_password(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    async def median_seconds(email: str) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            assert (await login(client, tenant, email, "wrong")).status_code == 401
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    wrong_password = await median_seconds(tenant.member.email)
    unknown_user = await median_seconds("nobody@example.com")
    # Both verify an Argon2id hash; without the dummy verification the unknown
    # user would answer in a small fraction of the time.
    assert unknown_user > 0.5 * wrong_password


async def test_disabled_user_cannot_log_in_or_refresh(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    refresh_token = (await login(client, tenant, tenant.member.email)).json()["refresh_token"]
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(AppUser).where(AppUser.id == tenant.member.user_id).values(disabled=True)
        )
    assert (await login(client, tenant, tenant.member.email)).status_code == 401
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 401
    # An access token issued before the switch stops working too.
    assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 401


async def test_login_rehashes_when_parameters_change(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    weaker = PasswordHasher(memory_kib=8192, time_cost=1).hash_sync(PASSWORD)
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(AppUser).where(AppUser.id == tenant.member.user_id).values(password_hash=weaker)
        )
    assert (await login(client, tenant, tenant.member.email)).status_code == 200
    async with owner_engine.connect() as conn:
        stored = await conn.scalar(
            select(AppUser.password_hash).where(AppUser.id == tenant.member.user_id)
        )
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = (await login(client, tenant, tenant.member.email)).json()["refresh_token"]
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    assert (await client.get("/v1/me", headers=_bearer(rotated.json()))).status_code == 200

    reused = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    # The reuse revoked the family: the newest token is dead too.
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401


async def test_of_concurrent_refreshes_exactly_one_wins(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = (await login(client, tenant, tenant.member.email)).json()["refresh_token"]
    answers = await asyncio.gather(
        *(client.post("/v1/auth/refresh", json={"refresh_token": token}) for _ in range(12))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [401] * 11
    # The losers presented a retired token: the family, winner's token included, is revoked.
    winner = next(a for a in answers if a.status_code == 200).json()["refresh_token"]
    again = await client.post("/v1/auth/refresh", json={"refresh_token": winner})
    assert again.status_code == 401


async def test_logout_revokes_the_family(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pair = (await login(client, tenant, tenant.member.email)).json()
    out = await client.post(
        "/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=_bearer(pair)
    )
    assert out.status_code == 204
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    twice = await client.post(
        "/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=_bearer(pair)
    )
    assert twice.status_code == 204  # nothing left to revoke is not an error


async def test_logout_cannot_revoke_another_users_tokens(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    victim = (await login(client, tenant, tenant.admin.email)).json()["refresh_token"]
    out = await client.post(
        "/v1/auth/logout", json={"refresh_token": victim}, headers=tenant.member.headers
    )
    assert out.status_code == 204
    still = await client.post("/v1/auth/refresh", json={"refresh_token": victim})
    assert still.status_code == 200


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    token = (await login(client, tenant, tenant.member.email)).json()["refresh_token"]
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == tenant.member.user_id)
            .values(family_expires_at=RefreshToken.created_at)
        )
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": token})).status_code == 401


ORG = "0000000a-000b-400c-800d-00000000000e"
NOT_REFRESH_TOKENS = [
    pytest.param("", id="empty"),
    pytest.param("not-a-token", id="no-dot"),
    pytest.param(f"{ORG}.short", id="short-secret"),
    pytest.param("x" * 200, id="200-chars"),
    pytest.param("x" * 100_000, id="100k-chars"),
    # A prefix uuid.UUID() reads, but not the form we issue.
    pytest.param("{" + ORG + "}." + "A" * 43, id="braced-uuid"),
    pytest.param(ORG.replace("-", "") + "." + "A" * 43, id="hex-uuid"),
    pytest.param(ORG.upper() + "." + "A" * 43, id="upper-case-uuid"),
    pytest.param(f"{ORG}." + "A" * 42 + "=", id="padded-secret"),
    pytest.param(f"{ORG}." + "é" * 43, id="non-base64url-secret"),
]


@pytest.mark.parametrize("token", NOT_REFRESH_TOKENS)
async def test_anything_that_is_not_a_refresh_token_is_401(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post("/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the refresh token is not valid"


async def test_refresh_with_an_access_token_is_401_not_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pair = (await login(client, tenant, tenant.member.email)).json()
    assert len(pair["access_token"]) > 200
    mixed_up = await client.post("/v1/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert mixed_up.status_code == 401, mixed_up.text
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).status_code == 200


@pytest.mark.parametrize(
    "token", [pytest.param("access token", id="access-token"), *NOT_REFRESH_TOKENS]
)
async def test_logout_with_something_that_is_not_a_refresh_token_is_401_and_revokes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, token: str
) -> None:
    pair = (await login(client, tenant, tenant.member.email)).json()
    sent = pair["access_token"] if token == "access token" else token
    out = await client.post("/v1/auth/logout", json={"refresh_token": sent}, headers=_bearer(pair))
    assert out.status_code == 401, out.text
    assert out.json()["detail"] == "the refresh token is not valid"
    still = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert still.status_code == 200


def _bearer(pair: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def test_missing_token_is_refused_with_a_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_expired_access_token(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    principal = Principal(tenant.member.user_id, tenant.org_id, "member")
    token = access_tokens(settings).issue(principal, now=time.time() - 900 - 60)
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"] == "the access token has expired"


async def test_forged_signature(client: httpx.AsyncClient, tenant: Tenant) -> None:
    claims = jwt.decode(tenant.member.token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "role": "admin"}, "guessed-secret-guessed-secret-32b", "HS256")
    response = await client.get("/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_alg_none_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    claims = jwt.decode(tenant.member.token, options={"verify_signature": False})

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401


async def test_token_with_a_missing_claim_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    claims = jwt.decode(tenant.member.token, options={"verify_signature": False})
    del claims["jti"]
    assert settings.jwt_secret is not None
    token = jwt.encode(claims, settings.jwt_secret, "HS256")
    assert (
        await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401


async def test_token_for_a_deleted_user(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine, settings: Settings
) -> None:
    doomed = await add_user(owner_engine, settings, tenant.org_id, "admin")
    assert (await client.get("/v1/me", headers=doomed.headers)).status_code == 200
    async with owner_engine.begin() as conn:
        await conn.execute(delete(AppUser).where(AppUser.id == doomed.user_id))
    response = await client.get("/v1/me", headers=doomed.headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "the user no longer exists or is disabled"


async def test_wrong_scheme_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/me", headers={"Authorization": f"Basic {tenant.member.token}"})
    assert response.status_code == 401


def test_only_the_exact_token_is_remembered(settings: Settings, tenant: Tenant) -> None:
    tokens = access_tokens(settings)
    token = tokens.issue(Principal(tenant.member.user_id, tenant.org_id, "member"))
    tokens.verify(token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(AuthenticationError):
        tokens.verify(tampered)
