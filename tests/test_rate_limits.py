"""Per-user token buckets in Redis, raced with real concurrent requests."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from itinera.ratelimit import RateLimiter, bucket_key
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.http import assert_problem, with_key
from tests.support.rate_limits import limited, remaining, unique_address
from tests.support.servers import RedisProcess
from tests.support.tenants import Tenant

QUOTA = "https://iana.org/assignments/http-problem-types#quota-exceeded"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_headers_count_down_and_the_bucket_refuses_past_its_size(
    settings: Settings, tenant: Tenant
) -> None:
    async with running_app(limited(settings, crud=3)) as client:
        answers = [await client.get("/v1/me", headers=tenant.member.headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers:
        assert answer.headers["ratelimit-policy"] == '"crud";q=3;w=60'
        assert "x-ratelimit-limit" not in answer.headers
    assert [a.headers["ratelimit"] for a in answers[:3]] == [
        '"crud";r=2;t=20',
        '"crud";r=1;t=20',
        '"crud";r=0;t=20',
    ]
    refused = assert_problem(answers[3], 429, QUOTA)
    assert refused["violated-policies"] == ["crud"]
    assert answers[3].headers["retry-after"] == "20"
    assert answers[3].headers["ratelimit"] == '"crud";r=0;t=20'


async def test_retry_after_is_exact_after_a_partial_refill(
    settings: Settings, tenant: Tenant
) -> None:
    # 6 per minute: one token every 10 s.
    async with running_app(limited(settings, crud=6)) as client:
        for _ in range(6):
            assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 200
        emptied = time.monotonic()
        first = await client.get("/v1/me", headers=tenant.member.headers)
        await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - emptied)))
        later = await client.get("/v1/me", headers=tenant.member.headers)
    assert first.status_code == later.status_code == 429
    assert first.headers["retry-after"] == "10"
    # 1.5 s of refill at 0.1 token/s: 0.85 of a token missing → 9 s.
    assert later.headers["retry-after"] == "9"
    assert later.headers["ratelimit"] == '"crud";r=0;t=9'


async def test_a_hundred_concurrent_requests_get_exactly_the_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    async with running_app(limited(settings, crud=5)) as client:
        answers = await asyncio.gather(
            *(client.get("/v1/me", headers=tenant.member.headers) for _ in range(100))
        )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [429] * 95


async def test_two_instances_share_one_bucket(settings: Settings, tenant: Tenant) -> None:
    strict = limited(settings, crud=5)
    async with running_app(strict) as one, running_app(strict) as two:
        answers = await asyncio.gather(
            *(
                (one if n % 2 else two).get("/v1/me", headers=tenant.member.headers)
                for n in range(100)
            )
        )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [429] * 95


async def test_buckets_are_per_user(settings: Settings, tenant: Tenant) -> None:
    async with running_app(limited(settings, crud=1)) as client:
        assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 200
        assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 429
        assert (await client.get("/v1/me", headers=tenant.admin.headers)).status_code == 200


async def test_agent_runs_take_from_the_agent_bucket(settings: Settings, tenant: Tenant) -> None:
    async with running_app(limited(settings, agent=2, crud=50)) as client:
        runs = [
            await client.post(
                "/v1/agent-runs", json={"intent": "go"}, headers=with_key(tenant.member)
            )
            for _ in range(3)
        ]
        listing = await client.get("/v1/agent-runs", headers=tenant.member.headers)
    assert [r.status_code for r in runs] == [201, 201, 429]
    assert runs[0].headers["ratelimit-policy"] == '"agent";q=2;w=60'
    assert listing.status_code == 200
    assert listing.headers["ratelimit-policy"] == '"crud";q=50;w=60'


async def test_keys_are_hash_tagged_and_expire_when_idle(
    settings: Settings, tenant: Tenant, redis: Redis
) -> None:
    async with running_app(limited(settings, crud=60)) as client:
        await client.get("/v1/me", headers=tenant.member.headers)
    key = f"itinera:rl:{{user:{tenant.member.user_id}}}:crud"
    ttl = await redis.ttl(key)
    assert 0 < ttl <= 61


async def test_login_is_limited_per_address_and_email(settings: Settings, tenant: Tenant) -> None:
    def wrong_password(email: str) -> dict[str, str]:
        return {"org": tenant.slug, "email": email, "password": "wrong"}

    async with running_app(limited(settings, auth=1)) as client:
        first = await client.post("/v1/auth/login", json=wrong_password(tenant.member.email))
        again = await client.post(
            "/v1/auth/login", json=wrong_password(tenant.member.email.upper())
        )
        other_email = await client.post("/v1/auth/login", json=wrong_password(tenant.admin.email))
        # The peer is not a trusted proxy: X-Forwarded-For changes nothing.
        spoofed = await client.post(
            "/v1/auth/login",
            json=wrong_password(tenant.member.email),
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    assert (first.status_code, again.status_code, other_email.status_code) == (401, 429, 401)
    assert spoofed.status_code == 429
    assert again.headers["ratelimit-policy"] == '"auth";q=1;w=60, "auth-ip";q=100000;w=60'
    assert assert_problem(again, 429, QUOTA)["violated-policies"] == ["auth"]


async def test_password_spraying_from_one_address_runs_dry_at_the_auth_ip_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    # The attack: 80 emails, one guess each, from one address; the per-email
    # bucket never fills, the per-address one must.
    sprayer = {"X-Forwarded-For": unique_address()}
    behind_proxy = limited(settings, auth=10, auth_ip=60).replace(trusted_proxies=("127.0.0.1",))

    def guess(n: int) -> dict[str, str]:
        return {"org": tenant.slug, "email": f"guess-{n}@example.com", "password": "Winter2025!"}

    async with running_app(behind_proxy) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/auth/login", json=guess(n), headers=sprayer) for n in range(80))
        )
        elsewhere = await client.post(
            "/v1/auth/login", json=guess(0), headers={"X-Forwarded-For": unique_address()}
        )
        metrics = (await client.get("/metrics")).text
    assert sorted(a.status_code for a in answers) == [401] * 60 + [429] * 20
    for refused in (a for a in answers if a.status_code == 429):
        assert assert_problem(refused, 429, QUOTA)["violated-policies"] == ["auth-ip"]
        assert refused.headers["ratelimit-policy"] == '"auth";q=10;w=60, "auth-ip";q=60;w=60'
        # All or nothing: the refused guess left its email's bucket full.
        assert refused.headers["ratelimit"] == '"auth";r=10, "auth-ip";r=0;t=1'
        assert refused.headers["retry-after"] == "1"
    assert elsewhere.status_code == 401
    assert 'itinera_rate_limit_decisions_total{bucket="auth-ip",outcome="denied"} 20.0' in metrics


async def test_a_login_refused_for_its_email_spends_nothing_of_its_address(
    settings: Settings, tenant: Tenant
) -> None:
    address = {"X-Forwarded-For": unique_address()}
    behind_proxy = limited(settings, auth=1, auth_ip=3).replace(trusted_proxies=("127.0.0.1",))

    def login(email: str) -> dict[str, str]:
        return {"org": tenant.slug, "email": email, "password": "wrong"}

    async with running_app(behind_proxy) as client:
        answers = [
            await client.post("/v1/auth/login", json=login(email), headers=address)
            for email in (tenant.member.email, tenant.member.email, tenant.admin.email)
        ]
    assert [a.status_code for a in answers] == [401, 429, 401]
    assert assert_problem(answers[1], 429, QUOTA)["violated-policies"] == ["auth"]
    assert [remaining(a, "auth-ip") for a in answers] == [2, 2, 1]


async def test_login_buckets_share_the_client_address_hash_tag(
    settings: Settings, tenant: Tenant, redis: Redis
) -> None:
    # One EVALSHA touches both keys; on Redis Cluster they must share a slot.
    address = unique_address()
    behind_proxy = limited(settings, auth=10, auth_ip=60).replace(trusted_proxies=("127.0.0.1",))
    async with running_app(behind_proxy) as client:
        await client.post(
            "/v1/auth/login",
            json={"org": tenant.slug, "email": tenant.member.email, "password": "wrong"},
            headers={"X-Forwarded-For": address},
        )
    tag = f"itinera:rl:{{ip:{address}}}"
    digest = hashlib.sha256(tenant.member.email.lower().encode()).hexdigest()[:32]
    keys = {key.decode() async for key in redis.scan_iter(match=f"{tag}:*")}
    assert keys == {f"{tag}:auth:login:{digest}", f"{tag}:auth-ip:login"}
    for key in keys:
        assert 0 < await redis.ttl(key) <= 61


async def test_trusted_proxies_forward_the_client_address(
    settings: Settings, tenant: Tenant
) -> None:
    behind_proxy = limited(settings, auth=1).replace(trusted_proxies=("127.0.0.1",))
    body = {"refresh_token": f"{tenant.org_id}.{'A' * 43}"}
    async with running_app(behind_proxy) as client:
        a = await client.post(
            "/v1/auth/refresh", json=body, headers={"X-Forwarded-For": "198.51.100.1"}
        )
        a2 = await client.post(
            "/v1/auth/refresh", json=body, headers={"X-Forwarded-For": "198.51.100.1"}
        )
        b = await client.post(
            "/v1/auth/refresh", json=body, headers={"X-Forwarded-For": "198.51.100.2, 127.0.0.1"}
        )
    assert (a.status_code, a2.status_code, b.status_code) == (401, 429, 401)


async def test_one_decision_never_spans_two_hash_tags(settings: Settings, redis: Redis) -> None:
    # Redis Cluster would refuse it (CROSSSLOT), and the limiter would fail open.
    limiter = RateLimiter(redis, settings)
    auth = limiter.policies["auth"]
    apart = [(auth, bucket_key("ip:192.0.2.1", "a")), (auth, bucket_key("ip:192.0.2.2", "b"))]
    with pytest.raises(ValueError, match="hash tag"):
        await limiter.take(apart)


@pytest.mark.slow
async def test_redis_down_fails_open_by_default(
    settings: Settings, tenant: Tenant, own_redis: RedisProcess
) -> None:
    async with running_app(limited(settings, crud=2).replace(redis_url=own_redis.url)) as client:
        assert "ratelimit" in (await client.get("/v1/me", headers=tenant.member.headers)).headers
        own_redis.stop()
        answers = [await client.get("/v1/me", headers=tenant.member.headers) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert all("ratelimit" not in a.headers for a in answers)
        metrics = (await client.get("/metrics")).text
        assert (
            'itinera_rate_limit_decisions_total{bucket="crud",outcome="unavailable"} 5.0' in metrics
        )
        own_redis.start()
        back = await client.get("/v1/me", headers=tenant.member.headers)
        assert back.headers["ratelimit"].startswith('"crud";r=')


@pytest.mark.slow
async def test_redis_down_fails_closed_when_configured(
    settings: Settings, tenant: Tenant, own_redis: RedisProcess
) -> None:
    strict = settings.replace(redis_url=own_redis.url, rate_limit_fail_open=False)
    async with running_app(strict) as client:
        own_redis.stop()
        refused = await client.get("/v1/me", headers=tenant.member.headers)
        health = await client.get("/health")
    assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert health.status_code == 200


async def test_a_users_chat_turn_takes_from_the_agent_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    async with running_app(limited(settings, agent=1, crud=50)) as client:
        session = await client.post("/v1/chat/sessions", json={}, headers=tenant.member.headers)
        url = f"{session.headers['location']}/messages"
        turns = [
            await client.post(
                url, json={"role": role, "content": "hi"}, headers=tenant.member.headers
            )
            for role in ("user", "user", "assistant")
        ]
    assert [t.status_code for t in turns] == [201, 429, 201]
    assert turns[0].headers["ratelimit-policy"] == '"agent";q=1;w=60'
    assert turns[2].headers["ratelimit-policy"] == '"crud";q=50;w=60'


async def test_a_redis_that_forgot_the_script_gets_it_again(
    settings: Settings, tenant: Tenant, redis: Redis
) -> None:
    async with running_app(limited(settings, crud=10)) as client:
        first = await client.get("/v1/me", headers=tenant.member.headers)
        await redis.script_flush()
        second = await client.get("/v1/me", headers=tenant.member.headers)
    assert first.headers["ratelimit"].startswith('"crud";r=9')
    assert second.headers["ratelimit"].startswith('"crud";r=8')
