"""Destinations and their dive sites: CRUD, PATCH semantics, lists, tenancy, bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.http import assert_problem, with_key
from tests.support.tenants import Account, Tenant

DAHAB = {"slug": "dahab", "name": "Dahab", "country": "EG", "lat": 28.5, "lon": 34.5}
BLUE_HOLE = {
    "name": "Blue Hole",
    "min_depth_m": 5,
    "max_depth_m": 30,
    "difficulty": "advanced",
    "lat": 28.57,
    "lon": 34.54,
}


async def create(client: httpx.AsyncClient, account: Account, **fields: Any) -> httpx.Response:
    return await client.post("/v1/destinations", json=DAHAB | fields, headers=with_key(account))


async def create_site(
    client: httpx.AsyncClient, account: Account, destination_url: str, **fields: Any
) -> httpx.Response:
    return await client.post(
        f"{destination_url}/dive-sites", json=BLUE_HOLE | fields, headers=with_key(account)
    )


async def a_destination(client: httpx.AsyncClient, account: Account, **fields: Any) -> str:
    """A new destination's URL."""
    response = await create(client, account, **fields)
    assert response.status_code == 201, response.text
    return str(response.headers["location"])


async def a_site(
    client: httpx.AsyncClient, account: Account, slug: str = "dahab", **fields: Any
) -> tuple[str, str]:
    """A new destination and a dive site in it: both URLs."""
    destination_url = await a_destination(client, account, slug=slug)
    response = await create_site(client, account, destination_url, **fields)
    assert response.status_code == 201, response.text
    return destination_url, str(response.headers["location"])


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


async def test_create_answers_201_with_location(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await create(
        client,
        tenant.member,
        timezone="Africa/Cairo",
        description="Reefs from the shore.",
        metadata={"visibility_m": [20, 30]},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/destinations/{body['id']}"
    assert {k: body[k] for k in DAHAB} == DAHAB
    assert (body["timezone"], body["description"], body["metadata"]) == (
        "Africa/Cairo",
        "Reefs from the shore.",
        {"visibility_m": [20, 30]},
    )
    assert body["created_at"].endswith("Z")
    assert body["updated_at"].endswith("Z")
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_optional_fields_have_defaults(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = (await create(client, tenant.member)).json()
    assert (body["timezone"], body["description"], body["metadata"]) == (None, "", {})


async def test_duplicate_slug_is_409_but_another_org_may_reuse_it(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await a_destination(client, tenant.member)
    assert_problem(await create(client, tenant.admin, name="Again"), 409, "/problems/duplicate")
    assert (await create(client, other_tenant.member)).status_code == 201
    listed = await client.get("/v1/destinations", headers=tenant.member.headers)
    assert [d["name"] for d in listed.json()["items"]] == ["Dahab"]


async def test_patch_to_a_taken_slug_is_409(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await a_destination(client, tenant.member)
    url = await a_destination(client, tenant.member, slug="marsa-alam")
    response = await client.patch(url, json={"slug": "dahab"}, headers=tenant.member.headers)
    assert_problem(response, 409, "/problems/duplicate")
    assert (await client.get(url, headers=tenant.member.headers)).json()["slug"] == "marsa-alam"


async def test_patch_changes_only_what_it_names(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = (await create(client, tenant.member, timezone="Africa/Cairo")).json()
    url = f"/v1/destinations/{created['id']}"
    patched = await client.patch(url, json={"name": "Dahab Bay"}, headers=tenant.member.headers)
    assert patched.status_code == 200
    body = patched.json()
    assert body == created | {"name": "Dahab Bay", "updated_at": body["updated_at"]}
    assert when(body["updated_at"]) > when(created["updated_at"])
    assert (await client.get(url, headers=tenant.member.headers)).json() == body


async def test_patch_null_clears_the_timezone_and_replaces_metadata_whole(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await a_destination(
        client, tenant.member, timezone="Africa/Cairo", metadata={"a": 1, "b": 2}
    )
    patched = await client.patch(
        url, json={"timezone": None, "metadata": {"c": 3}}, headers=tenant.member.headers
    )
    assert patched.status_code == 200
    assert (patched.json()["timezone"], patched.json()["metadata"]) == (None, {"c": 3})


async def test_patch_cannot_null_a_required_field(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await a_destination(client, tenant.member)
    response = await client.patch(url, json={"name": None}, headers=tenant.member.headers)
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["pointer"] == "/name"
    assert (await client.get(url, headers=tenant.member.headers)).json()["name"] == "Dahab"


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"lat": 90.5}, "/lat"),
        ({"lat": -91}, "/lat"),
        ({"lon": 180.01}, "/lon"),
        ({"lon": "east"}, "/lon"),
        ({"country": "eg"}, "/country"),
        ({"country": "EGY"}, "/country"),
        ({"timezone": "Mars/Olympus_Mons"}, "/timezone"),
        ({"timezone": "africa/cairo"}, "/timezone"),
        ({"slug": "Not A Slug"}, "/slug"),
        ({"name": ""}, "/name"),
        ({"name": "x" * 201}, "/name"),
        ({"metadata": [1, 2]}, "/metadata"),
        ({"surprise": True}, "/surprise"),
    ],
)
async def test_invalid_destinations_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    body = assert_problem(
        await create(client, tenant.member, **fields), 422, "/problems/validation"
    )
    assert body["errors"][0]["pointer"] == pointer


async def test_missing_field_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/destinations", json={"slug": "dahab", "name": "Dahab"}, headers=with_key(tenant.member)
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["pointer"] == "/country"


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"timezone": "Atlantis/Capital"}, "/timezone"),
        ({"lat": 100}, "/lat"),
        ({"country": "XYZ"}, "/country"),
        ({"id": str(uuid.uuid4())}, "/id"),
    ],
)
async def test_invalid_destination_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    url = await a_destination(client, tenant.member, timezone="Africa/Cairo")
    before = (await client.get(url, headers=tenant.member.headers)).json()
    body = assert_problem(await client.patch(url, json=fields, headers=tenant.member.headers), 422)
    assert body["errors"][0]["pointer"] == pointer
    assert (await client.get(url, headers=tenant.member.headers)).json() == before


