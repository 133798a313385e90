"""Async engines and session factories for the two database roles.

The service role (``DATABASE_URL``, ``itinera_app``) serves requests under
Row-Level Security; the owner role (``ITINERA_ADMIN_DATABASE_URL``) runs
migrations, the CLI and the retention sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from itinera.db.pool import DriverPool, request_pool
from itinera.settings import Settings

_json_encoder = msgspec.json.Encoder()


def async_url(url: str) -> str:
    """Accept ``postgresql://`` URLs and use the asyncpg driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


# The dialect statements are compiled with when they run on the driver
# directly (see itinera.db.prepared): configured like the engines'.
DIALECT = PGDialect_asyncpg(  # type: ignore[no-untyped-call]
    json_serializer=_encode_json, json_deserializer=msgspec.json.decode
)


def create_engine(
    url: str,
    settings: Settings,
    *,
    application_name: str,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> AsyncEngine:
    """An engine for one role: sessions for sweeps, the CLI and readiness (requests run
    on ``itinera.db.pool``)."""
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "server_settings": {"application_name": application_name},
        # A cached statement is a named prepared statement on one server
        # connection; a transaction-mode pooler (PgBouncer < 1.21) gives the
        # next transaction another one, where it does not exist. With 0, asyncpg
        # prepares every statement unnamed and sends its Parse again with each
        # Bind, in the same message as the Execute: nothing outlives the call.
        "statement_cache_size": settings.db_statement_cache_size,
        # SQLAlchemy's own cache of the driver's statements (its DBAPI adapter
        # takes it from the connect arguments): the same number, so 0 means no
        # statement is kept anywhere. No custom statement names: with asyncpg's
        # cache off, SQLAlchemy's statements are unnamed too, and a name would
        # leave them behind on the server connections.
        "prepared_statement_cache_size": settings.db_statement_cache_size,
    }
    return create_async_engine(
        async_url(url),
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
        max_overflow=settings.db_max_overflow if max_overflow is None else max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=settings.db_pool_pre_ping,
        # Statement parameters hold password hashes and token digests: never
        # let them into exception messages or logs.
        hide_parameters=True,
        json_serializer=_encode_json,
        json_deserializer=msgspec.json.decode,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@dataclass(frozen=True, slots=True)
class Database:
    """The service role's request pool and the engines, opened and closed by the lifespan.

    Requests take the service role's connections through the unit of work,
    from ``requests`` (driver connections, first come first served); sweeps
    use the owner's sessions; readiness probes have an engine of their own.
    """

    requests: DriverPool
    owner_engine: AsyncEngine
    # Readiness checks keep a connection of their own: a probe must tell whether
    # PostgreSQL answers, not wait behind request traffic for the service pool.
    probe_engine: AsyncEngine
    owner_sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def open(cls, settings: Settings) -> Database:
        if settings.database_url is None or settings.admin_database_url is None:
            raise RuntimeError("database URLs are resolved before the database is opened")
        # The owner pool serves sweepers and readiness only: keep it small.
        owner_engine = create_engine(
            settings.admin_database_url,
            settings,
            application_name="itinera-owner",
            pool_size=2,
            max_overflow=2,
        )
        probe_engine = create_engine(
            settings.database_url,
            settings,
            application_name="itinera-probe",
            pool_size=1,
            max_overflow=0,
        )
        return cls(
            requests=request_pool(settings.database_url, settings, application_name="itinera"),
            owner_engine=owner_engine,
            probe_engine=probe_engine,
            owner_sessions=session_factory(owner_engine),
        )

    async def dispose(self) -> None:
        await self.requests.close()
        await self.owner_engine.dispose()
        await self.probe_engine.dispose()
