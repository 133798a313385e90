"""A header sent as several lines: one list where the standard says so, else refused.

A decision taken on the first line alone can be steered by whoever writes the
others (a client behind a proxy that reads another line, say).
"""

from __future__ import annotations

import httpx

from tests.support.http import assert_problem, with_key
from tests.support.tenants import Tenant

TRIP = {"title": "Two lines", "start_date": "2027-03-01", "end_date": "2027-03-02"}


async def test_two_authorization_lines_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for first, second in (
        (tenant.member.headers, tenant.admin.headers),
        ({"Authorization": "Bearer junk"}, tenant.admin.headers),
        (tenant.admin.headers, {"Authorization": "Bearer junk"}),
    ):
        headers = [("Authorization", first["Authorization"]), *second.items()]
        refused = await client.get("/v1/users", headers=headers)
        body = assert_problem(refused, 401)
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_request"'
        assert body["detail"] == "send one Authorization header"


async def test_two_idempotency_key_lines_are_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = [
        *tenant.member.headers.items(),
        ("Idempotency-Key", "k1"),
        ("Idempotency-Key", "k2"),
    ]
    assert_problem(await client.post("/v1/itineraries", json=TRIP, headers=headers), 400)
    listed = await client.get("/v1/itineraries", headers=tenant.member.headers)
    assert listed.json()["items"] == []


async def test_two_content_type_lines_are_415(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = [
        *with_key(tenant.member).items(),
        ("Content-Type", "application/json"),
        ("Content-Type", "text/plain"),
    ]
    response = await client.post("/v1/itineraries", content=b"{}", headers=headers)
    assert_problem(response, 415)


async def test_if_match_lines_form_one_list(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/v1/itineraries", json=TRIP, headers=with_key(tenant.member))
    url, etag = created.headers["location"], created.headers["etag"]
    headers = [*tenant.member.headers.items(), ("If-Match", '"999"'), ("If-Match", etag)]
    patched = await client.patch(url, json={"title": "Matched"}, headers=headers)
    assert patched.status_code == 200, patched.text
    stale = [*tenant.member.headers.items(), ("If-None-Match", '"1"'), ("If-None-Match", '"2"')]
    assert (await client.get(url, headers=stale)).status_code == 304