async def test_delete_is_204_then_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = await a_destination(client, tenant.member)
    gone = await client.delete(url, headers=tenant.member.headers)
    assert gone.status_code == 204
    assert gone.content == b""
    assert_problem(await client.get(url, headers=tenant.member.headers), 404, "/problems/not-found")
    assert_problem(await client.delete(url, headers=tenant.member.headers), 404)
    assert_problem(await client.patch(url, json={}, headers=tenant.member.headers), 404)


async def test_destination_list_pages_newest_first(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = [(await create(client, tenant.member, slug=f"d{n}")).json()["id"] for n in range(5)]
    await a_destination(client, other_tenant.member)
    newest_first = list(reversed(made))
    everything = await client.get("/v1/destinations", headers=tenant.member.headers)
    assert [d["id"] for d in everything.json()["items"]] == newest_first
    assert everything.json()["next_cursor"] is None
    seen: list[str] = []
    params = {"limit": "2"}
    for expected_size in (2, 2, 1):
        page = (
            await client.get("/v1/destinations", params=params, headers=tenant.member.headers)
        ).json()
        assert len(page["items"]) == expected_size
        seen += [d["id"] for d in page["items"]]
        params["cursor"] = page["next_cursor"]
    assert seen == newest_first
    assert page["next_cursor"] is None


async def test_dive_site_create_answers_201_with_location(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    response = await create_site(
        client,
        tenant.member,
        destination_url,
        min_certification="PADI Advanced Open Water",
        metadata={"current": "mild"},
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/dive-sites/{body['id']}"
    assert f"/v1/destinations/{body['destination_id']}" == destination_url
    assert {k: body[k] for k in BLUE_HOLE} == BLUE_HOLE
    assert (body["min_certification"], body["metadata"]) == (
        "PADI Advanced Open Water",
        {"current": "mild"},
    )
    assert body["created_at"].endswith("Z")
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_dive_site_defaults_and_an_equal_depth_range(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    response = await create_site(
        client, tenant.member, destination_url, min_depth_m=12, max_depth_m=12
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["min_certification"], body["metadata"]) == (None, {})
    assert (body["min_depth_m"], body["max_depth_m"]) == (12, 12)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"min_depth_m": 31}, "/max_depth_m"),
        ({"min_depth_m": -1}, "/min_depth_m"),
        ({"max_depth_m": 11_001}, "/max_depth_m"),
        ({"difficulty": "expert"}, "/difficulty"),
        ({"min_certification": ""}, "/min_certification"),
        ({"lat": 95}, "/lat"),
        ({"lon": -200}, "/lon"),
        ({"name": ""}, "/name"),
        ({"metadata": "deep"}, "/metadata"),
        ({"destination_id": str(uuid.uuid4())}, "/destination_id"),
    ],
)
async def test_invalid_dive_sites_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    destination_url = await a_destination(client, tenant.member)
    response = await create_site(client, tenant.member, destination_url, **fields)
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["pointer"] == pointer
    listed = await client.get(f"{destination_url}/dive-sites", headers=tenant.member.headers)
    assert listed.json()["items"] == []


