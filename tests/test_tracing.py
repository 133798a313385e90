"""Traces: a server span per request under the caller's trace, SQL and Redis spans under it.

The app is built with tracing on and the SDK's in-memory exporter beside
whatever the settings name; one test sends the spans over OTLP/HTTP to a
collector stand-in that decodes them; one drives an app with tracing off in a
fresh interpreter and finds OpenTelemetry never imported.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.responses import Response

from itinera.app import create_app
from itinera.db.prepared import Prepared
from itinera.db.repository import Repository
from itinera.logs import JSONFormatter
from itinera.routing import Api, Context, Operation
from itinera.settings import Settings, SettingsError, load_settings
from tests.support.http import with_key
from tests.support.tenants import Tenant

REPO = Path(__file__).resolve().parents[1]
TRIP = {"title": "Traced week in Lisbon", "start_date": "2027-05-01", "end_date": "2027-05-08"}


@asynccontextmanager
async def traced_app(
    settings: Settings, exporter: InMemorySpanExporter, extra_operations: Sequence[Operation] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, extra_operations, span_processor=SimpleSpanProcessor(exporter))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def incoming_trace() -> tuple[int, int, str]:
    """A caller's trace id and span id, and the ``traceparent`` that carries them."""
    trace_id, span_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    return trace_id, span_id, f"00-{trace_id:032x}-{span_id:016x}-01"


