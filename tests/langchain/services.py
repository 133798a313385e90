"""A live service on a database made with a chosen embedding dimension (the dimension is
fixed when the schema is made)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from itinera.db.engine import create_engine
from tests.support.database import create_database, dispose_database
from tests.support.live_service import LiveService, live_server
from tests.support.servers import PostgresServer
from tests.support.tenants import make_tenant


@contextlib.asynccontextmanager
async def dimensioned_service(
    postgres: PostgresServer, redis_url: str, embedding_dim: int
) -> AsyncIterator[LiveService]:
    """``itinera serve`` on a scratch database made with ``embedding_dim``, seen from an
    org of its own."""
    database = await create_database(postgres, embedding_dim=embedding_dim)
    settings = database.settings(embedding_dim=embedding_dim, redis_url=redis_url)
    assert settings.admin_database_url is not None
    engine = create_engine(settings.admin_database_url, settings, application_name="itinera-tests")
    try:
        with live_server(settings) as server:
            org = await make_tenant(engine, settings)
            yield LiveService(server.base_url, settings, org, engine)
    finally:
        await engine.dispose()
        await dispose_database(postgres, database)
