"""Logging in, API keys, and refreshes that never race, against a live service."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.errors import AuthenticationError
from itinera_client.schemas.auth import TokenPair
from tests.support.live_service import LiveService
from tests.support.recording import Recorder

REFRESH = "/v1/auth/refresh"
CONCURRENT_CALLS = 20


def restored(tokens: TokenPair, access_token: str, *, expires_in: int = 900) -> TokenPair:
    """``tokens`` as a client would keep them, with another access token."""
    return TokenPair(
        access_token=access_token,
        token_type="bearer",
        expires_in=expires_in,
        refresh_token=tokens.refresh_token,
    )


async def test_a_login_acts_as_its_user(live_tenant: LiveService) -> None:
    admin = live_tenant.admin
    async with ItineraClient(live_tenant.base_url) as client:
        tokens = await client.login(live_tenant.org.slug, admin.email.upper(), live_tenant.password)
        me = await client.me()

    assert tokens.token_type == "bearer"
    assert tokens.expires_in == 900
    assert (me.user.id, me.user.role, me.org.slug) == (admin.user_id, "admin", live_tenant.org.slug)


async def test_an_api_key_acts_as_its_user(live_tenant: LiveService) -> None:
    member = live_tenant.org.member
    key = live_tenant.mint_api_key(member)

    async with ItineraClient(live_tenant.base_url, api_key=key) as client:
        me = await client.me()

    assert (me.user.id, me.user.role) == (member.user_id, "member")


async def test_a_refused_api_key_raises_without_trying_to_refresh(live_tenant: LiveService) -> None:
    key = live_tenant.mint_api_key()
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    recorder = Recorder()
    async with (
        recorder.async_http() as http,
        ItineraClient(live_tenant.base_url, api_key=forged, http_client=http) as client,
    ):
        with pytest.raises(AuthenticationError) as raised:
            await client.me()

    assert raised.value.status == 401
    assert [(e.method, e.path) for e in recorder.exchanges] == [("GET", "/v1/me")]


async def test_wrong_credentials_raise_authentication_error(live_tenant: LiveService) -> None:
    async with ItineraClient(live_tenant.base_url) as client:
        with pytest.raises(AuthenticationError):
            await client.login(live_tenant.org.slug, live_tenant.admin.email, "not the password")
        assert client.tokens is None


async def test_an_access_token_the_service_finds_expired_is_refreshed_once_for_many_calls(
    live_tenant: LiveService,
) -> None:
    """20 calls at once with a token that expired for real: each gets its 401, one of them
    refreshes, the others wait for that refresh and use its tokens. Two refreshes with one
    refresh token would revoke the login: the last refresh proves there was one."""
    async with ItineraClient(live_tenant.base_url) as first:
        tokens = await first.login(
            live_tenant.org.slug, live_tenant.admin.email, live_tenant.password
        )
    stale = restored(tokens, live_tenant.expired_access_token())
    recorder = Recorder()
    async with (
        recorder.async_http() as http,
        ItineraClient(live_tenant.base_url, tokens=stale, http_client=http) as client,
    ):
        answers = await asyncio.gather(*(client.me() for _ in range(CONCURRENT_CALLS)))
        refreshed = client.tokens
        assert refreshed is not None
        assert refreshed.refresh_token != tokens.refresh_token
        assert (await client.refresh()).refresh_token != refreshed.refresh_token

    assert {me.user.id for me in answers} == {live_tenant.admin.user_id}
    assert len(recorder.to("POST", REFRESH)) == 2  # the automatic one, then the explicit one
    calls = recorder.to("GET", "/v1/me")
    refused = [e for e in calls if e.status == 401]
    assert refused, "the service refused the expired token"
    assert all(
        e.request_headers["authorization"] == f"Bearer {stale.access_token}" for e in refused
    )
    served = [e for e in calls if e.status == 200]
    assert len(served) == CONCURRENT_CALLS
    assert {e.request_headers["authorization"] for e in served} == {
        f"Bearer {refreshed.access_token}"
    }


async def test_a_token_expiring_by_the_clients_clock_is_refreshed_once_before_sending(
    live_tenant: LiveService,
) -> None:
    async with ItineraClient(live_tenant.base_url) as first:
        tokens = await first.login(
            live_tenant.org.slug, live_tenant.admin.email, live_tenant.password
        )
    recorder = Recorder()
    expiring = restored(tokens, tokens.access_token, expires_in=0)
    async with (
        recorder.async_http() as http,
        ItineraClient(live_tenant.base_url, tokens=expiring, http_client=http) as client,
    ):
        await asyncio.gather(*(client.me() for _ in range(CONCURRENT_CALLS)))

    assert len(recorder.to("POST", REFRESH)) == 1
    assert all(e.status == 200 for e in recorder.to("GET", "/v1/me"))
    assert recorder.exchanges[0].path == REFRESH


def test_the_sync_face_refreshes_once_for_many_threads(live_tenant: LiveService) -> None:
    with SyncItineraClient(live_tenant.base_url) as first:
        tokens = first.login(live_tenant.org.slug, live_tenant.admin.email, live_tenant.password)
    stale = restored(tokens, live_tenant.expired_access_token())
    recorder = Recorder()
    with (
        recorder.sync_http() as http,
        SyncItineraClient(live_tenant.base_url, tokens=stale, http_client=http) as client,
        ThreadPoolExecutor(CONCURRENT_CALLS) as pool,
    ):
        answers = list(pool.map(lambda _: client.me(), range(CONCURRENT_CALLS)))
        client.refresh()  # the login is alive: no second refresh raced the first

    assert {me.user.id for me in answers} == {live_tenant.admin.user_id}
    assert len(recorder.to("POST", REFRESH)) == 2


async def test_logout_ends_the_login(live_tenant: LiveService) -> None:
    async with ItineraClient(live_tenant.base_url) as client:
        tokens = await client.login(
            live_tenant.org.slug, live_tenant.admin.email, live_tenant.password
        )
        await client.logout()
        assert client.tokens is None

    async with ItineraClient(live_tenant.base_url, tokens=tokens) as client:
        with pytest.raises(AuthenticationError):
            await client.refresh()
        assert client.tokens is None
