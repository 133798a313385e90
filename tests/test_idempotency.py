"""Exactly-once writes with Idempotency-Key, raced with real concurrent requests."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import httpx
import msgspec
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from itinera.db.models import IdempotencyRecord, Itinerary
from itinera.domain.itineraries.repository import ItineraryRepository
from itinera.routing import Api, Context
from itinera.settings import Settings
from itinera_client.schemas.itineraries import ItineraryCreate
from tests.support.app import running_app
from tests.support.http import assert_problem
from tests.support.tenants import Account, Tenant

TRIP = {"title": "Idempotent week", "start_date": "2027-05-01", "end_date": "2027-05-07"}


def keyed(account: Account, key: str, **extra: str) -> dict[str, str]:
    return {**account.headers, "Idempotency-Key": key, **extra}


async def count_itineraries(engine: AsyncEngine, org_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(Itinerary).where(Itinerary.org_id == org_id)
            )
            or 0
        )


async def records(engine: AsyncEngine, account: Account) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(IdempotencyRecord)
                .where(IdempotencyRecord.user_id == account.user_id)
            )
            or 0
        )


async def test_replay_is_byte_for_byte_with_a_marker(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = keyed(tenant.member, "trip-1")
    first = await client.post("/v1/itineraries", json=TRIP, headers=headers)
    # Same body, other key order and spacing: the same request.
    again = await client.post(
        "/v1/itineraries",
        content=b'{ "end_date":"2027-05-07", "start_date":"2027-05-01","title":"Idempotent week" }',
        headers=headers,
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    for name in ("content-type", "location", "etag"):
        assert again.headers[name] == first.headers[name]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert await count_itineraries(owner_engine, tenant.org_id) == 1


async def test_quoted_and_bare_keys_are_the_same_key(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    first = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "abc"))
    again = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, '"abc"'))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await count_itineraries(owner_engine, tenant.org_id) == 1


async def test_a_changed_body_with_the_same_key_is_422(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = keyed(tenant.member, "trip-2")
    assert (await client.post("/v1/itineraries", json=TRIP, headers=headers)).status_code == 201
    changed = await client.post("/v1/itineraries", json={**TRIP, "title": "Other"}, headers=headers)
    assert_problem(changed, 422, "/problems/idempotency-key-reused")
    assert await count_itineraries(owner_engine, tenant.org_id) == 1


async def test_a_changed_if_match_with_the_same_key_is_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "c"))
    url = created.headers["location"]
    headers = keyed(tenant.member, "patch-1", **{"If-Match": '"1"'})
    assert (await client.patch(url, json={"title": "x"}, headers=headers)).status_code == 200
    replay = await client.patch(url, json={"title": "x"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    other = keyed(tenant.member, "patch-1", **{"If-Match": '"2"'})
    assert_problem(await client.patch(url, json={"title": "x"}, headers=other), 422)


async def test_a_required_key_missing_or_malformed_is_400(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    missing = await client.post("/v1/itineraries", json=TRIP, headers=tenant.member.headers)
    assert_problem(missing, 400, "/problems/malformed")
    for bad in (b"", b"has space", b"x" * 256, b"tab\tkey", "caf\u00e9".encode()):
        headers: dict[str, str | bytes] = {**tenant.member.headers, "Idempotency-Key": bad}
        response = await client.post("/v1/itineraries", json=TRIP, headers=headers)
        assert_problem(response, 400, "/problems/malformed")
    assert await count_itineraries(owner_engine, tenant.org_id) == 0


async def test_the_same_key_from_two_users_makes_two_resources(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    a = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "shared"))
    b = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.admin, "shared"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers
    assert await count_itineraries(owner_engine, tenant.org_id) == 2


async def test_fifty_concurrent_requests_with_one_key_make_one_resource(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = keyed(tenant.member, f"race-{uuid.uuid4()}")
    answers = await asyncio.gather(
        *(client.post("/v1/itineraries", json=TRIP, headers=headers) for _ in range(50))
    )
    created = [a for a in answers if a.status_code == 201]
    in_flight = [a for a in answers if a.status_code == 409]
    assert len(created) + len(in_flight) == 50
    assert created, "at least the first request succeeds"
    assert len({a.content for a in created}) == 1
    for answer in in_flight:
        assert_problem(answer, 409, "/problems/idempotency-in-flight")
        assert answer.headers["retry-after"] == "1"
    assert await count_itineraries(owner_engine, tenant.org_id) == 1


async def test_non_stored_answers_leave_the_key_free(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "c2"))
    url = created.headers["location"]
    stale = keyed(tenant.member, "put-1", **{"If-Match": '"5"'})
    assert_problem(await client.put(url, json=TRIP, headers=stale), 412)
    # 412 is about the moment, not the request: nothing stored, the key runs again.
    assert_problem(await client.put(url, json=TRIP, headers=stale), 412)
    fresh = keyed(tenant.member, "put-1", **{"If-Match": '"1"'})
    assert (await client.put(url, json=TRIP, headers=fresh)).status_code == 200


async def test_an_expired_record_counts_as_absent(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = keyed(tenant.member, "old")
    first = await client.post("/v1/itineraries", json=TRIP, headers=headers)
    async with owner_engine.begin() as conn:
        await conn.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.user_id == tenant.member.user_id)
            .values(expires_at=func.now() - text("interval '1 second'"))
        )
    second = await client.post("/v1/itineraries", json=TRIP, headers=headers)
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await count_itineraries(owner_engine, tenant.org_id) == 2
    assert await records(owner_engine, tenant.member) == 1


async def test_records_expire_after_the_configured_ttl(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine, settings: Settings
) -> None:
    await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "ttl"))
    async with owner_engine.connect() as conn:
        lifetime = await conn.scalar(
            select(IdempotencyRecord.expires_at - IdempotencyRecord.created_at).where(
                IdempotencyRecord.user_id == tenant.member.user_id
            )
        )
    assert lifetime is not None
    assert lifetime.total_seconds() == settings.idempotency_ttl_seconds


# Probes served beside the API: a handler that writes and then fails.
probes = Api(tag="probes")


class ProbeBody(msgspec.Struct):
    title: str


@probes.post("/v1/probes/write-then-raise", summary="writes, then raises", status=201)
async def write_then_raise(ctx: Context, body: ProbeBody) -> Response:
    repository = ctx.repository(ItineraryRepository)
    await repository.create(
        ctx.principal.user_id,
        ItineraryCreate(title=body.title, start_date=date(2027, 1, 1), end_date=date(2027, 1, 2)),
    )
    if body.title == "boom":
        raise RuntimeError("the handler fails after writing")
    return Response(status_code=201)


@pytest.fixture
async def probe_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings, probes.operations) as client:
        yield client


async def test_a_handler_that_raises_stores_nothing_and_a_retry_runs_again(
    probe_client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = keyed(tenant.member, "probe")
    failed = await probe_client.post(
        "/v1/probes/write-then-raise", json={"title": "boom"}, headers=headers
    )
    assert_problem(failed, 500)
    assert await records(owner_engine, tenant.member) == 0
    assert await count_itineraries(owner_engine, tenant.org_id) == 0
    again = await probe_client.post(
        "/v1/probes/write-then-raise", json={"title": "boom"}, headers=headers
    )
    assert_problem(again, 500)  # ran again: not a replay
    assert "idempotent-replayed" not in again.headers
    ok = await probe_client.post(
        "/v1/probes/write-then-raise", json={"title": "fine"}, headers=headers
    )
    assert ok.status_code == 201
    assert await count_itineraries(owner_engine, tenant.org_id) == 1


async def test_a_connection_killed_mid_request_leaves_the_key_free(
    client: httpx.AsyncClient,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    superuser: asyncpg.Connection,
) -> None:
    created = await client.post("/v1/itineraries", json=TRIP, headers=keyed(tenant.member, "c3"))
    itinerary_id = uuid.UUID(created.json()["id"])
    headers = keyed(tenant.member, "killed", **{"If-Match": '"1"'})
    async with owner_engine.connect() as blocker:
        # Hold the row so the PUT waits inside its transaction, lock and all.
        await blocker.begin()
        await blocker.execute(
            select(Itinerary.id).where(Itinerary.id == itinerary_id).with_for_update()
        )
        put = asyncio.create_task(
            client.put(created.headers["location"], json=TRIP, headers=headers)
        )
        # Only a superuser sees what other roles' backends are doing.
        for _ in range(200):
            pids = await superuser.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'itinera' "
                "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE itinerary%'"
            )
            if pids:
                break
            await asyncio.sleep(0.02)
        assert len(pids) == 1
        await superuser.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
        answer = await put
        await blocker.rollback()
    assert_problem(answer, 503)
    assert await records(owner_engine, tenant.member) == 1  # only c3's
    retry = await client.put(created.headers["location"], json=TRIP, headers=headers)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers
    assert retry.json()["version"] == 2


async def test_a_stored_4xx_keeps_none_of_the_handlers_writes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The append bumps the run's counter, then fails on the parent: both are undone."""
    run = await client.post(
        "/v1/agent-runs", json={"intent": "plan"}, headers=keyed(tenant.member, "run")
    )
    assert run.status_code == 201
    checkpoints = f"{run.headers['location']}/checkpoints"
    headers = keyed(tenant.member, "bad-parent")
    bad = {"state": {}, "parent_id": str(uuid.uuid4())}
    refused = await client.post(checkpoints, json=bad, headers=headers)
    assert_problem(refused, 422)
    replay = await client.post(checkpoints, json=bad, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == refused.content
    good = await client.post(checkpoints, json={"state": {}}, headers=keyed(tenant.member, "ok"))
    assert good.status_code == 201
    assert good.json()["sequence"] == 1, "the failed append's number was rolled back"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/itineraries", {**TRIP, "data": {"blob": "x" * 300_000}}),
        ("/v1/agent-runs", {"intent": "big plan", "plan": {"blob": "x" * 300_000}}),
    ],
)
async def test_a_response_over_the_stored_size_is_still_exactly_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    settings: Settings,
    path: str,
    body: dict[str, object],
) -> None:
    headers = keyed(tenant.member, f"large-{path}")
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 201
    assert len(first.content) > settings.idempotency_max_stored_bytes

    again = await client.post(path, json=body, headers=headers)
    # The record holds status and headers; the body was too large to keep.
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.content == b""
    listed = await client.get(path, headers=tenant.member.headers)
    assert [item["id"] for item in listed.json()["items"]] == [first.json()["id"]]
    assert await records(owner_engine, tenant.member) == 1


