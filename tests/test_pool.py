"""The request pool: real connections of the service role, handed out first come first served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from itinera.db.pool import DriverPool, PoolTimeoutError, driver_connect
from itinera.settings import Settings


def pool_of(
    settings: Settings,
    *,
    size: int,
    overflow: int = 0,
    timeout: float = 5,
    overflow_idle_seconds: float = 5,
) -> DriverPool:
    assert settings.database_url is not None
    connect = driver_connect(settings.database_url, settings, application_name="pool-tests")
    return DriverPool(
        connect,
        size=size,
        overflow=overflow,
        timeout=timeout,
        overflow_idle_seconds=overflow_idle_seconds,
    )


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[DriverPool]:
    pool = pool_of(settings, size=1, timeout=2)
    yield pool
    await pool.close()


async def backend_pid(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def test_a_connection_given_back_is_the_next_one_handed_out(
    one_connection: DriverPool,
) -> None:
    first = await one_connection.acquire()
    pid = await backend_pid(first)
    one_connection.release(first)
    again = await one_connection.acquire()
    assert await backend_pid(again) == pid
    one_connection.release(again)
    assert one_connection.usage() == {"checked_out": 0, "idle": 1, "size": 1, "overflow": 0}


async def test_waiters_are_served_in_arrival_order(one_connection: DriverPool) -> None:
    held = await one_connection.acquire()
    served: list[int] = []

    async def wait_then_give_back(n: int) -> None:
        connection = await one_connection.acquire()
        served.append(n)
        one_connection.release(connection)

    waiters = []
    for n in range(5):
        waiters.append(asyncio.create_task(wait_then_give_back(n)))
        await asyncio.sleep(0.01)  # arrive one after another
    one_connection.release(held)
    await asyncio.gather(*waiters)
    assert served == [0, 1, 2, 3, 4]


async def test_a_wait_past_the_timeout_fails_and_leaves_no_waiter_behind(
    settings: Settings,
) -> None:
    pool = pool_of(settings, size=1, timeout=0.2)
    try:
        held = await pool.acquire()
        with pytest.raises(PoolTimeoutError):
            await pool.acquire()
        pool.release(held)
        # The timed-out waiter took nothing: the connection is idle, not lost.
        assert pool.usage()["idle"] == 1
        connection = await pool.acquire()
        pool.release(connection)
    finally:
        await pool.close()


async def test_a_cancelled_waiter_does_not_swallow_a_connection(one_connection: DriverPool) -> None:
    held = await one_connection.acquire()
    waiter = asyncio.create_task(one_connection.acquire())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    one_connection.release(held)
    connection = await asyncio.wait_for(one_connection.acquire(), timeout=1)
    one_connection.release(connection)


async def test_a_discarded_connection_is_replaced_and_the_idle_ones_dropped(
    settings: Settings,
) -> None:
    pool = pool_of(settings, size=2)
    try:
        a, b = await pool.acquire(), await pool.acquire()
        pid_b = await backend_pid(b)
        pool.release(b)
        pool.discard(a)  # as after a server restart: the idle one goes too
        assert a.is_closed()
        assert b.is_closed()
        fresh = await pool.acquire()
        assert await backend_pid(fresh) != pid_b
        pool.release(fresh)
        assert pool.usage()["idle"] == 1
    finally:
        await pool.close()


async def test_a_waiter_takes_the_place_of_a_discarded_connection(
    one_connection: DriverPool,
) -> None:
    held = await one_connection.acquire()
    waiter = asyncio.create_task(one_connection.acquire())
    await asyncio.sleep(0.05)
    one_connection.discard(held)  # the waiter opens a connection in its place
    fresh = await asyncio.wait_for(waiter, timeout=2)
    assert one_connection.usage() == {"checked_out": 1, "idle": 0, "size": 1, "overflow": 0}
    one_connection.release(fresh)
    again = await asyncio.wait_for(one_connection.acquire(), timeout=2)
    one_connection.release(again)


async def test_past_size_a_connection_idle_for_a_while_is_closed(settings: Settings) -> None:
    pool = pool_of(settings, size=1, overflow=1, overflow_idle_seconds=0.3)
    try:
        a, b = await pool.acquire(), await pool.acquire()
        assert pool.usage()["overflow"] == 1
        # A dip in the load: both back, both kept for the next requests.
        pool.release(a)
        pool.release(b)
        assert pool.usage() == {"checked_out": 0, "idle": 2, "size": 1, "overflow": 1}
        again = await pool.acquire()
        assert again is b  # the one used last
        pool.release(again)
        await asyncio.sleep(0.15)
        assert not a.is_closed()
        # The one idle longest goes once idle for overflow_idle_seconds (in the background).
        await asyncio.sleep(0.4)
        assert a.is_closed()
        assert not b.is_closed()
        assert pool.usage() == {"checked_out": 0, "idle": 1, "size": 1, "overflow": 0}
    finally:
        await pool.close()


async def test_a_connection_reused_before_its_idle_time_is_up_stays_open(
    settings: Settings,
) -> None:
    pool = pool_of(settings, size=1, overflow=1, overflow_idle_seconds=0.3)
    try:
        a, b = await pool.acquire(), await pool.acquire()
        pool.release(a)
        pool.release(b)
        await asyncio.sleep(0.2)
        # Both busy again before the first has been idle long enough.
        first, second = await pool.acquire(), await pool.acquire()
        assert {first, second} == {a, b}
        await asyncio.sleep(0.4)
        assert not a.is_closed()
        assert not b.is_closed()
        assert pool.usage()["checked_out"] == 2
        pool.release(first)
        pool.release(second)
    finally:
        await pool.close()


async def test_a_closed_pool_closes_its_connections(settings: Settings) -> None:
    pool = pool_of(settings, size=1)
    connection = await pool.acquire()
    pool.release(connection)
    await pool.close()
    assert connection.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.acquire()
