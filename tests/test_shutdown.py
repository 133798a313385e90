"""Graceful shutdown of a real server process: SIGTERM mid-load cuts no request off."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.settings import Settings
from tests.support.processes import child_environment, free_port, real_server_environment
from tests.support.tenants import PASSWORD, Tenant

pytestmark = pytest.mark.slow


def server_environment(settings: Settings) -> dict[str, str]:
    return real_server_environment(
        settings,
        ITINERA_RATE_LIMIT_AUTH_PER_MINUTE="100000",
        ITINERA_RATE_LIMIT_AUTH_IP_PER_MINUTE="100000",
    )


async def test_sigterm_lets_in_flight_requests_finish(
    settings: Settings, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "itinera", "serve", "--port", str(port)],
        env=child_environment(server_environment(settings)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server never became ready"
                await asyncio.sleep(0.1)

            # Logins are slow on purpose (Argon2id, two at a time): 24 of them
            # keep the server busy for a good half second.
            body = {"org": tenant.slug, "email": tenant.member.email, "password": PASSWORD}
            logins = [
                asyncio.create_task(client.post("/v1/auth/login", json=body)) for _ in range(24)
            ]
            await asyncio.sleep(0.2)
            server.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*logins, return_exceptions=True)
    finally:
        try:
            _, log = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    failures = [a for a in answers if not isinstance(a, httpx.Response)]
    assert not failures, f"requests cut off: {failures[:3]}"
    assert {a.status_code for a in answers if isinstance(a, httpx.Response)} == {200}
    assert server.returncode == 0, log[-2000:]
    assert "Waiting for application shutdown" in log
    assert "Application shutdown complete" in log
