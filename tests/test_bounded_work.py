"""No request of one tenant can hold the service: statement timeouts, slow bodies, readiness."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import msgspec
import pytest
from sqlalchemy import Float, bindparam, text
from starlette.responses import Response

from itinera.db.prepared import Prepared
from itinera.db.repository import Repository
from itinera.http import JSONResponse
from itinera.routing import Api, Context
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.fuzz_server import serving
from tests.support.http import assert_problem
from tests.support.tenants import Tenant

probes = Api(tag="probes")


class Backend(msgspec.Struct):
    pid: int


class Sleep(msgspec.Struct):
    seconds: float


BACKEND_PID = Prepared(text("SELECT pg_backend_pid()"))
SLEEP = Prepared(text("SELECT pg_sleep(:seconds)").bindparams(bindparam("seconds", type_=Float)))


class Probe(Repository):
    async def backend_pid(self) -> int:
        return int(await self.scalar(BACKEND_PID))

    async def sleep(self, seconds: float) -> None:
        await self.execute(SLEEP, seconds=seconds)


@probes.post("/v1/probes/sleep", summary="one statement that takes its time", status=200)
async def sleep(ctx: Context, body: Sleep) -> Response:
    probe = ctx.repository(Probe)
    pid = await probe.backend_pid()
    await probe.sleep(body.seconds)
    return JSONResponse(Backend(pid=pid))


@probes.get("/v1/probes/backend", summary="the backend serving this request")
async def backend(ctx: Context) -> Response:
    return JSONResponse(Backend(pid=await ctx.repository(Probe).backend_pid()))


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a service pool of a single connection and a short statement timeout."""
    narrow = settings.replace(db_pool_size=1, db_max_overflow=0, db_statement_timeout_seconds=0.5)
    async with running_app(narrow, probes.operations) as client:
        yield client


async def test_a_statement_past_the_timeout_answers_503_and_the_connection_is_kept(
    one_connection: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await one_connection.get("/v1/probes/backend", headers=tenant.member.headers)
    assert before.status_code == 200

    cut_off = await one_connection.post(
        "/v1/probes/sleep", json={"seconds": 30}, headers=tenant.member.headers
    )
    assert_problem(cut_off, 503)
    assert cut_off.headers["retry-after"] == "1"

    # The same pooled connection serves the next request, healthy.
    after = await one_connection.get("/v1/probes/backend", headers=tenant.member.headers)
    assert after.status_code == 200
    assert after.json()["pid"] == before.json()["pid"]
    trips = await one_connection.get("/v1/itineraries", headers=tenant.member.headers)
    assert trips.status_code == 200


async def test_a_statement_within_the_timeout_is_not_cut_off(
    one_connection: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await one_connection.post(
        "/v1/probes/sleep", json={"seconds": 0.1}, headers=tenant.member.headers
    )
    assert response.status_code == 200


async def test_ready_does_not_wait_behind_request_traffic(
    settings: Settings, tenant: Tenant
) -> None:
    narrow = settings.replace(db_pool_size=1, db_max_overflow=0, db_statement_timeout_seconds=5)
    async with running_app(narrow, probes.operations) as client:
        busy = asyncio.ensure_future(
            client.post("/v1/probes/sleep", json={"seconds": 1.5}, headers=tenant.member.headers)
        )
        # Wait until the request holds the pool's only connection.
        holding = 'itinera_db_pool_connections{pool="app",state="checked_out"} 1.0'
        while holding not in (await client.get("/metrics")).text:
            await asyncio.sleep(0.02)
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["postgres"]["status"] == "ok"
        assert not busy.done()
        assert (await busy).status_code == 200


def _send_half_a_body(port: int, pause_limit: float) -> tuple[bytes, bytes]:
    """Send headers and part of a body, then stall; return the answer and what follows it."""
    with socket.create_connection(("127.0.0.1", port), timeout=pause_limit + 10) as sock:
        sock.sendall(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"org": "x",'
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        return answer, rest


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(
    settings: Settings, http: str
) -> None:
    with serving(settings.replace(body_timeout_seconds=0.5), http=http) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        answer, rest = await anyio.to_thread.run_sync(_send_half_a_body, port, 0.5)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert b"application/problem+json" in answer.lower()
    # recv() returned b"" above: the server closed the connection after its answer.
    assert b"paused" in rest or b"paused" in answer
