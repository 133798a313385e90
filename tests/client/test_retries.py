"""Idempotency keys and retries, against a live service: a real 409 in flight, a real 429."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import date

import anyio
import asyncpg
import httpx
import pytest

from itinera.idempotency.policy import lock_id
from itinera.settings import Settings
from itinera_client import NO_RETRIES, ItineraClient, RetryPolicy
from itinera_client.errors import (
    ConflictError,
    DuplicateError,
    IdempotencyInFlightError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationError,
)
from itinera_client.schemas.destinations import DestinationCreate
from itinera_client.schemas.itineraries import Itinerary, ItineraryCreate
from itinera_client.schemas.problems import Problem
from itinera_client.schemas.users import UserCreate
from tests.support.live_service import LiveService, live_server
from tests.support.recording import Recorder

TRIP = ItineraryCreate(title="Red Sea week", start_date=date(2027, 5, 1), end_date=date(2027, 5, 7))


def destination() -> DestinationCreate:
    slug = f"d-{uuid.uuid4().hex[:12]}"
    return DestinationCreate(slug=slug, name="Dahab", country="EG", lat=28.49, lon=34.51)


@pytest.fixture
async def recorded(live_tenant: LiveService) -> AsyncIterator[tuple[ItineraClient, Recorder]]:
    recorder = Recorder()
    key = live_tenant.mint_api_key()
    async with (
        recorder.async_http() as http,
        ItineraClient(live_tenant.base_url, api_key=key, http_client=http) as client,
    ):
        yield client, recorder


async def test_every_unsafe_call_carries_its_own_idempotency_key(
    recorded: tuple[ItineraClient, Recorder],
) -> None:
    client, recorder = recorded
    site = await client.destinations.create(destination())
    await client.destinations.get(site.id)
    trip = await client.itineraries.create(TRIP)
    await client.itineraries.delete(trip.id, version=trip.version)
    await client.destinations.delete(site.id)

    unsafe = [e for e in recorder.exchanges if e.method != "GET"]
    keys = [e.idempotency_key for e in unsafe]
    assert [e.status for e in recorder.exchanges] == [201, 200, 201, 204, 204]
    assert all(keys)
    assert len(set(keys)) == len(unsafe)
    assert [e.idempotency_key for e in recorder.exchanges if e.method == "GET"] == [None]


async def test_a_409_in_flight_is_retried_after_retry_after_with_the_same_key(
    recorded: tuple[ItineraClient, Recorder],
    live_tenant: LiveService,
    superuser: asyncpg.Connection,
) -> None:
    """Another request holds the key's lock (here: a session holding the same advisory
    lock the service takes), so the first try is a 409; a second later it is free."""
    client, recorder = recorded
    key = f"held-{uuid.uuid4()}"
    admin = live_tenant.admin
    lock = lock_id(admin.org_id, admin.user_id, key)
    await superuser.execute("SELECT pg_advisory_lock($1)", lock)

    async def release_soon() -> None:
        await anyio.sleep(0.3)
        await superuser.execute("SELECT pg_advisory_unlock($1)", lock)

    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(release_soon)
        trip = await client.request(
            "POST", "/v1/itineraries", json=TRIP, idempotency_key=key, response_type=Itinerary
        )
    elapsed = time.monotonic() - started

    first, second = recorder.exchanges
    assert (first.status, first.problem_type) == (409, "/problems/idempotency-in-flight")
    assert first.response_headers["retry-after"] == "1"
    assert second.status == 201
    assert first.idempotency_key == second.idempotency_key == key
    assert elapsed >= 1.0
    assert trip.title == TRIP.title


async def test_errors_that_are_not_about_timing_are_raised_at_once(
    recorded: tuple[ItineraClient, Recorder], live_tenant: LiveService
) -> None:
    client, recorder = recorded
    email = f"ana-{uuid.uuid4().hex[:8]}@example.com"
    await client.users.create(UserCreate(email=email, password="a long password"))
    with pytest.raises(DuplicateError):
        await client.users.create(UserCreate(email=email.upper(), password="a long password"))
    with pytest.raises(ValidationError):
        await client.itineraries.create(
            ItineraryCreate(
                title="Backwards", start_date=date(2027, 5, 7), end_date=date(2027, 5, 1)
            )
        )

    assert [e.status for e in recorder.exchanges] == [201, 409, 422]


async def test_a_429_is_retried_after_retry_after_with_the_same_key(
    settings: Settings, live_service: LiveService
) -> None:
    """A service whose crud bucket holds 60 tokens and refills one a second: creating
    destinations one after another empties it, and the call that meets the 429 waits the
    second it names, then succeeds with the same key."""
    with live_server(settings, ITINERA_RATE_LIMIT_CRUD_PER_MINUTE="60") as server:
        tenant = live_service.with_org(await live_service.new_org())
        limited = LiveService(server.base_url, settings, tenant.org, tenant.owner_engine)
        key = limited.mint_api_key()
        recorder = Recorder()
        async with (
            recorder.async_http() as http,
            ItineraClient(server.base_url, api_key=key, http_client=http) as client,
        ):
            for _ in range(200):
                before = len(recorder.exchanges)
                await client.destinations.create(destination())
                call = recorder.since(before)
                if len(call) > 1:
                    break
            else:
                pytest.fail("the bucket never ran out")

            refused, created = call
            assert (refused.status, refused.problem_type) == (
                429,
                "https://iana.org/assignments/http-problem-types#quota-exceeded",
            )
            assert created.status == 201
            assert refused.idempotency_key == created.idempotency_key is not None
            retry_after = int(refused.response_headers["retry-after"])
            assert retry_after >= 1
            assert created.at - refused.at >= retry_after - 0.1

            # Without retries the same answer is raised, with what the service said.
            async with ItineraClient(server.base_url, api_key=key, retry=NO_RETRIES) as impatient:
                refusal = await first_refusal(impatient)
            assert refusal.violated_policies == ["crud"]
            assert refusal.retry_after is not None
            assert refusal.retry_after >= 1


async def first_refusal(client: ItineraClient) -> RateLimitedError:
    for _ in range(200):
        try:
            await client.destinations.create(destination())
        except RateLimitedError as refusal:
            return refusal
    raise AssertionError("the bucket never ran out")


def problem(status: int, problem_type: str = "about:blank") -> Problem:
    return Problem(type=problem_type, title="t", status=status)


def test_the_policy_waits_what_the_service_asks_within_its_bounds() -> None:
    policy = RetryPolicy(attempts=3, max_wait=10.0, default_wait=0.5)
    in_flight = IdempotencyInFlightError(
        problem(409, "/problems/idempotency-in-flight"), httpx.Headers({"Retry-After": "1"})
    )
    unavailable = ServiceUnavailableError(problem(503))
    too_long = RateLimitedError(problem(429), httpx.Headers({"Retry-After": "11"}))
    conflict = ConflictError(
        problem(409, "/problems/conflict"), httpx.Headers({"Retry-After": "1"})
    )

    assert policy.wait_before_retry(in_flight, attempt=1) == 1.0
    assert policy.wait_before_retry(in_flight, attempt=3) is None  # the last try was made
    assert policy.wait_before_retry(unavailable, attempt=1) == 0.5  # no Retry-After
    assert policy.wait_before_retry(too_long, attempt=1) is None
    assert policy.wait_before_retry(conflict, attempt=1) is None
    assert NO_RETRIES.wait_before_retry(in_flight, attempt=1) is None
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