def system(span: ReadableSpan) -> object:
    return (span.attributes or {}).get("db.system.name")


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access-log lines as the service writes them: JSON."""
    formatter = JSONFormatter()
    return [
        {**json.loads(formatter.format(record)), "record": record}
        for record in caplog.records
        if record.name == "itinera.access"
    ]


async def test_a_post_is_one_server_span_with_its_sql_and_redis_children_in_the_callers_trace(
    settings: Settings, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itinera.access")
    exporter = InMemorySpanExporter()
    trace_id, caller_span_id, traceparent = incoming_trace()
    async with traced_app(settings, exporter) as client:
        # Once, so that Redis has the limiter's script (see the NOSCRIPT test below).
        await client.get("/v1/me", headers=tenant.member.headers)
        exporter.clear()
        caplog.clear()
        created = await client.post(
            "/v1/itineraries",
            json=TRIP,
            headers=with_key(tenant.member, traceparent=traceparent, tracestate="vendor=kept"),
        )
    assert created.status_code == 201, created.text
    spans = exporter.get_finished_spans()

    [server] = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.parent is not None
    assert server.parent.is_remote
    assert (server.parent.trace_id, server.parent.span_id) == (trace_id, caller_span_id)
    assert server.context.trace_id == trace_id
    assert server.context.trace_state.get("vendor") == "kept"
    assert server.name == "POST /v1/itineraries"
    assert dict(server.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/v1/itineraries",
        "url.scheme": "http",
        "http.route": "/v1/itineraries",
        "http.response.status_code": 201,
    }
    assert server.status.status_code is StatusCode.UNSET

    children = [span for span in spans if span is not server]
    for child in children:
        assert child.kind is SpanKind.CLIENT
        assert child.context.trace_id == trace_id
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id

    [limiter] = [span for span in children if system(span) == "redis"]
    assert limiter.name == "EVALSHA"
    assert (limiter.attributes or {})["db.operation.name"] == "EVALSHA"

    statements = [
        str((span.attributes or {})["db.query.text"])
        for span in sorted(children, key=lambda span: span.start_time or 0)
        if system(span) == "postgresql"
    ]
    # A new key: the opening checks it has no record, so no lookup of its own;
    # the record travels in the message that commits.
    opening, insert, store_and_commit = statements
    assert opening.startswith("BEGIN;")
    assert "itinera_begin(" in opening
    assert "itinera_expect_unrecorded_key(" in opening
    assert "SAVEPOINT" in opening
    assert insert.startswith("INSERT INTO itinerary")
    assert store_and_commit.startswith("SELECT itinera_store_response(")
    assert store_and_commit.endswith(
        "$key, $fingerprint, 201::smallint, $headers::jsonb, $body, 86400); COMMIT"
    )
    # The statement's text, never its parameters, nor the response inlined into it.
    everything = repr([dict(span.attributes or {}) for span in spans])
    assert TRIP["title"] not in everything
    assert created.request.headers["idempotency-key"] not in everything
    assert created.json()["id"] not in everything

    [line] = access_lines(caplog)
    assert line["trace_id"] == f"{trace_id:032x}"
    assert line["route"] == "/v1/itineraries"
    # Every counted round trip has its span.
    assert line["record"].db_round_trips == len(statements)
    assert line["record"].redis_round_trips == 1


async def test_a_redis_that_lost_the_script_shows_each_of_its_round_trips(
    settings: Settings, redis_url: str, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itinera.access")
    exporter = InMemorySpanExporter()
    async with traced_app(settings, exporter) as client:
        async with Redis.from_url(redis_url) as redis:
            await redis.script_flush()
        fetched = await client.get("/v1/me", headers=tenant.member.headers)
    assert fetched.status_code == 200
    calls = [
        (span.name, (span.attributes or {}).get("error.type"))
        for span in sorted(exporter.get_finished_spans(), key=lambda span: span.start_time or 0)
        if system(span) == "redis"
    ]
    assert calls == [("EVALSHA", "NoScriptError"), ("SCRIPT LOAD", None), ("EVALSHA", None)]
    [line] = access_lines(caplog)
    assert line["record"].redis_round_trips == len(calls)


async def test_a_trace_the_caller_did_not_sample_records_no_span_but_is_logged(
    settings: Settings, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itinera.access")
    exporter = InMemorySpanExporter()
    trace_id, _, traceparent = incoming_trace()
    unsampled = traceparent.removesuffix("-01") + "-00"
    async with traced_app(settings, exporter) as client:
        created = await client.post(
            "/v1/itineraries", json=TRIP, headers=with_key(tenant.member, traceparent=unsampled)
        )
    assert created.status_code == 201
    assert exporter.get_finished_spans() == ()
    [line] = access_lines(caplog)
    assert line["trace_id"] == f"{trace_id:032x}"


async def test_a_request_without_traceparent_starts_its_own_trace(
    settings: Settings, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="itinera.access")
    exporter = InMemorySpanExporter()
    async with traced_app(settings, exporter) as client:
        missing = await client.get("/v1/nowhere", headers=tenant.member.headers)
    assert missing.status_code == 404
    [server] = exporter.get_finished_spans()
    assert server.parent is None
    # No route template matched: the span is named by the method alone.
    assert server.name == "GET"
    assert "http.route" not in (server.attributes or {})
    assert (server.attributes or {})["http.response.status_code"] == 404
    [line] = access_lines(caplog)
    assert line["trace_id"] == f"{server.context.trace_id:032x}"


probes = Api(tag="probes")
# A parameter the driver refuses: asyncpg's message quotes the value it was given.
BAD_PARAMETER = Prepared(text("SELECT CAST(:secret AS integer)"))


@probes.post("/v1/probes/traced-sql-error", summary="fails on a secret parameter")
async def sql_error(ctx: Context) -> Response:
    await ctx.repository(Repository).scalar(BAD_PARAMETER, secret=ctx.headers["x-probe-secret"])
    return Response(status_code=204)


async def test_a_failed_statement_is_an_error_span_that_quotes_no_parameter(
    settings: Settings, tenant: Tenant
) -> None:
    exporter = InMemorySpanExporter()
    headers = {**tenant.member.headers, "X-Probe-Secret": "hunter2-in-a-span"}
    async with traced_app(settings, exporter, probes.operations) as client:
        response = await client.post("/v1/probes/traced-sql-error", headers=headers)
    # The service answers 422 (a value that cannot be stored): the client's error, not ours.
    assert response.status_code == 422
    spans = exporter.get_finished_spans()
    [server] = [span for span in spans if span.kind is SpanKind.SERVER]
    assert server.status.status_code is StatusCode.UNSET
    [failed] = [span for span in spans if span.status.status_code is StatusCode.ERROR]
    assert failed.name == "SELECT"
    assert (failed.attributes or {})["db.query.text"] == "SELECT CAST($1 AS integer)"
    assert (failed.attributes or {})["error.type"] == "DataError"
    assert failed.events == ()
    everything = repr([(dict(s.attributes or {}), s.events, s.status.description) for s in spans])
    assert "hunter2" not in everything


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector's front door: keeps each export request's body."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_otlp_endpoint_receives_the_spans_flushed_when_the_app_stops(
    settings: Settings, tenant: Tenant
) -> None:
    trace_id, _, traceparent = incoming_trace()
    with collector() as (endpoint, received):
        configured = settings.replace(
            otel_exporter_otlp_endpoint=endpoint, otel_service_name="itinera-under-test"
        )
        assert configured.tracing
        app = create_app(configured)
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                fetched = await client.get(
                    "/v1/me", headers={**tenant.member.headers, "traceparent": traceparent}
                )
                assert fetched.status_code == 200
        # The lifespan's end flushed the batch: no waiting here.
    assert received
    assert {path for path, _ in received} == {"/v1/traces"}
    spans = []
    for _, body in received:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}[
                "service.name"
            ]
            assert service == "itinera-under-test"
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert {span.trace_id.hex() for span in spans} == {f"{trace_id:032x}"}
    assert "GET /v1/me" in {span.name for span in spans}


async def test_an_exporter_this_service_lacks_stops_the_start(settings: Settings) -> None:
    app = create_app(settings.replace(otel_traces_exporter="zipkin"))
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER: zipkin"):
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            pass


@pytest.mark.parametrize(
    ("environment", "tracing"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        ({"OTEL_SERVICE_NAME": "itinera-eu"}, False),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_named(
    environment: dict[str, str], tracing: bool
) -> None:
    assert load_settings(environment).tracing is tracing


# In a fresh interpreter: this test process has the tracing SDK loaded already.
# (OpenTelemetry's API itself is there from the start when installed: redis-py
# imports its metrics SDK for an observability feature of its own, left off.)
UNTRACED = """
import asyncio, json, sys, uuid

