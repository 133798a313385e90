"""Running the real app in-process, with its lifespan, behind an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from itinera.app import create_app
from itinera.routing import Operation
from itinera.settings import Settings


@asynccontextmanager
async def running_app(
    settings: Settings, extra_operations: Sequence[Operation] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, extra_operations)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
