"""Itineraries: ETags, conditional writes, lists and their filters."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import assert_problem, with_key
from tests.support.rows import make_destination
from tests.support.tenants import Account, Tenant

TRIP = {"title": "Red Sea week", "start_date": "2027-03-01", "end_date": "2027-03-08"}


async def create(client: httpx.AsyncClient, account: Account, **fields: Any) -> httpx.Response:
    return await client.post("/v1/itineraries", json=TRIP | fields, headers=with_key(account))


async def test_create_answers_201_with_location_and_etag(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await create(client, tenant.member, data={"days": [{"items": ["dive"]}]})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/itineraries/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["version"] == 1
    assert body["status"] == "draft"
    assert body["created_by"] == str(tenant.member.user_id)
    assert body["data"] == {"days": [{"items": ["dive"]}]}
    assert body["created_at"].endswith("Z")
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body
    assert fetched.headers["etag"] == '"1"'


async def test_get_honours_if_none_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    same = await client.get(url, headers={**tenant.member.headers, "If-None-Match": '"1"'})
    assert same.status_code == 304
    assert same.headers["etag"] == '"1"'
    assert same.content == b""
    other = await client.get(url, headers={**tenant.member.headers, "If-None-Match": '"7"'})
    assert other.status_code == 200


async def test_put_replaces_and_bumps_the_version(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = (await create(client, tenant.member, data={"a": 1})).headers["location"]
    replaced = await client.put(
        url,
        json={**TRIP, "title": "Longer week", "end_date": "2027-03-10", "status": "final"},
        headers={**tenant.member.headers, "If-Match": '"1"'},
    )
    assert replaced.status_code == 200
    body = replaced.json()
    assert (body["title"], body["status"], body["version"], body["data"]) == (
        "Longer week",
        "final",
        2,
        {},
    )
    assert replaced.headers["etag"] == '"2"'


async def test_patch_changes_only_what_it_names(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = (await create(client, tenant.member, data={"a": 1})).headers["location"]
    patched = await client.patch(
        url, json={"status": "final"}, headers={**tenant.member.headers, "If-Match": '"1"'}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["status"], body["title"], body["data"], body["version"]) == (
        "final",
        TRIP["title"],
        {"a": 1},
        2,
    )


async def test_patch_null_clears_a_nullable_reference(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    destination = await make_destination(owner_engine, tenant.org_id)
    url = (await create(client, tenant.member, destination_id=destination)).headers["location"]
    patched = await client.patch(
        url, json={"destination_id": None}, headers={**tenant.member.headers, "If-Match": '"1"'}
    )
    assert patched.json()["destination_id"] is None


async def test_writes_need_if_match(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    for if_match in (None, "*"):
        headers = dict(tenant.member.headers)
        if if_match:
            headers["If-Match"] = if_match
        missing = await client.patch(url, json={"title": "x"}, headers=headers)
        assert_problem(missing, 428, "/problems/precondition-required")
    for stale in ('"2"', 'W/"1"', "1", '"abc"'):
        refused = await client.put(
            url, json=TRIP, headers={**tenant.member.headers, "If-Match": stale}
        )
        assert_problem(refused, 412, "/problems/precondition-failed")
    unchanged = await client.get(url, headers=tenant.member.headers)
    assert unchanged.json()["version"] == 1


async def test_concurrent_writers_of_one_version_cannot_both_win(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    headers = {**tenant.member.headers, "If-Match": '"1"'}
    answers = await asyncio.gather(
        *(
            client.put(url, json={**TRIP, "title": f"writer {n}"}, headers=headers)
            for n in range(20)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [412] * 19
    winner = next(answer for answer in answers if answer.status_code == 200).json()
    final = (await client.get(url, headers=tenant.member.headers)).json()
    assert (final["version"], final["title"]) == (2, winner["title"])


async def test_delete_honours_if_match_when_sent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    stale = await client.delete(url, headers={**tenant.member.headers, "If-Match": '"9"'})
    assert_problem(stale, 412)
    gone = await client.delete(url, headers={**tenant.member.headers, "If-Match": '"1"'})
    assert gone.status_code == 204
    assert_problem(await client.get(url, headers=tenant.member.headers), 404, "/problems/not-found")
    again = await client.delete(url, headers=tenant.member.headers)
    assert_problem(again, 404)


async def test_conditional_write_to_a_missing_itinerary_is_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/itineraries/{uuid.uuid4()}"
    response = await client.put(
        url, json=TRIP, headers={**tenant.member.headers, "If-Match": '"1"'}
    )
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"start_date": "2027-03-09"}, "/end_date"),
        ({"status": "archived"}, "/status"),
        ({"title": ""}, "/title"),
        ({"title": "x" * 301}, "/title"),
        ({"start_date": "2027-02-30"}, "/start_date"),
        ({"surprise": True}, "/surprise"),
        ({"data": [1, 2]}, "/data"),
    ],
)
async def test_invalid_bodies_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    body = assert_problem(
        await create(client, tenant.member, **fields), 422, "/problems/validation"
    )
    assert body["errors"][0]["pointer"] == pointer


async def test_missing_field_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/itineraries", json={"title": "no dates"}, headers=with_key(tenant.member)
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["pointer"] == "/start_date"


async def test_patch_breaking_the_date_rule_with_one_date_is_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    response = await client.patch(
        url, json={"end_date": "2027-02-01"}, headers={**tenant.member.headers, "If-Match": '"1"'}
    )
    assert_problem(response, 422)
    assert (await client.get(url, headers=tenant.member.headers)).json()["version"] == 1


async def test_references_must_exist_in_the_callers_org(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    foreign = await make_destination(owner_engine, other_tenant.org_id)
    for destination in (foreign, str(uuid.uuid4())):
        response = await create(client, tenant.member, destination_id=destination)
        body = assert_problem(response, 422)
        assert body["errors"][0]["pointer"] == "/destination_id"


async def test_another_orgs_itinerary_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = (await create(client, tenant.member)).headers["location"]
    stranger = other_tenant.admin.headers
    assert_problem(await client.get(url, headers=stranger), 404)
    assert_problem(await client.put(url, json=TRIP, headers={**stranger, "If-Match": '"1"'}), 404)
    assert_problem(await client.patch(url, json={}, headers={**stranger, "If-Match": '"1"'}), 404)
    assert_problem(await client.delete(url, headers=stranger), 404)
    assert (await client.get(url, headers=tenant.member.headers)).status_code == 200


async def test_list_filters_by_user_and_status_newest_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    mine = [(await create(client, tenant.member, title=f"m{n}")).json()["id"] for n in range(3)]
    theirs = (await create(client, tenant.admin, status="final")).json()["id"]
    everything = await client.get("/v1/itineraries", headers=tenant.member.headers)
    assert [i["id"] for i in everything.json()["items"]] == [theirs, *reversed(mine)]
    by_user = await client.get(
        "/v1/itineraries",
        params={"user_id": str(tenant.member.user_id)},
        headers=tenant.admin.headers,
    )
    assert [i["id"] for i in by_user.json()["items"]] == list(reversed(mine))
    finals = await client.get(
        "/v1/itineraries", params={"status": "final"}, headers=tenant.admin.headers
    )
    assert [i["id"] for i in finals.json()["items"]] == [theirs]
    paged = await client.get("/v1/itineraries", params={"limit": "2"}, headers=tenant.admin.headers)
    assert len(paged.json()["items"]) == 2
    rest = await client.get(
        "/v1/itineraries",
        params={"limit": "2", "cursor": paged.json()["next_cursor"]},
        headers=tenant.admin.headers,
    )
    assert [i["id"] for i in rest.json()["items"]] == list(reversed(mine))[1:]
    assert rest.json()["next_cursor"] is None


async def test_a_cursor_of_another_route_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await create(client, tenant.member)
    await create(client, tenant.member)
    users = await client.get("/v1/users", params={"limit": "1"}, headers=tenant.admin.headers)
    cursor = users.json()["next_cursor"]
    response = await client.get(
        "/v1/itineraries", params={"cursor": cursor}, headers=tenant.admin.headers
    )
    assert_problem(response, 400, "/problems/malformed")


@pytest.mark.parametrize("query", ["user_id=null", "status=null", "status=draft&status=final"])
async def test_list_parameters_are_read_strictly(
    client: httpx.AsyncClient, tenant: Tenant, query: str
) -> None:
    response = await client.get(f"/v1/itineraries?{query}", headers=tenant.member.headers)
    body = assert_problem(response, 422)
    assert body["errors"][0]["parameter"] in ("user_id", "status")


# Version 2 is current. None of these names it: stale, weak, past PostgreSQL's
# integer, past 64 bits, past Python's int-from-text limit, or not the form we issue.
NOT_THE_CURRENT_ETAG = [
    '"1"',
    'W/"2"',
    '"1", W/"2"',
    '"2147483648"',
    '"9223372036854775808"',
    pytest.param('"' + "9" * 5000 + '"', id="5000-digits"),
    '"02"',
    '"-2"',
    '"0"',
    '"two"',
]


async def _second_version(client: httpx.AsyncClient, account: Account) -> str:
    url: str = (await create(client, account)).headers["location"]
    changed = await client.patch(
        url, json={"title": "v2"}, headers={**account.headers, "If-Match": '"1"'}
    )
    assert changed.headers["etag"] == '"2"'
    return url


@pytest.mark.parametrize("if_match", NOT_THE_CURRENT_ETAG)
async def test_if_match_naming_no_current_version_is_412_however_large(
    client: httpx.AsyncClient, tenant: Tenant, if_match: str
) -> None:
    url = await _second_version(client, tenant.member)
    headers = {**tenant.member.headers, "If-Match": if_match}
    for response in (
        await client.patch(url, json={"title": "x"}, headers=headers),
        await client.put(url, json=TRIP, headers=headers),
        await client.delete(url, headers=headers),
    ):
        assert_problem(response, 412, "/problems/precondition-failed")
    unchanged = (await client.get(url, headers=tenant.member.headers)).json()
    assert (unchanged["version"], unchanged["title"]) == (2, "v2")


async def test_if_match_listing_a_huge_tag_beside_the_current_one_succeeds(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await _second_version(client, tenant.member)
    headers = {**tenant.member.headers, "If-Match": '"2147483648", "2"'}
    changed = await client.patch(url, json={"title": "v3"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"3"'


async def test_a_huge_if_match_on_a_missing_itinerary_is_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.member.headers, "If-Match": '"2147483648"'}
    url = f"/v1/itineraries/{uuid.uuid4()}"
    assert_problem(await client.patch(url, json={"title": "x"}, headers=headers), 404)
    assert_problem(await client.delete(url, headers=headers), 404)


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ('"2147483648"', 200),
        pytest.param('"' + "9" * 5000 + '"', 200, id="5000-digits"),
        ('"02"', 200),
        ('"2147483648", W/"2"', 304),
    ],
)
async def test_if_none_match_with_huge_tags_simply_does_not_match(
    client: httpx.AsyncClient, tenant: Tenant, if_none_match: str, status: int
) -> None:
    url = await _second_version(client, tenant.member)
    headers = {**tenant.member.headers, "If-None-Match": if_none_match}
    response = await client.get(url, headers=headers)
    assert response.status_code == status
    assert response.headers["etag"] == '"2"'


# --- filters by destination and agent run ---------------------------------------------------


async def a_run(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.post(
        "/v1/agent-runs", json={"intent": "plan a trip"}, headers=with_key(account)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def every_page(
    client: httpx.AsyncClient, account: Account, **params: str
) -> list[dict[str, Any]]:
    """Every itinerary the filters list, two to a page."""
    seen: list[dict[str, Any]] = []
    query = {"limit": "2", **params}
    while True:
        response = await client.get("/v1/itineraries", params=query, headers=account.headers)
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        if response.json()["next_cursor"] is None:
            return seen
        query["cursor"] = response.json()["next_cursor"]


async def test_list_filters_by_destination_and_agent_run_exactly_across_pages(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    dahab = await make_destination(owner_engine, tenant.org_id)
    aqaba = await make_destination(owner_engine, tenant.org_id)
    run, other_run = await a_run(client, tenant.member), await a_run(client, tenant.member)
    made: dict[tuple[str | None, str | None], list[str]] = {}
    for n in range(3):
        for destination in (dahab, aqaba, None):
            for agent_run in (run, other_run, None):
                response = await create(
                    client,
                    tenant.member,
                    title=f"trip {n}",
                    destination_id=destination,
                    agent_run_id=agent_run,
                )
                made.setdefault((destination, agent_run), []).append(response.json()["id"])
    theirs = await make_destination(owner_engine, other_tenant.org_id)
    await create(client, other_tenant.member, destination_id=theirs)

    def expected(destination: str | None = None, agent_run: str | None = None) -> list[str]:
        ids = [
            item
            for (d, r), items in made.items()
            if destination in (None, d) and agent_run in (None, r)
            for item in items
        ]
        return sorted(ids, reverse=True)

    by_destination = await every_page(client, tenant.admin, destination_id=dahab)
    assert [i["id"] for i in by_destination] == expected(destination=dahab)
    assert {i["destination_id"] for i in by_destination} == {dahab}
    by_run = await every_page(client, tenant.admin, agent_run_id=run)
    assert [i["id"] for i in by_run] == expected(agent_run=run)
    assert {i["agent_run_id"] for i in by_run} == {run}
    both = await every_page(client, tenant.admin, destination_id=aqaba, agent_run_id=other_run)
    assert [i["id"] for i in both] == expected(aqaba, other_run)
    assert len(both) == 3
    drafts = await every_page(
        client,
        tenant.admin,
        destination_id=aqaba,
        status="draft",
        user_id=str(tenant.member.user_id),
    )
    assert [i["id"] for i in drafts] == expected(destination=aqaba)
    assert await every_page(client, tenant.admin, status="final", destination_id=dahab) == []
    assert await every_page(client, tenant.admin, destination_id=theirs) == []
    assert await every_page(client, tenant.admin, agent_run_id=str(uuid.uuid4())) == []


async def test_a_filter_changed_mid_listing_lets_no_other_row_in(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """The cursor is a position only: the filters of the request apply to its page."""
    dahab = await make_destination(owner_engine, tenant.org_id)
    made = [
        (await create(client, tenant.member, destination_id=dahab if n % 2 else None)).json()["id"]
        for n in range(6)
    ]
    headers = tenant.member.headers
    first = await client.get("/v1/itineraries", params={"limit": "2"}, headers=headers)
    assert [i["id"] for i in first.json()["items"]] == [made[5], made[4]]
    rest = await client.get(
        "/v1/itineraries",
        params={"destination_id": dahab, "cursor": first.json()["next_cursor"]},
        headers=headers,
    )
    assert [i["id"] for i in rest.json()["items"]] == [made[3], made[1]]


async def test_a_deleted_destination_leaves_its_itineraries_unfiltered(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    dahab = await make_destination(owner_engine, tenant.org_id)
    trip = (await create(client, tenant.member, destination_id=dahab)).json()
    deleted = await client.delete(f"/v1/destinations/{dahab}", headers=tenant.member.headers)
    assert deleted.status_code == 204
    assert await every_page(client, tenant.member, destination_id=dahab) == []
    kept = await client.get(f"/v1/itineraries/{trip['id']}", headers=tenant.member.headers)
    assert kept.json()["destination_id"] is None


@pytest.mark.parametrize(
    "query",
    [
        "destination_id=dahab",
        "destination_id=",
        "destination_id=null",
        "agent_run_id=42",
        "agent_run_id=" + "0" * 40,
        f"agent_run_id={uuid.UUID(int=1)}&agent_run_id={uuid.UUID(int=2)}",
    ],
)
async def test_invalid_reference_filters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, query: str
) -> None:
    response = await client.get(f"/v1/itineraries?{query}", headers=tenant.member.headers)
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["parameter"] == query.split("=", 1)[0]
