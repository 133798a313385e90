"""Helpers for driving the rate limits: small buckets, fresh client addresses, field parsing."""

from __future__ import annotations

import ipaddress
import uuid

import httpx

from itinera.settings import Settings


def limited(settings: Settings, **per_minute: int) -> Settings:
    """Small buckets; a patient Redis timeout, so a busy test machine never fails open here."""
    buckets = {f"rate_limit_{name}_per_minute": n for name, n in per_minute.items()}
    return settings.replace(redis_timeout_seconds=5.0, **buckets)


def unique_address() -> str:
    """An address (2001:db8::/32, documentation) no other test's buckets are keyed by."""
    documentation = int(ipaddress.IPv6Address("2001:db8::"))
    return str(ipaddress.IPv6Address(documentation | uuid.uuid4().int >> 32))


def unique_proxy() -> str:
    """An address in 10.0.0.0/8 (trusted in these tests), unlikely to repeat in a session."""
    return str(
        ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) | uuid.uuid4().int >> 104)
    )


def remaining(response: httpx.Response, policy: str) -> int:
    """``r`` of ``policy`` in the response's RateLimit field (a list of one item per bucket)."""
    for item in response.headers["ratelimit"].split(","):
        name, *parameters = item.strip().split(";")
        if name == f'"{policy}"':
            return int(dict(p.split("=", 1) for p in parameters)["r"])
    raise AssertionError(f"no {policy!r} in RateLimit: {response.headers['ratelimit']}")
