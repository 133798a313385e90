"""The unit of work: one connection and one transaction per request, for one tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from itinera.db.literals import Inlined, bytea_literal, dollar_quoted, uuid_literal
from itinera.db.pool import DriverPool
from itinera.errors import AuthenticationError, PermissionDeniedError
from itinera.round_trips import RoundTrips
from itinera.tracing import current_tracer

if TYPE_CHECKING:
    from itinera.tracing import Tracer

TENANT_SETTING = "itinera.org_id"
# Raised by itinera_expect_unrecorded_key() (migration 0008): the key has a live record.
KEY_RECORDED = "IT001"


class UnitOfWork:
    """Owns the request's connection and transaction; repositories run statements, only
    this commits.

    The transaction is begun and ended on the driver (the engine runs in
    SQLAlchemy's AUTOCOMMIT mode, so SQLAlchemy issues no BEGIN or COMMIT of
    its own). Repositories (``db.repository``) run compiled statements through
    ``fetch``/``fetchrow``/``fetchval``/``execute``, which count the round trips.

    The transaction opens in one round trip: ``BEGIN; SELECT
    itinera_begin(...), set_config('statement_timeout', ..., true)`` as a
    single message (see migrations 0002 and 0003) bounds every later
    statement of the transaction, applies the tenant setting with
    ``set_config(..., true)`` — gone at commit or rollback, so nothing leaks
    to the next user of the pooled connection — checks that the caller still
    exists and is enabled (and is an admin, when the route needs one: the role
    in the database, not the token's claim), and takes an idempotency key's
    advisory lock. A caller with an API key is
    opened by ``itinera_begin_key(...)`` instead (migration 0004), which also
    checks that the key is neither revoked nor expired.
    """

    def __init__(
        self,
        pool: DriverPool,
        org_id: uuid.UUID | None = None,
        *,
        user_id: uuid.UUID | None = None,
        api_key_hash: bytes | None = None,
        requires_admin: bool = False,
        statement_timeout: float | None = None,
        round_trips: RoundTrips | None = None,
    ) -> None:
        self._pool = pool
        self.round_trips = RoundTrips() if round_trips is None else round_trips
        # Transaction-local settings for the opening message (search's HNSW knobs).
        self._opening_settings: dict[str, str] = {}
        self._requires_admin = requires_admin
        self._statement_timeout_ms = (
            None if statement_timeout is None else max(1, round(statement_timeout * 1000))
        )
        self._org_id = org_id
        self._user_id = user_id
        # The caller came with an API key: the opening checks the key, not only the user.
        self._api_key_hash = api_key_hash
        self._connection: asyncpg.Connection | None = None  # as the pool gave it
        self._driver: asyncpg.Connection | None = None  # the same, traced when tracing
        self._begun = False
        self._finished = False
        # Set when a driver call failed other than by a plain SQL error: the
        # connection's state is unknown, so it must not go back to the pool.
        self._untrusted = False

    @property
    def in_transaction(self) -> bool:
        return self._begun and not self._finished

    @property
    def org_id(self) -> uuid.UUID | None:
        """The tenant every statement of this transaction is for (None: not chosen yet)."""
        return self._org_id

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
        self,
        *,
        advisory_lock: int | None = None,
        savepoint: str | None = None,
        unrecorded_key: tuple[uuid.UUID, str] | None = None,
    ) -> bool | None:
        """Open the transaction (and a first savepoint) in one round trip.

        With ``advisory_lock`` (a transaction-level lock), returns whether it
        was granted — and, with ``unrecorded_key`` (a caller and an idempotency
        key), whether that key has no live record (migration 0008) — or None
        when no lock was asked for. When not, the transaction is open all the
        same, without the lock or the savepoint, for the caller to read the
        key's record.
        """
        if self._begun or self._finished:
            raise RuntimeError("the unit of work has already begun")
        driver = await self._connect()
        try:
            self.round_trips.database += 1
            opening = self._opening(advisory_lock, savepoint, unrecorded_key)
            if isinstance(driver, _TracedDriver) and unrecorded_key is not None:
                # The span shows the statement, not the request's key inlined in it.
                shown = self._opening(advisory_lock, savepoint, unrecorded_key, shown=True)
                await driver.execute_shown(opening, shown)
            else:
                await driver.execute(opening)
        except (asyncpg.LockNotAvailableError, asyncpg.UnknownPostgresError) as exc:
            if isinstance(exc, asyncpg.UnknownPostgresError) and exc.sqlstate != KEY_RECORDED:
                self._untrusted = True
                raise
            # Held by a request with the same key, or answered already: open
            # again without the lock, so the caller can read the key's record.
            self.round_trips.database += 2
            await driver.execute("ROLLBACK")
            await driver.execute(self._opening(None, None, None))
            self._begun = True
            return False
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            self._begun = driver.is_in_transaction()
            if self._api_key_hash is not None:
                raise AuthenticationError(
                    "the API key is not valid (revoked, expired or unknown) or its user is disabled"
                ) from exc
            raise AuthenticationError("the user no longer exists or is disabled") from exc
        except asyncpg.InsufficientPrivilegeError as exc:
            self._begun = driver.is_in_transaction()
            raise PermissionDeniedError("only admins may do this") from exc
        except BaseException:
            self._untrusted = True
            raise
        self._begun = True
        return True if advisory_lock is not None else None

    def _opening(
        self,
        advisory_lock: int | None,
        savepoint: str | None,
        unrecorded_key: tuple[uuid.UUID, str] | None,
        *,
        shown: bool = False,
    ) -> str:
        # Sent by the simple query protocol, which carries several statements
        # but no parameters: every value inlined here is a UUID or an integer
        # made by this process, or an idempotency key (visible ASCII, checked
        # by idempotency.policy.parse_key) dollar-quoted with a tag it lacks.
        statements = ["BEGIN"]
        # Transaction-local settings (gone at COMMIT or ROLLBACK: a pooled
        # connection keeps none) and the caller's check, in one statement.
        settings = dict(self._opening_settings)
        if self._statement_timeout_ms is not None:
            settings["statement_timeout"] = str(int(self._statement_timeout_ms))
        calls = []
        if self._org_id is not None:
            member = uuid_literal(self._user_id) if self._user_id else "NULL"
            lock = str(int(advisory_lock)) if advisory_lock is not None else "NULL"
            admin = "true" if self._requires_admin else "false"
            org = uuid_literal(self._org_id)
            if self._api_key_hash is not None:
                # The key's digest (made here by hashlib, never request text):
                # migration 0004 checks the key is live and still the user's.
                key_hash = bytea_literal(self._api_key_hash)
                calls.append(f"itinera_begin_key({org}, {key_hash}, {member}, {lock}, {admin})")
            else:
                calls.append(f"itinera_begin({org}, {member}, {lock}, {admin})")
        # After the check: PostgreSQL evaluates a target list in order, and a
        # search's plan_cache_mode would otherwise have the check's own query
        # planned afresh on every call.
        calls.extend(_set_configs(settings))
        if calls:
            statements.append(f"SELECT {', '.join(calls)}")
        if unrecorded_key is not None:
            # A statement of its own: it reads the tenant itinera_begin has just set.
            caller, key = unrecorded_key
            statements.append(
                f"SELECT itinera_expect_unrecorded_key({uuid_literal(caller)}, "
                f"{'$key' if shown else dollar_quoted(key)})"
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

    async def use_settings(self, settings: Mapping[str, str]) -> None:
        """Transaction-local settings: folded into the opening message when it has not
        been sent yet (no round trip of their own), else applied at once."""
        if self._begun:
            await self.apply_settings(settings)
        else:
            self._opening_settings.update(settings)

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
        driver = await self._for_one_round_trip()
        return list(await driver.fetch(sql, *arguments))

    async def fetchrow(self, sql: str, arguments: Sequence[Any]) -> asyncpg.Record | None:
        driver = await self._for_one_round_trip()
        return await driver.fetchrow(sql, *arguments)

    async def fetchval(self, sql: str, arguments: Sequence[Any]) -> Any:
        driver = await self._for_one_round_trip()
        return await driver.fetchval(sql, *arguments)

    async def execute(self, sql: str, arguments: Sequence[Any]) -> str:
        driver = await self._for_one_round_trip()
        return str(await driver.execute(sql, *arguments))

    async def _for_one_round_trip(self) -> asyncpg.Connection:
        """The driver inside the transaction, counting the round trip about to be made."""
        driver = await self.driver()
        self.round_trips.database += 1
        return driver

    async def apply_settings(self, settings: Mapping[str, str]) -> None:
        """Set more transaction-local settings (search's HNSW knobs, a late tenant)."""
        driver = await self._for_one_round_trip()
        names = list(settings)
        columns = ", ".join(
            f"set_config(${2 * n + 1}, ${2 * n + 2}, true)" for n in range(len(names))
        )
        await driver.fetchrow(
            f"SELECT {columns}", *(item for name in names for item in (name, settings[name]))
        )

    async def rollback_to_savepoint(self, name: str) -> None:
        driver = await self._for_one_round_trip()
        await driver.execute(f"ROLLBACK TO SAVEPOINT {name}")

    async def commit(self, last: Inlined | None = None) -> None:
        """Commit; ``last``, a statement with its values inlined, runs first in the same
        message (one round trip for both). When it fails, nothing is committed."""
        # Finished only once it worked: after a failed COMMIT, close() tries a
        # rollback, and a connection that cannot even do that is discarded.
        if self.in_transaction:
            assert self._driver is not None
            self.round_trips.database += 1
            try:
                if last is None:
                    await self._driver.execute("COMMIT")
                elif isinstance(self._driver, _TracedDriver):
                    await self._driver.execute_shown(f"{last.sql}; COMMIT", f"{last.shown}; COMMIT")
                else:
                    await self._driver.execute(f"{last.sql}; COMMIT")
            except asyncpg.PostgresError:
                if last is None or not self._driver.is_in_transaction():
                    self._untrusted = True
                raise
            except BaseException:
                self._untrusted = True
                raise
            self._finished = True

    async def rollback(self) -> None:
        if self.in_transaction:
            assert self._driver is not None
            self.round_trips.database += 1
            await self._driver.execute("ROLLBACK")
            self._finished = True

    async def close(self) -> None:
        """End whatever is open and give the connection back to the pool.

        Usually the transaction is over and this awaits nothing. Otherwise the
        ROLLBACK is shielded from cancellation, so that the connection goes back
        clean even when the request is cancelled (client gone, server stopping);
        one whose transaction cannot be ended is discarded rather than pooled.
        """
        connection, self._connection = self._connection, None
        self._finished = True
        if connection is None:
            return
        if self._untrusted or connection.is_closed():
            self._pool.discard(connection)
            return
        if connection.is_in_transaction():
            with anyio.CancelScope(shield=True):
                try:
                    self.round_trips.database += 1
                    await connection.execute("ROLLBACK")
                except Exception:
                    self._pool.discard(connection)
                    return
        self._pool.release(connection)

    async def _connect(self) -> asyncpg.Connection:
        connection = self._connection = await self._pool.acquire()
        driver: asyncpg.Connection = connection
        tracer = current_tracer()
        if tracer is not None:
            # Only when tracing: a span around every statement sent on it.
            driver = _TracedDriver(connection, tracer)
        self._driver = driver
        return driver


class _TracedDriver:
    """The driver connection with a client span around each round trip.

    Every statement this unit of work sends goes through these five methods;
    the rest (``is_in_transaction``, ``is_closed``) is answered locally.
    """

    def __init__(self, driver: asyncpg.Connection, tracer: Tracer) -> None:
        self._driver = driver
        self._tracer = tracer

    async def execute(self, sql: str, *arguments: Any) -> Any:
        with self._tracer.sql(sql):
            return await self._driver.execute(sql, *arguments)

    async def execute_shown(self, sql: str, shown: str) -> Any:
        """Send ``sql``; the span shows ``shown`` (the same without request text)."""
        with self._tracer.sql(shown):
            return await self._driver.execute(sql)

    async def fetch(self, sql: str, *arguments: Any) -> Any:
        with self._tracer.sql(sql):
            return await self._driver.fetch(sql, *arguments)

    async def fetchrow(self, sql: str, *arguments: Any) -> Any:
        with self._tracer.sql(sql):
            return await self._driver.fetchrow(sql, *arguments)

    async def fetchval(self, sql: str, *arguments: Any) -> Any:
        with self._tracer.sql(sql):
            return await self._driver.fetchval(sql, *arguments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


def _set_configs(settings: Mapping[str, str]) -> list[str]:
    """``set_config(name, value, true)`` per setting, as SQL text, each quoted as a literal."""

    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return [f"set_config({literal(k)}, {literal(v)}, true)" for k, v in settings.items()]
