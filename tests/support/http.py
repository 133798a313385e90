"""Small request helpers shared by the API tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.tenants import Account


def with_key(account: Account, **extra: str) -> dict[str, str]:
    """The account's auth headers plus a fresh Idempotency-Key."""
    return {**account.headers, "Idempotency-Key": f"test-{uuid.uuid4()}", **extra}


def assert_problem(response: httpx.Response, status: int, type_: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    if type_ is not None:
        assert body["type"] == type_
    return body
