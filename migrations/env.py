"""Alembic environment: async engine on the owner role's URL.

Used three ways: `itinera migrate` (settings in ``config.attributes``), the
`alembic` command against real servers (settings from the environment), and
tests that lend an open connection (``config.attributes["connection"]``).
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from pgvector.sqlalchemy import Vector
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeEngine

from itinera.db.engine import async_url
from itinera.db.models import Base
from itinera.settings import Settings, load_settings

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

settings: Settings = config.attributes.get("settings") or load_settings()
# The initial migration reads the dimension from here.
config.attributes.setdefault("embedding_dim", settings.embedding_dim)


def compare_type(
    context: object,
    inspected_column: object,
    metadata_column: object,
    inspected_type: TypeEngine[object],
    metadata_type: TypeEngine[object],
) -> bool | None:
    # The model leaves the vector dimension open; the database fixes it.
    if isinstance(metadata_type, Vector) and metadata_type.dim is None:
        return not isinstance(inspected_type, Vector)
    return None


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=compare_type,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    lent: Connection | None = config.attributes.get("connection")
    if lent is not None:
        do_run_migrations(lent)
        return
    url = config.attributes.get("url") or settings.admin_database_url
    if url is None:
        raise RuntimeError(
            "set ITINERA_ADMIN_DATABASE_URL, or run `itinera migrate` to use the embedded server"
        )
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