async def test_dive_site_patch_changes_only_what_it_names(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    created = (
        await create_site(
            client,
            tenant.member,
            destination_url,
            min_certification="AOW",
            metadata={"a": 1, "b": 2},
        )
    ).json()
    url = f"/v1/dive-sites/{created['id']}"
    patched = await client.patch(
        url, json={"difficulty": "intermediate"}, headers=tenant.member.headers
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body == created | {"difficulty": "intermediate", "updated_at": body["updated_at"]}
    assert when(body["updated_at"]) > when(created["updated_at"])
    cleared = await client.patch(
        url, json={"min_certification": None, "metadata": {"c": 3}}, headers=tenant.member.headers
    )
    assert (cleared.json()["min_certification"], cleared.json()["metadata"]) == (None, {"c": 3})
    assert (await client.get(url, headers=tenant.member.headers)).json() == cleared.json()


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"min_depth_m": 40, "max_depth_m": 35}, "/max_depth_m"),
        ({"difficulty": "extreme"}, "/difficulty"),
        ({"max_depth_m": -3}, "/max_depth_m"),
        ({"name": None}, "/name"),
        ({"destination_id": str(uuid.uuid4())}, "/destination_id"),
    ],
)
async def test_invalid_dive_site_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant, change: dict[str, Any], pointer: str
) -> None:
    _, url = await a_site(client, tenant.member)
    before = (await client.get(url, headers=tenant.member.headers)).json()
    body = assert_problem(await client.patch(url, json=change, headers=tenant.member.headers), 422)
    assert body["errors"][0]["pointer"] == pointer
    assert (await client.get(url, headers=tenant.member.headers)).json() == before


@pytest.mark.parametrize("change", [{"min_depth_m": 31}, {"max_depth_m": 4}])
async def test_patching_one_depth_past_the_stored_other_is_422(
    client: httpx.AsyncClient, tenant: Tenant, change: dict[str, Any]
) -> None:
    _, url = await a_site(client, tenant.member)
    response = await client.patch(url, json=change, headers=tenant.member.headers)
    assert_problem(response, 422, "/problems/validation")
    stored = (await client.get(url, headers=tenant.member.headers)).json()
    assert (stored["min_depth_m"], stored["max_depth_m"]) == (5, 30)


async def test_dive_site_delete_is_204_then_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    destination_url, url = await a_site(client, tenant.member)
    gone = await client.delete(url, headers=tenant.member.headers)
    assert gone.status_code == 204
    assert_problem(await client.get(url, headers=tenant.member.headers), 404, "/problems/not-found")
    assert_problem(await client.delete(url, headers=tenant.member.headers), 404)
    assert_problem(await client.patch(url, json={}, headers=tenant.member.headers), 404)
    assert (await client.get(destination_url, headers=tenant.member.headers)).status_code == 200


async def test_deleting_a_destination_deletes_its_dive_sites(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url, url = await a_site(client, tenant.member)
    _, kept = await a_site(client, tenant.member, slug="hurghada")
    assert (await client.delete(destination_url, headers=tenant.member.headers)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.member.headers), 404)
    listed = await client.get(f"{destination_url}/dive-sites", headers=tenant.member.headers)
    assert_problem(listed, 404)
    assert (await client.get(kept, headers=tenant.member.headers)).status_code == 200


