"""One Redis connection shared by every request in flight, replies matched in order.

Redis answers the commands of one connection in the order it received them,
so a single connection can carry the commands of all concurrent requests at
once: each writes its command and waits for the reply that comes back in its
place. Compared with taking a pooled connection for each command, a request
pays no checkout or release, no per-command timeout task, and waits on one
future that one reader task completes. (redis-rs calls the same thing a
multiplexed connection; redis-py has none.)

redis-py still opens the connection — URL, unix socket, TLS, credentials,
database — from the client's pool settings, and parses the replies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


class MultiplexedConnection:
    """Commands from many tasks on one connection; opened on first use, again after a loss.

    A command whose caller stops waiting (a timeout, a client gone) keeps its
    place: its reply is read and dropped, so the replies after it still reach
    their own callers. When the oldest command has waited ``stall_seconds``
    and a caller gives up, the connection is dropped and every command still
    waiting fails, as a socket timeout would fail it.
    """

    def __init__(self, pool: ConnectionPool, *, stall_seconds: float) -> None:
        self._pool = pool
        self._stall_seconds = stall_seconds
        self._connection: AbstractConnection | None = None
        self._opening = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        # Per command in flight, oldest first: its caller's future and when it was sent.
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._closing: set[asyncio.Task[None]] = set()

    async def execute(self, *arguments: str | int | float) -> Any:
        """Send one command and return its reply (raising an error reply as redis-py does)."""
        connection = self._connection
        if connection is None or not connection.is_connected:
            connection = await self._open()
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        # The command is written before anything is awaited, so the order of
        # the commands on the wire is the order of their futures here.
        self._waiting.append((reply, loop.time()))
        try:
            await connection.send_packed_command(
                connection.pack_command(*arguments), check_health=False
            )
            return await reply
        except asyncio.CancelledError:
            self._drop_if_stalled(connection, loop.time())
            raise
        except (OSError, RedisConnectionError) as exc:
            # Failed here: nobody is left to read its outcome.
            if not reply.cancel() and not reply.cancelled():
                reply.exception()
            self._drop(connection, exc)
            raise

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._fail_waiting(RedisConnectionError("the connection was closed"))
            await connection.disconnect()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for closing in list(self._closing):
            with contextlib.suppress(Exception):
                await closing

    async def _open(self) -> AbstractConnection:
        """The live connection, opened by the first caller that finds none; the rest wait."""
        async with self._opening:
            connection = self._connection
            if connection is not None and not connection.is_connected:
                # Lost while its loser had not yet said so: its commands fail
                # with it, before a new connection could be handed their replies.
                self._drop(connection, RedisConnectionError("the connection was lost"))
                connection = None
            if connection is None:
                connection = await self._connect()
            return connection

    async def _connect(self) -> AbstractConnection:
        # The pool's own settings, without the per-read socket timeout: replies
        # are read by one task that waits for as long as commands are pending.
        options = {**self._pool.connection_kwargs, "socket_timeout": None}
        connection: AbstractConnection = self._pool.connection_class(**options)
        await connection.connect()  # type: ignore[no-untyped-call]
        self._connection = connection
        self._reader = asyncio.create_task(self._read_replies(connection))
        return connection

    async def _read_replies(self, connection: AbstractConnection) -> None:
        try:
            while True:
                try:
                    reply = await connection.read_response(disconnect_on_error=False)
                except ResponseError as error:
                    # An error reply (NOSCRIPT, a script error): for its command alone.
                    reply = error
                future, _ = self._waiting.popleft()
                if future.done():
                    continue  # its caller stopped waiting
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The connection is lost (or sent a reply nobody asked for).
            self._drop(connection, exc)

    def _drop_if_stalled(self, connection: AbstractConnection, now: float) -> None:
        if self._waiting and now - self._waiting[0][1] >= self._stall_seconds:
            self._drop(connection, RedisConnectionError("Redis stopped answering"))

    def _drop(self, connection: AbstractConnection, exc: BaseException) -> None:
        """Fail the commands in flight on ``connection`` and close it (the next command reopens)."""
        if self._connection is not connection:
            return
        self._connection = None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        self._fail_waiting(
            exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(str(exc))
        )
        closing = asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _fail_waiting(self, exc: BaseException) -> None:
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(exc)
