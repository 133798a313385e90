"""Create Itinera's login roles, its database and the ``vector`` extension.

This is what a superuser does once per cluster before the first migration: the
embedded server runs it automatically, the test harness runs it on whatever
server it was given, and operators of a real server run the equivalent SQL
shown in the README. Everything here is idempotent.
"""

from __future__ import annotations

import contextlib

import asyncpg

OWNER_ROLE = "itinera_owner"
APP_ROLE = "itinera_app"


async def bootstrap_database(
    superuser_dsn: str,
    database: str,
    *,
    owner_password: str | None = None,
    app_password: str | None = None,
) -> None:
    """Make sure both roles and ``database`` (owned by the owner role) exist, with pgvector."""
    conn = await asyncpg.connect(superuser_dsn)
    try:
        await _ensure_role(conn, OWNER_ROLE, "LOGIN", owner_password)
        # The service role must never bypass Row-Level Security and owns nothing.
        await _ensure_role(conn, APP_ROLE, "LOGIN NOBYPASSRLS NOSUPERUSER", app_password)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            statement = await conn.fetchval(
                "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                database,
                OWNER_ROLE,
            )
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(statement)
    finally:
        await conn.close()

    conn = await asyncpg.connect(superuser_dsn, database=database)
    try:
        # pgvector is not a trusted extension: only a superuser may create it.
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


async def drop_database(superuser_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(superuser_dsn)
    try:
        statement = await conn.fetchval(
            "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)", database
        )
        await conn.execute(statement)
    finally:
        await conn.close()


async def _ensure_role(
    conn: asyncpg.Connection, role: str, options: str, password: str | None
) -> None:
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        # Another process may bootstrap the same cluster at the same time.
        with contextlib.suppress(asyncpg.DuplicateObjectError):
            await conn.execute(f"CREATE ROLE {role} {options}")
    if password is not None:
        statement = await conn.fetchval(
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", role, password
        )
        await conn.execute(statement)
