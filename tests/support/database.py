"""Throwaway databases: roles, pgvector, and the schema at a chosen revision."""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass

import anyio
from alembic import command

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE, bootstrap_database, drop_database
from itinera.db.schema import alembic_config
from itinera.settings import Settings
from tests.support.servers import ROLE_PASSWORDS, PostgresServer

TEST_EMBEDDING_DIM = 16


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    app_url: str
    owner_url: str

    def settings(self, **changes: object) -> Settings:
        base = Settings(
            database_url=self.app_url,
            admin_database_url=self.owner_url,
            jwt_secret="test-secret-that-is-long-enough-for-hs256",
            embedding_dim=TEST_EMBEDDING_DIM,
            sweepers_enabled=False,
        )
        return base.replace(**changes)


async def create_database(
    server: PostgresServer,
    *,
    migrate_to: str | None = "head",
    embedding_dim: int = TEST_EMBEDDING_DIM,
) -> ScratchDatabase:
    name = f"itinera_test_{uuid.uuid4().hex[:10]}"
    passwords = ROLE_PASSWORDS if server.uses_passwords else {}
    await bootstrap_database(
        server.superuser_dsn,
        name,
        owner_password=passwords.get(OWNER_ROLE),
        app_password=passwords.get(APP_ROLE),
    )
    database = ScratchDatabase(
        name, server.role_url(APP_ROLE, name), server.role_url(OWNER_ROLE, name)
    )
    if migrate_to is not None:
        await run_alembic(database.settings(embedding_dim=embedding_dim), "upgrade", migrate_to)
    return database


async def dispose_database(server: PostgresServer, database: ScratchDatabase) -> None:
    await drop_database(server.superuser_dsn, database.name)


async def run_alembic(settings: Settings, name: str, *args: str) -> None:
    """Run an alembic command as `itinera migrate` does: in its own thread and event loop."""

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            getattr(command, name)(alembic_config(settings), *args)

    await anyio.to_thread.run_sync(run)
