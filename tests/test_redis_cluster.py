"""Rate limits and readiness on a real Redis Cluster: three primaries on loopback ports."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest
from redis.crc import key_slot
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.lifespan import open_redis
from itinera.ratelimit import SCRIPT_SHA, bucket_key
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.http import assert_problem
from tests.support.rate_limits import limited
from tests.support.redis_cluster import NodeProcess, RedisClusterProcesses, redis_cluster
from tests.support.tenants import Account, Tenant, add_user


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProcesses]:
    with redis_cluster() as running:
        yield running


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterProcesses]:
    """A cluster of this test's own, which it may break."""
    with redis_cluster() as running:
        yield running


def on_cluster(settings: Settings, cluster: RedisClusterProcesses, **changes: object) -> Settings:
    return limited(settings, crud=60).replace(redis_url=cluster.url, redis_cluster=True, **changes)


def crud_key(account: Account) -> str:
    return bucket_key(f"user:{account.user_id}", "crud")


async def users_on_every_primary(
    engine: AsyncEngine, settings: Settings, tenant: Tenant, cluster: RedisClusterProcesses
) -> dict[str, Account]:
    """Per primary (by address), a fresh member whose buckets it owns.

    User ids are random: make members until every primary owns one (three
    primaries: 20 members miss one with a chance of about 1 in 1000, 60 of 1e10).
    """
    owned: dict[str, Account] = {}
    for _ in range(60):
        user = await add_user(engine, settings, tenant.org_id, "member")
        owned.setdefault(cluster.node_of(crud_key(user)).name, user)
        if len(owned) == len(cluster.nodes):
            return owned
    raise AssertionError(f"60 users left a primary without buckets: {sorted(owned)}")


def server_seconds(node: NodeProcess) -> float:
    with node.client() as client:
        seconds, micros = client.time()
    return int(seconds) + int(micros) / 1_000_000


def is_decided(answer: httpx.Response) -> bool:
    """The limiter decided (a failed-open request carries no RateLimit fields)."""
    return "ratelimit" in answer.headers


@pytest.mark.slow
async def test_a_hundred_concurrent_requests_of_one_user_get_exactly_the_bucket(
    settings: Settings, tenant: Tenant, cluster: RedisClusterProcesses
) -> None:
    owner = cluster.node_of(crud_key(tenant.member))
    async with running_app(on_cluster(settings, cluster)) as client:
        started = server_seconds(owner)
        answers = await asyncio.gather(
            *(client.get("/v1/me", headers=tenant.member.headers) for _ in range(100))
        )
        elapsed = server_seconds(owner) - started
    assert all(is_decided(a) for a in answers)
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 429}
    # 60 per minute refills one token a second, on the owner's clock.
    assert 60 <= statuses.count(200) <= 60 + math.floor(elapsed)


@pytest.mark.slow
async def test_buckets_of_different_users_live_on_different_primaries(
    settings: Settings,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    cluster: RedisClusterProcesses,
) -> None:
    users = await users_on_every_primary(owner_engine, settings, tenant, cluster)
    async with running_app(on_cluster(settings, cluster)) as client:
        for user in users.values():
            answer = await client.get("/v1/me", headers=user.headers)
            assert answer.headers["ratelimit"] == '"crud";r=59;t=1'
    keys = {crud_key(user) for user in users.values()}
    # The client's slot (redis-py's CRC16 of the hash tag) is the servers'.
    slots = {cluster.slot_of(key) for key in keys}
    assert slots == {key_slot(key.encode()) for key in keys}
    assert len(slots) == len(cluster.nodes)
    for node in cluster.nodes:
        with node.client() as direct:
            stored = {key.decode() for key in direct.scan_iter(match="itinera:rl:*")}
        assert stored & keys == {crud_key(users[node.name])}