async def test_dive_sites_added_while_their_destination_is_deleted_are_201_or_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for _ in range(3):  # the race is narrow: a few rounds make it show
        destination_url = await a_destination(client, tenant.member)
        adds = [create_site(client, tenant.member, destination_url) for _ in range(20)]
        delete = client.delete(destination_url, headers=tenant.member.headers)
        # The delete starts among the adds, so some run before it and some after.
        answers = await asyncio.gather(*adds[:10], delete, *adds[10:])
        deleted = answers.pop(10)
        added = answers
        assert deleted.status_code == 204
        assert {answer.status_code for answer in added} <= {201, 404}
        for answer in added:
            if answer.status_code == 201:
                site = await client.get(answer.headers["location"], headers=tenant.member.headers)
                assert_problem(site, 404)


async def test_dive_site_list_pages_newest_first_within_its_destination(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    neighbour_url = await a_destination(client, tenant.member, slug="hurghada")
    made = [
        (await create_site(client, tenant.member, destination_url, name=f"s{n}")).json()["id"]
        for n in range(3)
    ]
    await create_site(client, tenant.member, neighbour_url)
    list_url = f"{destination_url}/dive-sites"
    everything = await client.get(list_url, headers=tenant.member.headers)
    assert [s["id"] for s in everything.json()["items"]] == list(reversed(made))
    assert everything.json()["next_cursor"] is None
    first = await client.get(list_url, params={"limit": "2"}, headers=tenant.member.headers)
    assert [s["id"] for s in first.json()["items"]] == list(reversed(made))[:2]
    rest = await client.get(
        list_url,
        params={"limit": "2", "cursor": first.json()["next_cursor"]},
        headers=tenant.member.headers,
    )
    assert [s["id"] for s in rest.json()["items"]] == made[:1]
    assert rest.json()["next_cursor"] is None


async def test_a_destination_without_dive_sites_lists_none(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    listed = await client.get(f"{destination_url}/dive-sites", headers=tenant.member.headers)
    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_missing_ids_are_404_on_every_route(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.member.headers
    destination_url = f"/v1/destinations/{uuid.uuid4()}"
    site_url = f"/v1/dive-sites/{uuid.uuid4()}"
    answers = [
        await client.get(destination_url, headers=headers),
        await client.patch(destination_url, json={"name": "x"}, headers=headers),
        await client.delete(destination_url, headers=headers),
        await client.get(f"{destination_url}/dive-sites", headers=headers),
        await create_site(client, tenant.member, destination_url),
        await client.get(site_url, headers=headers),
        await client.patch(site_url, json={"name": "x"}, headers=headers),
        await client.delete(site_url, headers=headers),
    ]
    for answer in answers:
        assert_problem(answer, 404, "/problems/not-found")


async def test_another_orgs_destinations_and_dive_sites_are_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    destination_url, site_url = await a_site(client, tenant.member)
    stranger = other_tenant.admin
    answers = [
        await client.get(destination_url, headers=stranger.headers),
        await client.patch(destination_url, json={"name": "Mine"}, headers=stranger.headers),
        await client.delete(destination_url, headers=stranger.headers),
        await client.get(f"{destination_url}/dive-sites", headers=stranger.headers),
        await create_site(client, stranger, destination_url),
        await client.get(site_url, headers=stranger.headers),
        await client.patch(site_url, json={"name": "Mine"}, headers=stranger.headers),
        await client.delete(site_url, headers=stranger.headers),
    ]
    for answer in answers:
        assert_problem(answer, 404, "/problems/not-found")
    destination = await client.get(destination_url, headers=tenant.member.headers)
    assert destination.json()["name"] == "Dahab"
    sites = await client.get(f"{destination_url}/dive-sites", headers=tenant.member.headers)
    assert [s["name"] for s in sites.json()["items"]] == ["Blue Hole"]
    listed = await client.get("/v1/destinations", headers=stranger.headers)
    assert listed.json()["items"] == []


WRITES = [
    ("POST", "/v1/destinations"),
    ("PATCH", "/v1/destinations/{destination}"),
    ("POST", "/v1/destinations/{destination}/dive-sites"),
    ("PATCH", "/v1/dive-sites/{site}"),
]


async def _write_url(client: httpx.AsyncClient, tenant: Tenant, path: str) -> str:
    destination_url, site_url = await a_site(client, tenant.member)
    return path.format(
        destination=destination_url.rsplit("/", 1)[1], site=site_url.rsplit("/", 1)[1]
    )


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_a_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str
) -> None:
    url = await _write_url(client, tenant, path)
    response = await client.request(
        method,
        url,
        content=b'{"name": "Dahab",',
        headers=with_key(tenant.member, **{"Content-Type": "application/json"}),
    )
    assert_problem(response, 400, "/problems/malformed")


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_a_body_that_is_not_declared_json_is_415(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str
) -> None:
    url = await _write_url(client, tenant, path)
    response = await client.request(
        method,
        url,
        content=b'{"name": "Dahab"}',
        headers=with_key(tenant.member, **{"Content-Type": "text/plain"}),
    )
    assert_problem(response, 415)


@pytest.mark.parametrize("path", ["/v1/destinations", "/v1/destinations/{destination}/dive-sites"])
@pytest.mark.parametrize(
    ("params", "status"),
    [({"limit": "0"}, 422), ({"limit": "201"}, 422), ({"cursor": "not-a-cursor"}, 400)],
)
async def test_bad_list_parameters_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, path: str, params: dict[str, str], status: int
) -> None:
    url = await _write_url(client, tenant, path)
    assert_problem(await client.get(url, params=params, headers=tenant.member.headers), status)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/destinations"),
        ("POST", "/v1/destinations"),
        ("GET", "/v1/destinations/{id}"),
        ("PATCH", "/v1/destinations/{id}"),
        ("DELETE", "/v1/destinations/{id}"),
        ("GET", "/v1/destinations/{id}/dive-sites"),
        ("POST", "/v1/destinations/{id}/dive-sites"),
        ("GET", "/v1/dive-sites/{id}"),
        ("PATCH", "/v1/dive-sites/{id}"),
        ("DELETE", "/v1/dive-sites/{id}"),
    ],
)
async def test_every_route_needs_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path.format(id=uuid.uuid4()), json={})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def raw_destination(extra: bytes) -> bytes:
    return b'{"slug": "dahab", "name": "Dahab", "country": "EG", ' + extra + b"}"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(raw_destination(b'"lat": 1e400, "lon": 1'), 422, id="infinite-number"),
        pytest.param(
            raw_destination(b'"lat": 1, "lon": 1, "timezone": "UTC\\u0000"'),
            422,
            id="nul-in-timezone",
        ),
        pytest.param(
            raw_destination(b'"lat": 1, "lon": 1, "description": "a\\u0000b"'),
            422,
            id="nul-in-text",
        ),
        pytest.param(
            raw_destination(b'"lat": 1, "lon": 1, "metadata": {"a": "\\u0000"}'),
            422,
            id="nul-in-metadata",
        ),
        pytest.param(
            raw_destination(b'"lat": 1, "lon": 1, "description": "\xff"'),
            400,
            id="invalid-utf8",
        ),
        pytest.param(
            raw_destination(b'"lat": 1, "lon": 1, "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000)
            + b"}",
            400,
            id="deep-nesting",
        ),
    ],
)
async def test_hostile_bodies_are_refused_without_a_500(
    client: httpx.AsyncClient, tenant: Tenant, raw: bytes, status: int
) -> None:
    response = await client.post(
        "/v1/destinations",
        content=raw,
        headers=with_key(tenant.member, **{"Content-Type": "application/json"}),
    )
    assert_problem(response, status)
    listed = await client.get("/v1/destinations", headers=tenant.member.headers)
    assert listed.json()["items"] == []


