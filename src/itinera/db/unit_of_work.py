"""The unit of work: one connection and one transaction per request, for one tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import anyio
import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from itinera.errors import AuthenticationError, PermissionDeniedError

TENANT_SETTING = "itinera.org_id"


class UnitOfWork:
    """Owns the request's connection and transaction; repositories flush, only this commits.

    The transaction is begun and ended on the driver (the engine runs in
    SQLAlchemy's AUTOCOMMIT mode, so SQLAlchemy issues no BEGIN or COMMIT of
    its own): hot paths run compiled statements on ``driver()``, everything
    else uses ``session()``, an AsyncSession on the same connection — one
    transaction either way.

    The transaction opens in one round trip: ``BEGIN; SET LOCAL
    statement_timeout ...; SELECT itinera_begin(...)`` as a single message
    (see migrations 0002 and 0003) bounds every statement of the transaction,
    applies the tenant setting with ``set_config(..., true)`` — gone at commit
    or rollback, so nothing leaks to the next user of the pooled connection —
    checks that the caller still exists and is enabled (and is an admin, when
    the route needs one: the role in the database, not the token's claim), and
    takes an idempotency key's advisory lock.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        org_id: uuid.UUID | None = None,
        *,
        user_id: uuid.UUID | None = None,
        requires_admin: bool = False,
        statement_timeout: float | None = None,
        gate: anyio.Semaphore | None = None,
        gate_timeout: float = 5.0,
    ) -> None:
        self._engine = engine
        self._requires_admin = requires_admin
        self._statement_timeout_ms = (
            None if statement_timeout is None else max(1, round(statement_timeout * 1000))
        )
        self._gate = gate
        self._gate_timeout = gate_timeout
        self._holds_gate = False
        self._org_id = org_id
        self._user_id = user_id
        self._connection: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._session: AsyncSession | None = None
        self._begun = False
        self._finished = False
        # Set when a driver call failed other than by a plain SQL error: the
        # connection's state is unknown, so it must not go back to the pool.
        self._untrusted = False

    @property
    def in_transaction(self) -> bool:
        return self._begun and not self._finished

    async def set_tenant(self, org_id: uuid.UUID) -> None:
        """Choose the tenant of a public route's transaction (login and refresh learn it late).

        Folded into the opening message when the transaction has not begun.
        """
        if self._org_id is not None and self._org_id != org_id:
            raise RuntimeError("a transaction serves one tenant")
        self._org_id = org_id
        if self._begun:
            await self.apply_settings({TENANT_SETTING: str(org_id)})

    async def begin(
        self, *, advisory_lock: int | None = None, savepoint: str | None = None
    ) -> bool | None:
        """Open the transaction (and a first savepoint) in one round trip.

        Returns whether ``advisory_lock`` (a transaction-level lock) was
        granted, or None when none was asked for. When it was not, the
        transaction is open all the same, without the lock or the savepoint.
        """
        if self._begun or self._finished:
            raise RuntimeError("the unit of work has already begun")
        driver = await self._connect()
        try:
            await driver.execute(self._opening(advisory_lock, savepoint))
        except asyncpg.LockNotAvailableError:
            # Held by a request with the same key: open again without it, so
            # the caller can still read the key's record.
            await driver.execute("ROLLBACK")
            await driver.execute(self._opening(None, None))
            self._begun = True
            return False
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            self._begun = driver.is_in_transaction()
            raise AuthenticationError("the user no longer exists or is disabled") from exc
        except asyncpg.InsufficientPrivilegeError as exc:
            self._begun = driver.is_in_transaction()
            raise PermissionDeniedError("only admins may do this") from exc
        except BaseException:
            self._untrusted = True
            raise
        self._begun = True
        return True if advisory_lock is not None else None

    def _opening(self, advisory_lock: int | None, savepoint: str | None) -> str:
        # Sent by the simple query protocol, which carries several statements
        # but no parameters: every value inlined here is a UUID or an integer
        # made by this process, never text from a request.
        statements = ["BEGIN"]
        if self._statement_timeout_ms is not None:
            # Transaction-local like the tenant: a pooled connection keeps no setting.
            statements.append(f"SET LOCAL statement_timeout = {int(self._statement_timeout_ms)}")
        if self._org_id is not None:
            member = f"'{uuid.UUID(str(self._user_id))}'" if self._user_id else "NULL"
            lock = str(int(advisory_lock)) if advisory_lock is not None else "NULL"
            admin = "true" if self._requires_admin else "false"
            statements.append(
                f"SELECT itinera_begin('{uuid.UUID(str(self._org_id))}', {member}, {lock}, {admin})"
            )
        if savepoint is not None:
            statements.append(f"SAVEPOINT {savepoint}")
        return "; ".join(statements)

    async def driver(self) -> asyncpg.Connection:
        """The driver connection, inside the transaction (begun if need be)."""
        if self._finished:
            raise RuntimeError("the unit of work is finished")
        if not self._begun:
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
        """Set more transaction-local settings (search's HNSW knobs, a late tenant)."""
        driver = await self.driver()
        names = list(settings)
        columns = ", ".join(
            f"set_config(${2 * n + 1}, ${2 * n + 2}, true)" for n in range(len(names))
        )
        await driver.fetchrow(
            f"SELECT {columns}", *(item for name in names for item in (name, settings[name]))
        )

    async def rollback_to_savepoint(self, name: str) -> None:
        await (await self.driver()).execute(f"ROLLBACK TO SAVEPOINT {name}")

    async def commit(self) -> None:
        # Finished only once it worked: after a failed COMMIT, close() tries a
        # rollback, and a connection that cannot even do that is discarded.
        if self.in_transaction:
            assert self._driver is not None
            try:
                await self._driver.execute("COMMIT")
            except BaseException:
                self._untrusted = True
                raise
            self._finished = True

    async def rollback(self) -> None:
        if self.in_transaction:
            assert self._driver is not None
            await self._driver.execute("ROLLBACK")
            self._finished = True

    async def close(self) -> None:
        """Roll back whatever is open and give the connection back, shielded from cancellation.

        A connection whose transaction cannot be ended (the server went away,
        a statement was cut off) is discarded rather than pooled.
        """
        with anyio.CancelScope(shield=True):
            try:
                await self._return_connection()
            finally:
                if self._holds_gate:
                    self._holds_gate = False
                    assert self._gate is not None
                    self._gate.release()

    async def _return_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._finished = True
        if connection is None:
            return
        if self._untrusted:
            await self._discard(connection)
            return
        try:
            if self._session is not None:
                await self._session.close()
            driver = self._driver
            if driver is not None and not driver.is_closed() and driver.is_in_transaction():
                await driver.execute("ROLLBACK")
        except Exception:
            await self._discard(connection)
            return
        if self._driver is not None and self._driver.is_closed():
            await self._discard(connection)
        else:
            await connection.close()

    async def _connect(self) -> asyncpg.Connection:
        if self._gate is not None:
            try:
                self._gate.acquire_nowait()
            except anyio.WouldBlock:
                with anyio.fail_after(self._gate_timeout):
                    await self._gate.acquire()
            self._holds_gate = True
        connection = self._connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            self._connection = None
            with anyio.CancelScope(shield=True):
                await self._discard(connection)
            raise
        driver: asyncpg.Connection = raw.driver_connection
        self._driver = driver
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
