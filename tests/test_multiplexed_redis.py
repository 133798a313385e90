"""One Redis connection carrying every request's command: replies reach their own callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from itinera.multiplexed_redis import MultiplexedConnection
from tests.support.servers import RedisProcess

# Keeps Redis busy for ARGV[1] milliseconds (every client waits meanwhile): a real stall.
BUSY = """
local start = redis.call('TIME')
local finish = tonumber(start[1]) * 1000000 + tonumber(start[2]) + tonumber(ARGV[1]) * 1000
repeat
  local now = redis.call('TIME')
until tonumber(now[1]) * 1000000 + tonumber(now[2]) >= finish
return 'done'
"""


@pytest.fixture
async def client(own_redis: RedisProcess) -> AsyncIterator[Redis]:
    redis = Redis.from_url(own_redis.url)
    yield redis
    await redis.aclose()


async def test_concurrent_commands_share_one_connection_and_get_their_own_replies(
    client: Redis,
) -> None:
    multiplexed = MultiplexedConnection(client.connection_pool, stall_seconds=5)
    try:
        echoes = await asyncio.gather(*(multiplexed.execute("ECHO", n) for n in range(300)))
        ids = await asyncio.gather(*(multiplexed.execute("CLIENT", "ID") for _ in range(20)))
    finally:
        await multiplexed.aclose()
    assert echoes == [str(n).encode() for n in range(300)]
    assert len(set(ids)) == 1


async def test_an_error_reply_fails_its_own_command_only(client: Redis) -> None:
    multiplexed = MultiplexedConnection(client.connection_pool, stall_seconds=5)
    try:
        before, missing, after = await asyncio.gather(
            multiplexed.execute("ECHO", "before"),
            multiplexed.execute("EVALSHA", "0" * 40, 0),
            multiplexed.execute("ECHO", "after"),
            return_exceptions=True,
        )
    finally:
        await multiplexed.aclose()
    assert (before, after) == (b"before", b"after")
    assert isinstance(missing, NoScriptError)


async def test_a_caller_that_stops_waiting_keeps_its_place_in_line(client: Redis) -> None:
    multiplexed = MultiplexedConnection(client.connection_pool, stall_seconds=5)
    try:
        first_id = await multiplexed.execute("CLIENT", "ID")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await multiplexed.execute("EVAL", BUSY, 0, 300)
        # Sent after the abandoned command: its reply must not be that one's "done".
        assert await multiplexed.execute("ECHO", "mine") == b"mine"
        assert await multiplexed.execute("CLIENT", "ID") == first_id
    finally:
        await multiplexed.aclose()


async def test_a_stalled_connection_is_dropped_and_the_next_command_reopens_it(
    client: Redis,
) -> None:
    multiplexed = MultiplexedConnection(client.connection_pool, stall_seconds=0.05)
    try:
        first_id = await multiplexed.execute("CLIENT", "ID")
        waiting = asyncio.create_task(multiplexed.execute("ECHO", "queued"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await multiplexed.execute("EVAL", BUSY, 0, 300)
        # Every command still in flight on the dropped connection fails with it.
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await multiplexed.execute("ECHO", "again") == b"again"
        assert await multiplexed.execute("CLIENT", "ID") != first_id
    finally:
        await multiplexed.aclose()


async def test_a_lost_server_fails_the_commands_and_a_restarted_one_serves_again(
    own_redis: RedisProcess, client: Redis
) -> None:
    multiplexed = MultiplexedConnection(client.connection_pool, stall_seconds=5)
    try:
        assert await multiplexed.execute("ECHO", "up") == b"up"
        own_redis.stop()
        with pytest.raises((RedisConnectionError, OSError)):
            await multiplexed.execute("ECHO", "down")
        own_redis.start()
        assert await multiplexed.execute("ECHO", "back") == b"back"
    finally:
        await multiplexed.aclose()
