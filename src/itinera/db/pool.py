"""The driver connections units of work run on: asyncpg connections, first come first served.

A unit of work needs nothing of an ORM pool: it begins and ends its own
transaction, and every setting it makes is transaction-local. So checking a
connection out is taking one from a list, and giving it back (its transaction
over) is putting it back, or handing it straight to the oldest waiter — no
reset query, no greenlet, no cancel scope on the way.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from pgvector.asyncpg import register_vector
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url

from itinera.settings import Settings

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# Options of SQLAlchemy's asyncpg adapter that a URL may carry: not asyncpg's own.
_ADAPTER_OPTIONS = ("prepared_statement_cache_size", "prepared_statement_name_func")


class PoolTimeoutError(TimeoutError):
    """No connection came free within the pool's timeout."""


class DriverPool:
    """Up to ``size + overflow`` connections, opened when first needed; past
    ``size``, a connection is closed once it has been idle for
    ``overflow_idle_seconds`` (a load that keeps more than ``size`` busy keeps
    them open, and one that dips for a moment does not pay for opening them
    again: a new connection costs PostgreSQL a process and this side its type
    introspection and statement preparation).

    Waiters are served in arrival order: a connection given back goes to the
    oldest waiter, never to a newcomer. A connection that cannot be trusted
    (its server went away, a statement was cut off mid-protocol) is
    ``discard``-ed, and the idle ones with it: after a failover they are as dead.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        size: int,
        overflow: int = 0,
        timeout: float,
        recycle_seconds: float | None = None,
        pre_ping: bool = False,
        overflow_idle_seconds: float = 5.0,
    ) -> None:
        self._connect = connect
        self.size = size
        self.overflow = overflow
        self._timeout = timeout
        self._recycle_seconds = recycle_seconds
        self._pre_ping = pre_ping
        self._overflow_idle_seconds = overflow_idle_seconds
        # (connection, idle since), taken from the end: the first have been idle longest.
        self._idle: deque[tuple[asyncpg.Connection, float]] = deque()
        self._trim: asyncio.TimerHandle | None = None
        self._opened_at: dict[asyncpg.Connection, float] = {}
        # A waiter's future gets a connection, or None: "open one of your own".
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self._closing: set[asyncio.Task[None]] = set()

    def usage(self) -> dict[str, int]:
        """Connections by state, as the metrics report pools."""
        return {
            "checked_out": self._open - len(self._idle),
            "idle": len(self._idle),
            "size": self.size,
            "overflow": max(0, self._open - self.size),
        }

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every checkout and checkin (metrics of several workers)."""
        self._listeners.append(listener)

    async def acquire(self) -> asyncpg.Connection:
        connection = await self._acquire()
        for listener in self._listeners:
            listener()
        return connection

    async def _acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise RuntimeError("the pool is closed")
        while self._idle:
            connection, _ = self._idle.pop()
            if await self._usable(connection):
                return connection
        if self._open < self.size + self.overflow:
            return await self._open_one()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                handed = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as we gave up: pass it on.
                self._pass_on(waiter.result())
            else:
                waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise PoolTimeoutError(
                    f"no database connection came free within {self._timeout} s"
                ) from None
            raise
        if handed is None:
            # A place freed by a dropped connection: still counted, now ours.
            return await self._open_one(place_counted=True)
        return handed

    def release(self, connection: asyncpg.Connection) -> None:
        """Give back a connection whose transaction is over."""
        if self._closed or self._expired(connection):
            self.discard(connection, idle_too=False)
        else:
            self._pass_on(connection)
        for listener in self._listeners:
            listener()

    def discard(self, connection: asyncpg.Connection, *, idle_too: bool = True) -> None:
        """Drop a connection that cannot be trusted (and, by default, the idle ones)."""
        dropped = [connection, *(idle for idle, _ in self._idle if idle_too)]
        if idle_too:
            self._idle.clear()
        for each in dropped:
            self._drop(each)

    async def close(self) -> None:
        self._closed = True
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        idle, self._idle = self._idle, deque()
        for connection, _ in idle:
            self._opened_at.pop(connection, None)
            self._open -= 1
            await _close(connection)
        while self._waiters:
            self._waiters.popleft().cancel()
        for closing in list(self._closing):
            await closing

    def _pass_on(self, connection: asyncpg.Connection | None) -> None:
        """To the oldest live waiter, else to the idle list (None: a free place to open)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
            return
        self._idle.append((connection, time.monotonic()))
        if len(self._idle) > self.size and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(
                self._overflow_idle_seconds, self._close_long_idle
            )

    def _close_long_idle(self) -> None:
        """Close the connections past ``size`` idle for ``overflow_idle_seconds``."""
        self._trim = None
        now = time.monotonic()
        while len(self._idle) > self.size:
            idle_for = now - self._idle[0][1]
            if idle_for < self._overflow_idle_seconds:
                self._trim = asyncio.get_running_loop().call_later(
                    self._overflow_idle_seconds - idle_for, self._close_long_idle
                )
                return
            connection, _ = self._idle.popleft()
            self._opened_at.pop(connection, None)
            self._open -= 1
            closing = asyncio.get_running_loop().create_task(_close(connection))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _drop(self, connection: asyncpg.Connection) -> None:
        self._opened_at.pop(connection, None)
        if not connection.is_closed():
            connection.terminate()
        # Its place goes to a waiter, which opens a connection of its own.
        self._pass_on(None)

    async def _open_one(self, *, place_counted: bool = False) -> asyncpg.Connection:
        if not place_counted:
            self._open += 1
        try:
            connection = await self._connect()
        except BaseException:
            self._pass_on(None)
            raise
        self._opened_at[connection] = time.monotonic()
        return connection

    def _expired(self, connection: asyncpg.Connection) -> bool:
        if connection.is_closed():
            return True
        if self._recycle_seconds is None:
            return False
        opened = self._opened_at.get(connection)
        return opened is not None and time.monotonic() - opened > self._recycle_seconds

    async def _usable(self, connection: asyncpg.Connection) -> bool:
        if self._expired(connection):
            self.discard(connection, idle_too=False)
            return False
        if not self._pre_ping:
            return True
        try:
            await connection.execute("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.discard(connection, idle_too=False)
            return False
        return True


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        connection.terminate()


def driver_connect(
    url: str, settings: Settings, *, application_name: str, binary_vectors: bool = True
) -> Connect:
    """How to open one connection of ``url``'s role, configured like the engines'."""
    _, options = PGDialect_asyncpg().create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    for name in _ADAPTER_OPTIONS:
        options.pop(name, None)
    arguments: dict[str, Any] = {
        **options,
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "server_settings": {"application_name": application_name},
        # See itinera.db.engine: 0 for transaction-mode poolers.
        "statement_cache_size": settings.db_statement_cache_size,
    }

    async def connect() -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(**arguments)
        try:
            await _use_codecs(connection, binary_vectors=binary_vectors)
        except BaseException:
            connection.terminate()
            raise
        return connection

    return connect


async def _use_codecs(connection: asyncpg.Connection, *, binary_vectors: bool) -> None:
    """JSON as the statements compiled by SQLAlchemy bind it (already serialised
    text, see ``itinera.db.prepared``) and decoded by msgspec; vectors binary."""
    await connection.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=msgspec.json.decode,
        schema="pg_catalog",
        format="binary",
    )
    await connection.set_type_codec(
        "jsonb",
        # Binary jsonb is its text after a version byte, 1.
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: msgspec.json.decode(memoryview(data)[1:]),
        schema="pg_catalog",
        format="binary",
    )
    if binary_vectors:
        # Vectors cross the wire in pgvector's binary form: 4 bytes a dimension,
        # no text to format or parse (a 1536-dimension vector as text is ~15 KB).
        await register_vector(connection)


def request_pool(url: str, settings: Settings, *, application_name: str) -> DriverPool:
    return DriverPool(
        driver_connect(url, settings, application_name=application_name),
        size=settings.db_pool_size,
        overflow=settings.db_max_overflow,
        timeout=settings.db_pool_timeout_seconds,
        recycle_seconds=settings.db_pool_recycle_seconds,
        pre_ping=settings.db_pool_pre_ping,
    )
