"""What operators see: request ids, access logs, metrics, CORS, request limits."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from sqlalchemy import text
from starlette.responses import Response

from itinera.db.prepared import Prepared
from itinera.db.repository import Repository
from itinera.routing import Api, Context
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.http import assert_problem, with_key
from tests.support.tenants import PASSWORD, Tenant

TRIP = {"title": "Ops", "start_date": "2027-01-01", "end_date": "2027-01-02"}


async def test_a_sane_request_id_is_echoed_and_others_replaced(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "trace-42.a:b"})
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    for insane in ("x" * 200, "with space", "<script>"):
        replaced = await client.get("/health", headers={"X-Request-ID": insane})
        uuid.UUID(replaced.headers["x-request-id"])
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    uuid.UUID(missing.headers["x-request-id"])


async def test_one_access_log_line_per_request_without_secrets(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    login = await client.post(
        "/v1/auth/login",
        json={"org": tenant.slug, "email": tenant.member.email, "password": PASSWORD},
        headers={"X-Request-ID": "login-1"},
    )
    pair = login.json()
    bearer = {"Authorization": f"Bearer {pair['access_token']}", "X-Request-ID": "get-1"}
    created = await client.post("/v1/itineraries", json=TRIP, headers=with_key(tenant.member))
    await client.get(created.headers["location"], headers=bearer)
    await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    lines = [r for r in caplog.records if r.name == "itinera.access"]
    assert len(lines) == 4
    read = next(r for r in lines if r.__dict__["request_id"] == "get-1")
    assert read.__dict__["route"] == "/v1/itineraries/{id}"
    assert read.__dict__["method"] == "GET"
    assert read.__dict__["status"] == 200
    assert read.__dict__["org"] == str(tenant.org_id)
    assert read.__dict__["user"] == str(tenant.member.user_id)
    assert read.__dict__["duration_ms"] > 0
    everything = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (PASSWORD, pair["access_token"], pair["refresh_token"], tenant.member.token):
        assert secret not in everything


probes = Api(tag="probes")


BROKEN_SQL = Prepared(text("SELECT missing_column FROM itinerary WHERE :secret <> ''"))


@probes.post("/v1/probes/sql-error", summary="fails in SQL with a secret parameter")
async def sql_error(ctx: Context) -> Response:
    # From the request, not a literal here: a traceback shows this line's source.
    secret = ctx.headers["x-probe-secret"]
    await ctx.repository(Repository).execute(BROKEN_SQL, secret=secret)
    return Response(status_code=204)


@pytest.fixture
async def probe_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings, probes.operations) as client:
        yield client


async def test_a_500_says_nothing_and_logs_no_parameters(
    probe_client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**tenant.member.headers, "X-Probe-Secret": "hunter2-secret"}
    response = await probe_client.post("/v1/probes/sql-error", headers=headers)
    problem = assert_problem(response, 500)
    assert problem["detail"] == "an unexpected error occurred"
    assert "missing_column" not in response.text
    assert "x-request-id" in response.headers
    assert "missing_column" in caplog.text, "the error is logged for operators"
    assert "hunter2-secret" not in caplog.text


async def test_metrics_by_route_template(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/v1/itineraries", json=TRIP, headers=with_key(tenant.member))
    await client.get(created.headers["location"], headers=tenant.member.headers)
    await client.get(f"/v1/itineraries/{uuid.uuid4()}", headers=tenant.member.headers)
    body = (await client.get("/metrics")).text
    served = (
        r'itinera_http_requests_total\{method="GET",route="/v1/itineraries/\{id\}",status="200"\}'
    )
    assert re.search(served + r" \d", body)
    assert 'route="/v1/itineraries/{id}",status="404"' in body
    assert str(created.json()["id"]) not in body, "never the raw path"
    assert 'itinera_http_request_duration_seconds_bucket{le="0.005",method="GET"' in body
    assert 'itinera_idempotency_outcomes_total{outcome="new"}' in body
    assert 'itinera_rate_limit_decisions_total{bucket="crud",outcome="allowed"}' in body
    assert 'itinera_db_pool_connections{pool="app",state="size"} 10.0' in body
    assert 'itinera_db_pool_connections{pool="owner",state="checked_out"}' in body
    assert "itinera_retention_sweep_failures_total" in body


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_the_configured_origins(settings: Settings, tenant: Tenant) -> None:
    async with running_app(settings.replace(cors_origins=("https://app.example",))) as client:
        preflight = await client.options(
            "/v1/itineraries",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key, if-match",
            },
        )
        simple = await client.get(
            "/v1/me", headers={**tenant.member.headers, "Origin": "https://app.example"}
        )
        stranger = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "idempotency-key", "if-match", "if-none-match", "x-request-id"):
        assert header in allowed
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    exposed = simple.headers["access-control-expose-headers"].lower()
    for header in (
        "etag",
        "location",
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
        "x-request-id",
        "idempotent-replayed",
    ):
        assert header in exposed
    assert "access-control-allow-origin" not in stranger.headers


async def test_an_oversized_body_is_413_declared_or_chunked(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    big = msgspec.json.encode({**TRIP, "data": {"x": "y" * settings.max_body_bytes}})
    declared = await client.post("/v1/itineraries", content=big, headers=with_key(tenant.member))
    assert_problem(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = await client.post(
        "/v1/itineraries", content=chunks(), headers=with_key(tenant.member)
    )
    assert_problem(chunked, 413)
    listed = await client.get("/v1/itineraries", headers=tenant.member.headers)
    assert listed.json()["items"] == []


async def test_oversized_headers_are_431(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/health", headers={"X-Padding": "p" * settings.max_header_bytes})
    assert_problem(response, 431)


async def test_an_unknown_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.request("PATCH", "/v1/itineraries")
    problem = assert_problem(response, 405)
    assert problem["type"] == "about:blank"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_a_foreign_content_type_is_415(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/itineraries",
        content=b"title=x",
        headers=with_key(tenant.member, **{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert_problem(response, 415)