# --- list filters ---------------------------------------------------------------------------


async def every_page(client: httpx.AsyncClient, account: Account, url: str, **params: str) -> Any:
    """Every item the list answers, two to a page."""
    seen: list[Any] = []
    query = {"limit": "2", **params}
    while True:
        response = await client.get(url, params=query, headers=account.headers)
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        if response.json()["next_cursor"] is None:
            return seen
        query["cursor"] = response.json()["next_cursor"]


async def test_destinations_filter_by_country_exactly_across_pages(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made: dict[str, list[str]] = {"EG": [], "JO": [], "MX": []}
    for n in range(3):
        for country in made:
            response = await create(
                client, tenant.member, slug=f"{country.lower()}{n}", country=country
            )
            made[country].append(response.json()["id"])
    await a_destination(client, other_tenant.member, country="EG")
    for country, ids in made.items():
        found = await every_page(client, tenant.member, "/v1/destinations", country=country)
        assert [d["id"] for d in found] == list(reversed(ids))
        assert {d["country"] for d in found} == {country}
    assert await every_page(client, tenant.member, "/v1/destinations", country="ID") == []


@pytest.mark.parametrize("country", ["eg", "EGY", "E", "", "E1", "null"])
async def test_an_invalid_country_filter_is_422(
    client: httpx.AsyncClient, tenant: Tenant, country: str
) -> None:
    response = await client.get(
        "/v1/destinations", params={"country": country}, headers=tenant.member.headers
    )
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["parameter"] == "country"


async def test_dive_sites_filter_by_difficulty_and_depth_exactly_across_pages(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    destination_url = await a_destination(client, tenant.member)
    neighbour_url = await a_destination(client, tenant.member, slug="aqaba")
    await create_site(client, tenant.member, neighbour_url, max_depth_m=10, difficulty="beginner")
    made = []
    for depth in (12, 18, 18.5, 30, 40, 60):
        for difficulty in ("beginner", "intermediate", "advanced"):
            response = await create_site(
                client,
                tenant.member,
                destination_url,
                name=f"{difficulty} {depth}",
                max_depth_m=depth,
                difficulty=difficulty,
            )
            made.append(response.json())
    list_url = f"{destination_url}/dive-sites"

    def expected(difficulty: str | None = None, deepest: float | None = None) -> list[str]:
        return [
            site["id"]
            for site in reversed(made)
            if difficulty in (None, site["difficulty"])
            and (deepest is None or site["max_depth_m"] <= deepest)
        ]

    for difficulty in ("beginner", "intermediate", "advanced"):
        found = await every_page(client, tenant.member, list_url, difficulty=difficulty)
        assert [s["id"] for s in found] == expected(difficulty)
    for deepest in (11, 12, 18, 30, 11_000):
        found = await every_page(client, tenant.member, list_url, max_depth_m=str(deepest))
        assert [s["id"] for s in found] == expected(deepest=deepest)
    both = await every_page(
        client, tenant.member, list_url, difficulty="beginner", max_depth_m="18"
    )
    assert [s["name"] for s in both] == ["beginner 18", "beginner 12"]
    assert await every_page(client, tenant.member, list_url, max_depth_m="0") == []


async def test_filtered_dive_sites_of_a_missing_destination_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await a_destination(client, other_tenant.member)
    for url in (f"/v1/destinations/{uuid.uuid4()}", theirs):
        response = await client.get(
            f"{url}/dive-sites",
            params={"difficulty": "beginner", "max_depth_m": "5"},
            headers=tenant.member.headers,
        )
        assert_problem(response, 404, "/problems/not-found")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"difficulty": "expert"}, "difficulty"),
        ({"difficulty": "Beginner"}, "difficulty"),
        ({"difficulty": ""}, "difficulty"),
        ({"max_depth_m": "-1"}, "max_depth_m"),
        ({"max_depth_m": "11001"}, "max_depth_m"),
        ({"max_depth_m": "deep"}, "max_depth_m"),
        ({"max_depth_m": "18.5"}, "max_depth_m"),
        ({"max_depth_m": "9" * 30}, "max_depth_m"),
        ({"max_depth_m": ""}, "max_depth_m"),
    ],
)
async def test_invalid_dive_site_filters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], parameter: str
) -> None:
    destination_url = await a_destination(client, tenant.member)
    response = await client.get(
        f"{destination_url}/dive-sites", params=params, headers=tenant.member.headers
    )
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["parameter"] == parameter