import httpx, msgspec
from asgi_lifespan import LifespanManager

from itinera.app import create_app
from itinera.logs import configure_logging
from itinera.settings import Settings

settings = msgspec.json.decode(sys.stdin.buffer.read(), type=Settings)
token = sys.argv[1]
configure_logging("INFO")
TRACING = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.trace.propagation.")
calls = set()


def watch(frame, event, arg):
    # Every Python function entered, and every C function called, while requests run.
    if event == "call":
        where = frame.f_code.co_filename
    elif event == "c_call":
        where = getattr(arg, "__module__", None) or ""
    else:
        return
    if "opentelemetry" in where:
        calls.add(f"{where}:{frame.f_code.co_name}")


async def main():
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": str(uuid.uuid4()),
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            }
            trip = {"title": "Untraced", "start_date": "2027-01-01", "end_date": "2027-01-02"}
            sys.setprofile(watch)
            try:
                created = await client.post("/v1/itineraries", json=trip, headers=headers)
                fetched = await client.get(created.headers["location"], headers=headers)
            finally:
                sys.setprofile(None)
    tracing = sorted(name for name in sys.modules if name.startswith(TRACING))
    outcome = {"statuses": [created.status_code, fetched.status_code], "calls": sorted(calls)}
    print(json.dumps(outcome | {"tracing_modules": tracing}))


asyncio.run(main())
"""


def test_with_tracing_off_no_request_calls_into_opentelemetry(
    settings: Settings, tenant: Tenant
) -> None:
    assert not settings.tracing
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED, tenant.member.token],
        input=msgspec.json.encode(settings),
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    outcome = json.loads(done.stdout)
    assert outcome == {"statuses": [201, 200], "calls": [], "tracing_modules": []}
    lines = [json.loads(line) for line in done.stderr.decode().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "itinera.access"]
    assert len(access) == 2
    assert all("trace_id" not in line for line in access)
