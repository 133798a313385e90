"""Access tokens from a replica whose clock differs: 30 s of leeway on ``iat`` and ``exp``."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from itinera.errors import AuthenticationError
from itinera.security.principal import Principal
from itinera.settings import Settings
from tests.support.http import assert_problem
from tests.support.tenants import Tenant, access_tokens


def _token(settings: Settings, tenant: Tenant, issued_at: float) -> str:
    principal = Principal(tenant.member.user_id, tenant.org_id, "member")
    return access_tokens(settings).issue(principal, now=issued_at)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("ahead", [1, 20])
async def test_a_token_issued_by_a_replica_whose_clock_runs_ahead_is_accepted(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant, ahead: int
) -> None:
    token = _token(settings, tenant, time.time() + ahead)
    response = await client.get("/v1/me", headers=_bearer(token))
    assert response.status_code == 200, response.text


async def test_a_token_issued_beyond_the_leeway_is_refused(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    token = _token(settings, tenant, time.time() + 120)
    response = await client.get("/v1/me", headers=_bearer(token))
    assert assert_problem(response, 401)["detail"] == "the access token is not valid yet"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_token_expired_within_the_leeway_is_accepted(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    token = _token(settings, tenant, time.time() - 900 - 10)
    response = await client.get("/v1/me", headers=_bearer(token))
    assert response.status_code == 200, response.text


async def test_a_token_expired_beyond_the_leeway_is_refused(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    token = _token(settings, tenant, time.time() - 900 - 60)
    response = await client.get("/v1/me", headers=_bearer(token))
    assert_problem(response, 401)
    assert response.json()["detail"] == "the access token has expired"


async def test_a_not_before_claim_gets_the_same_leeway(
    client: httpx.AsyncClient, settings: Settings, tenant: Tenant
) -> None:
    assert settings.jwt_secret is not None
    claims = jwt.decode(_token(settings, tenant, time.time()), options={"verify_signature": False})
    soon = jwt.encode({**claims, "nbf": int(time.time()) + 20}, settings.jwt_secret, "HS256")
    assert (await client.get("/v1/me", headers=_bearer(soon))).status_code == 200
    later = jwt.encode({**claims, "nbf": int(time.time()) + 120}, settings.jwt_secret, "HS256")
    assert_problem(await client.get("/v1/me", headers=_bearer(later)), 401)


def test_a_remembered_token_is_forgotten_when_its_leeway_runs_out(
    settings: Settings, tenant: Tenant
) -> None:
    tokens = access_tokens(settings)
    principal = Principal(tenant.member.user_id, tenant.org_id, "member")
    # Expired about 28.5 s ago (iat is whole seconds): accepted, remembered,
    # and refused once the leeway has run out, remembered or not.
    token = tokens.issue(principal, now=time.time() - 900 - 28.5)
    assert tokens.verify(token) == principal
    assert tokens.verify(token) == principal
    time.sleep(1.6)
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.verify(token)