async def test_a_new_key_is_checked_in_the_opening_and_only_a_replay_reads_its_record(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A create: open (lock + no record), insert, store and commit in one message. Its
    replay: the opening finds the record, opens again without the lock, reads it, ends."""
    caplog.set_level(logging.INFO, logger="itinera.access")
    body = {"title": "Dahab", "start_date": "2026-05-02", "end_date": "2026-05-09"}
    headers = keyed(tenant.member, f"opening-{uuid.uuid4()}")
    caplog.clear()
    created = await client.post("/v1/itineraries", json=body, headers=headers)
    replayed = await client.post("/v1/itineraries", json=body, headers=headers)
    assert created.status_code == 201
    assert replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == created.content
    counts = [r.__dict__["db_round_trips"] for r in caplog.records if r.name == "itinera.access"]
    assert counts == [3, 5]


async def test_a_response_inlined_into_the_commit_message_is_stored_as_it_was_sent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The record travels as literals in the COMMIT message: text that looks like SQL,
    quotes, dollar tags or escapes in the response comes back byte for byte."""
    title = "it's $k$ $$; COMMIT; -- E'\\x00' \\ \u00e9 \U0001f40b"
    body = {**TRIP, "title": title, "data": {"note": "'); DROP TABLE itinerary; --"}}
    headers = keyed(tenant.member, f"inlined-{uuid.uuid4()}")
    created = await client.post("/v1/itineraries", json=body, headers=headers)
    replayed = await client.post("/v1/itineraries", json=body, headers=headers)
    assert created.status_code == 201
    assert created.json()["title"] == title
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == created.content
    assert replayed.headers["location"] == created.headers["location"]
    assert replayed.headers["etag"] == created.headers["etag"]


@pytest.mark.parametrize("key", ["$k$", "a$k", "$k1$$k$", "it's", "back\\slash'", "$$", "x$k"])
async def test_keys_with_quotes_and_dollars_reach_the_opening_intact(
    client: httpx.AsyncClient, tenant: Tenant, key: str
) -> None:
    """The key travels inside the opening message's SQL text: as itself, whatever it holds."""
    # Unique per run, and the key last: a key ending in "$k" meets the closing tag.
    scoped = f"{uuid.uuid4().hex[:8]}{key}"
    headers = keyed(tenant.member, scoped)
    created = await client.post("/v1/itineraries", json=TRIP, headers=headers)
    replayed = await client.post("/v1/itineraries", json=TRIP, headers=headers)
    assert created.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == created.content