@pytest.mark.slow
async def test_every_primary_that_forgot_the_script_gets_it_again_from_its_own_users(
    settings: Settings,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    cluster: RedisClusterProcesses,
) -> None:
    users = await users_on_every_primary(owner_engine, settings, tenant, cluster)
    async with running_app(on_cluster(settings, cluster)) as client:
        first = [await client.get("/v1/me", headers=u.headers) for u in users.values()]
        for node in cluster.nodes:
            with node.client() as direct:
                direct.script_flush()
                direct.config_resetstat()
        second = [await client.get("/v1/me", headers=u.headers) for u in users.values()]
    assert [a.headers["ratelimit"] for a in first] == ['"crud";r=59;t=1'] * 3
    assert [a.headers["ratelimit"] for a in second] == ['"crud";r=58;t=1'] * 3
    for node in cluster.nodes:
        with node.client() as direct:
            commands = direct.info("commandstats")
            errors = direct.info("errorstats")
            assert direct.script_exists(SCRIPT_SHA) == [True]
        # One NOSCRIPT, one load where it came from (not on every primary), one decision.
        assert errors["errorstat_NOSCRIPT"]["count"] == 1
        assert commands["cmdstat_script|load"]["calls"] == 1
        assert commands["cmdstat_evalsha"]["calls"] == 2


@pytest.mark.slow
async def test_a_killed_primary_fails_open_for_its_users_only(
    settings: Settings,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    own_cluster: RedisClusterProcesses,
) -> None:
    users = await users_on_every_primary(owner_engine, settings, tenant, own_cluster)
    # The node REDIS_URL names: the client must go on with the ones it discovered.
    victim = own_cluster.nodes[0]
    survivors = {name: user for name, user in users.items() if name != victim.name}
    small = on_cluster(settings, own_cluster, rate_limit_crud_per_minute=5)
    async with running_app(small) as client:
        assert (await client.get("/ready")).json()["checks"]["redis"] == {"status": "ok"}
        own_cluster.kill(victim)
        # Interleaved, so each survivor's request follows a failure on the victim.
        answers: dict[str, list[httpx.Response]] = {name: [] for name in users}
        for _ in range(8):
            for name, user in users.items():
                answers[name].append(await client.get("/v1/me", headers=user.headers))
        # The survivors lose their scripts: loaded again though a primary is down.
        for node in own_cluster.live_nodes:
            with node.client() as direct:
                direct.script_flush()
        after_flush = [await client.get("/v1/me", headers=u.headers) for u in survivors.values()]
        ready = await client.get("/ready")
        metrics = (await client.get("/metrics")).text
    failed_open = answers.pop(victim.name)
    assert [a.status_code for a in failed_open] == [200] * 8
    assert not any(is_decided(a) for a in failed_open)
    for limited_normally in answers.values():
        assert [a.status_code for a in limited_normally] == [200] * 5 + [429] * 3
        assert all(is_decided(a) for a in limited_normally)
    assert [a.status_code for a in after_flush] == [429, 429]
    assert all(is_decided(a) for a in after_flush)
    for node in own_cluster.live_nodes:
        with node.client() as direct:
            assert direct.script_exists(SCRIPT_SHA) == [True]
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == {
        "status": "degraded",
        "detail": "1 of 3 primaries not serving: ConnectionError",
    }
    assert 'itinera_rate_limit_decisions_total{bucket="crud",outcome="unavailable"} 8.0' in metrics


@pytest.mark.slow
async def test_a_killed_primary_refuses_its_users_when_failing_closed(
    settings: Settings,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    own_cluster: RedisClusterProcesses,
) -> None:
    users = await users_on_every_primary(owner_engine, settings, tenant, own_cluster)
    victim = own_cluster.nodes[1]
    strict = on_cluster(settings, own_cluster, rate_limit_fail_open=False)
    async with running_app(strict) as client:
        assert (await client.get("/ready")).status_code == 200
        own_cluster.kill(victim)
        answers = {
            name: [await client.get("/v1/me", headers=user.headers) for _ in range(3)]
            for name, user in users.items()
        }
        ready = await client.get("/ready")
    for name, answered in answers.items():
        if name == victim.name:
            for refused in answered:
                assert_problem(refused, 503)
                assert refused.headers["retry-after"] == "1"
        else:
            assert [a.headers["ratelimit"] for a in answered] == [
                '"crud";r=59;t=1',
                '"crud";r=58;t=1',
                '"crud";r=57;t=1',
            ]
    # Most users are served: the service stays in rotation, degraded.
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"]["status"] == "degraded"


def test_a_cluster_is_named_by_a_tcp_url(settings: Settings) -> None:
    # The embedded Redis (a unix socket) is not a cluster.
    unix = settings.replace(redis_url="unix:///tmp/redis.sock", redis_cluster=True)
    with pytest.raises(RuntimeError, match="ITINERA_REDIS_CLUSTER"):
        open_redis(unix)
