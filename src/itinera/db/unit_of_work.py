"""The unit of work: one connection and one transaction per request, for one tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from itinera.errors import AuthenticationError

TENANT_SETTING = "itinera.org_id"


class UnitOfWork:
    """Owns the request's connection and transaction; repositories flush, only this commits.

    The transaction is begun and ended on the driver (the engine runs in
    SQLAlchemy's AUTOCOMMIT mode, so SQLAlchemy issues no BEGIN or COMMIT of
    its own): hot paths run compiled statements on ``driver()``, everything
    else uses ``session()``, an AsyncSession on the same connection — one
    transaction either way.

    The transaction opens with a single statement that applies the tenant
    setting, and any other transaction-local settings, with
    ``set_config(name, value, true)``: they vanish at commit or rollback, so
    nothing leaks to the next user of the pooled connection. For an
    authenticated request the same statement checks that the caller still
    exists and is enabled, and idempotency folds its advisory lock into it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        org_id: uuid.UUID | None = None,
        *,
        user_id: uuid.UUID | None = None,
    ) -> None:
        self._engine = engine
        self._org_id = org_id
        self._user_id = user_id
        self._connection: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._transaction: Transaction | None = None
        self._session: AsyncSession | None = None
        self._finished = False

    @property
    def org_id(self) -> uuid.UUID | None:
        return self._org_id

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None and not self._finished

    async def set_tenant(self, org_id: uuid.UUID) -> None:
        """Choose the tenant of a public route's transaction (login and refresh learn it late).

        Folded into the first statement when the transaction has not begun.
        """
        if self._org_id is not None and self._org_id != org_id:
            raise RuntimeError("a transaction serves one tenant")
        self._org_id = org_id
        if self._transaction is not None:
            await self.apply_settings({TENANT_SETTING: str(org_id)})

    async def begin(
        self, *, advisory_lock: int | None = None, settings: Mapping[str, str] | None = None
    ) -> bool | None:
        """Open the transaction with its one opening statement.

        Returns whether ``advisory_lock`` (a transaction-level lock) was
        granted, or None when none was asked for.
        """
        if self._transaction is not None or self._finished:
            raise RuntimeError("the unit of work has already begun")
        driver = await self._open()
        values = dict(settings or {})
        if self._org_id is not None:
            values[TENANT_SETTING] = str(self._org_id)
        columns: list[str] = []
        arguments: list[Any] = []

        def argument(value: Any) -> str:
            arguments.append(value)
            return f"${len(arguments)}"

        for name, value in values.items():
            columns.append(f"set_config({argument(name)}, {argument(value)}, true)")
        # Order matters: PostgreSQL evaluates the select list left to right and
        # runs the uncorrelated EXISTS (an InitPlan) only when its value is
        # first needed, so the user check already sees the tenant setting
        # that Row-Level Security filters on.
        if self._user_id is not None:
            columns.append(
                f"EXISTS (SELECT 1 FROM app_user WHERE org_id = {argument(self._org_id)}"
                f" AND id = {argument(self._user_id)} AND NOT disabled)"
            )
        if advisory_lock is not None:
            columns.append(f"pg_try_advisory_xact_lock({argument(advisory_lock)})")
        if not columns:
            return None
        row = await driver.fetchrow(f"SELECT {', '.join(columns)}", *arguments)
        assert row is not None
        if self._user_id is not None and not row[len(values)]:
            raise AuthenticationError("the user no longer exists or is disabled")
        return bool(row[-1]) if advisory_lock is not None else None

    async def driver(self) -> asyncpg.Connection:
        """The driver connection, inside the transaction (begun if need be)."""
        if self._finished:
            raise RuntimeError("the unit of work is finished")
        if self._transaction is None:
            await self.begin()
        assert self._driver is not None
        return self._driver

    async def session(self) -> AsyncSession:
        """An AsyncSession on the same connection and transaction."""
        await self.driver()
        if self._session is None:
            self._session = AsyncSession(
                bind=self._connection, expire_on_commit=False, autoflush=False
            )
        return self._session

    async def apply_settings(self, settings: Mapping[str, str]) -> None:
        """Set transaction-local settings, folded into the first statement when possible."""
        if self._transaction is None:
            await self.begin(settings=settings)
            return
        assert self._driver is not None
        names = list(settings)
        columns = ", ".join(
            f"set_config(${2 * n + 1}, ${2 * n + 2}, true)" for n in range(len(names))
        )
        await self._driver.fetchrow(
            f"SELECT {columns}", *(item for name in names for item in (name, settings[name]))
        )

    async def savepoint(self, name: str) -> None:
        await (await self.driver()).execute(f"SAVEPOINT {name}")

    async def rollback_to_savepoint(self, name: str) -> None:
        await (await self.driver()).execute(f"ROLLBACK TO SAVEPOINT {name}")

    async def commit(self) -> None:
        # Finished only once it worked: after a failed COMMIT, close() tries a
        # rollback, and a connection that cannot even do that is discarded.
        if self.in_transaction:
            assert self._transaction is not None
            await self._transaction.commit()
            self._finished = True

    async def rollback(self) -> None:
        if self.in_transaction:
            assert self._transaction is not None
            await self._transaction.rollback()
            self._finished = True

    async def close(self) -> None:
        """Roll back whatever is open and give the connection back, shielded from cancellation.

        A connection whose transaction cannot be ended (the server went away,
        a statement was cut off) is discarded rather than pooled.
        """
        with anyio.CancelScope(shield=True):
            connection, self._connection = self._connection, None
            try:
                if self._session is not None:
                    await self._session.close()
                await self.rollback()
            except Exception:
                if connection is not None:
                    await self._discard(connection)
                    connection = None
            finally:
                self._finished = True
                if connection is not None:
                    if self._driver is not None and self._driver.is_closed():
                        await self._discard(connection)
                    else:
                        await connection.close()

    async def _open(self) -> asyncpg.Connection:
        connection = self._connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            transaction = driver.transaction()
            await transaction.start()
        except BaseException:
            # Not even BEGIN went through: the connection is in no known state.
            self._connection = None
            with anyio.CancelScope(shield=True):
                await self._discard(connection)
            raise
        self._driver = driver
        self._transaction = transaction
        return driver

    async def _discard(self, connection: AsyncConnection) -> None:
        """Drop a connection that cannot be trusted, and the pool's idle ones with it.

        Such a connection usually means the server went away (a restart, a
        failover): the pool's other idle connections are as dead, so start a
        fresh pool rather than fail once on each of them.
        """
        await connection.invalidate()
        await connection.close()
        await self._engine.dispose(close=False)
