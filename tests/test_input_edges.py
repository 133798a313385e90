"""A body that is not JSON is 400 on every route that takes one, whatever else is wrong with it.

msgspec's typed decoder stops at the first problem it meets, so a schema error
early in the text (an unknown field) would otherwise hide a syntax error later.
The routes come from the app's own declarations: a new one is covered as it lands.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from itinera.app import all_operations
from tests.support.http import assert_problem, with_key
from tests.support.tenants import Tenant

WITH_BODY = [
    pytest.param(op.method, op.path, id=f"{op.method} {op.path}")
    for op in all_operations()
    if op.body_type is not None
]

NOT_JSON = [
    pytest.param(b'{"a": 1,}', id="unknown-field-then-trailing-comma"),
    pytest.param(b'{"title": "x",}', id="title-then-trailing-comma"),
    pytest.param(b"[1,]", id="array-with-trailing-comma"),
    pytest.param(b'{"title": "x"} garbage', id="trailing-garbage"),
    pytest.param(b'{"a": 1}{"a": 1}', id="two-documents"),
    pytest.param(b'{"a": 1, "b": 1e999,}', id="out-of-range-number-then-trailing-comma"),
    pytest.param(b'{"a": 1, "b": "\xff"}', id="unknown-field-then-invalid-utf8"),
    pytest.param(b'{"a": 1, "b": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="unknown-then-deep"),
    pytest.param(b'{"a": 1, "b": [1 2]}', id="unknown-field-then-missing-comma"),
]

STILL_JSON = [
    pytest.param(b'{"a": 1}', id="unknown-field"),
    pytest.param(b"[1]", id="array"),
    pytest.param(b'{"a": 1e999}', id="out-of-range-number"),
]


def concrete(path: str) -> str:
    """A path to send to: fresh UUIDs for ``{…:uuid}`` (decoding comes before any lookup)."""
    path = re.sub(r"\{[a-z_]+:uuid\}", lambda _: str(uuid.uuid4()), path)
    return re.sub(r"\{[a-z_]+(?::[a-z]+)?\}", "x", path)


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
@pytest.mark.parametrize("raw", NOT_JSON)
async def test_a_body_that_is_not_json_is_400_whatever_else_is_wrong(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, raw: bytes
) -> None:
    headers = with_key(tenant.admin, **{"Content-Type": "application/json"})
    response = await client.request(method, concrete(path), content=raw, headers=headers)
    body = assert_problem(response, 400, "/problems/malformed")
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
@pytest.mark.parametrize("raw", STILL_JSON)
async def test_json_that_breaks_the_schema_is_still_422(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, raw: bytes
) -> None:
    headers = with_key(tenant.admin, **{"Content-Type": "application/json"})
    response = await client.request(method, concrete(path), content=raw, headers=headers)
    assert_problem(response, 422, "/problems/validation")
