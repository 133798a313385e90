"""Agent runs: the lifecycle, numbered appends of tool calls and checkpoints, lists."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import assert_problem, with_key
from tests.support.tenants import Account, Tenant

INTENT = "plan a week of diving in Dahab"
FINISHED = ("succeeded", "failed", "cancelled")
# The moves that reach each status from a new (queued) run.
PATH_TO: dict[str, list[str]] = {
    "queued": [],
    "running": ["running"],
    "succeeded": ["running", "succeeded"],
    "failed": ["running", "failed"],
    "cancelled": ["cancelled"],
}


async def create(client: httpx.AsyncClient, account: Account, **fields: Any) -> httpx.Response:
    return await client.post(
        "/v1/agent-runs", json={"intent": INTENT} | fields, headers=with_key(account)
    )


async def new_run(client: httpx.AsyncClient, account: Account, status: str = "queued") -> str:
    """A run of the account's, moved to ``status``; its URL."""
    response = await create(client, account)
    assert response.status_code == 201, response.text
    url: str = response.headers["location"]
    for step in PATH_TO[status]:
        moved = await client.patch(url, json={"status": step}, headers=account.headers)
        assert moved.status_code == 200, moved.text
    return url


async def add_tool_call(
    client: httpx.AsyncClient, account: Account, url: str, **fields: Any
) -> httpx.Response:
    body = {"tool": "search_dive_sites", "input": {"q": "reef"}, "output": {"hits": 3}} | fields
    return await client.post(f"{url}/tool-log", json=body, headers=with_key(account))


async def add_checkpoint(
    client: httpx.AsyncClient, account: Account, url: str, **fields: Any
) -> httpx.Response:
    body = {"state": {"step": "search"}} | fields
    return await client.post(f"{url}/checkpoints", json=body, headers=with_key(account))


async def items(client: httpx.AsyncClient, account: Account, url: str, **params: str) -> Any:
    response = await client.get(url, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def when(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value)


# --- runs --------------------------------------------------------------------------


async def test_create_answers_201_with_a_queued_run(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await create(client, tenant.member, plan={"steps": ["search", "book"]})
    assert response.status_code == 201
    run = response.json()
    assert response.headers["location"] == f"/v1/agent-runs/{run['id']}"
    assert run["status"] == "queued"
    assert run["created_by"] == str(tenant.member.user_id)
    assert (run["intent"], run["plan"], run["error"]) == (
        INTENT,
        {"steps": ["search", "book"]},
        None,
    )
    assert (run["started_at"], run["finished_at"]) == (None, None)
    assert when(run["created_at"]) == when(run["updated_at"])
    assert "next_seq" not in run
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == run


async def test_plan_defaults_to_an_empty_object(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await create(client, tenant.member)).json()["plan"] == {}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "running"),
        ("queued", "cancelled"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "cancelled"),
    ],
)
async def test_every_legal_move_succeeds_and_stamps_its_times(
    client: httpx.AsyncClient, tenant: Tenant, current: str, target: str
) -> None:
    url = await new_run(client, tenant.member, current)
    before = (await client.get(url, headers=tenant.member.headers)).json()
    response = await client.patch(url, json={"status": target}, headers=tenant.member.headers)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == target
    assert when(run["updated_at"]) > when(before["updated_at"])
    if target == "running":
        assert before["started_at"] is None
        assert when(run["started_at"]) >= when(run["created_at"])
    else:
        assert run["started_at"] == before["started_at"]  # only the move to running sets it
    if target in FINISHED:
        assert when(run["finished_at"]) >= when(run["started_at"] or run["created_at"])
    else:
        assert run["finished_at"] is None
    assert (await client.get(url, headers=tenant.member.headers)).json() == run


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("queued", "queued"),
        ("queued", "succeeded"),
        ("queued", "failed"),
        ("running", "running"),
        ("running", "queued"),
        ("succeeded", "succeeded"),
        ("succeeded", "running"),
        ("succeeded", "failed"),
        ("succeeded", "cancelled"),
        ("failed", "queued"),
        ("failed", "running"),
        ("failed", "cancelled"),
        ("cancelled", "cancelled"),
        ("cancelled", "running"),
        ("cancelled", "succeeded"),
    ],
)
async def test_illegal_moves_are_409_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant, current: str, target: str
) -> None:
    url = await new_run(client, tenant.member, current)
    before = (await client.get(url, headers=tenant.member.headers)).json()
    response = await client.patch(
        url,
        json={"status": target, "plan": {"changed": True}, "error": "x"},
        headers=tenant.member.headers,
    )
    body = assert_problem(response, 409, "/problems/conflict")
    assert current in body["detail"]
    assert (await client.get(url, headers=tenant.member.headers)).json() == before


async def test_patch_replaces_the_plan_and_null_clears_the_error(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = (await create(client, tenant.member, plan={"a": 1, "b": 2})).headers["location"]
    replaced = await client.patch(
        url, json={"plan": {"c": 3}, "error": "tool timed out"}, headers=tenant.member.headers
    )
    assert replaced.status_code == 200
    run = replaced.json()
    assert (run["plan"], run["error"], run["status"]) == ({"c": 3}, "tool timed out", "queued")
    assert when(run["updated_at"]) > when(run["created_at"])
    cleared = await client.patch(url, json={"error": None}, headers=tenant.member.headers)
    assert (cleared.json()["error"], cleared.json()["plan"]) == (None, {"c": 3})
    unchanged = await client.patch(url, json={}, headers=tenant.member.headers)
    assert unchanged.status_code == 200
    assert unchanged.json() == cleared.json()


async def test_failing_a_run_can_record_its_error_in_the_same_move(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    response = await client.patch(
        url, json={"status": "failed", "error": "no availability"}, headers=tenant.member.headers
    )
    assert response.status_code == 200
    run = response.json()
    assert (run["status"], run["error"]) == ("failed", "no availability")
    assert run["finished_at"] is not None


async def test_a_finished_runs_plan_and_error_stay_editable(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "succeeded")
    before = (await client.get(url, headers=tenant.member.headers)).json()
    response = await client.patch(
        url, json={"plan": {"final": True}, "error": "late note"}, headers=tenant.member.headers
    )
    assert response.status_code == 200
    run = response.json()
    assert (run["plan"], run["error"]) == ({"final": True}, "late note")
    assert (run["status"], run["finished_at"]) == ("succeeded", before["finished_at"])


async def test_of_concurrent_moves_exactly_one_wins(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member)
    headers = tenant.member.headers
    starts = await asyncio.gather(
        *(client.patch(url, json={"status": "running"}, headers=headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in starts) == [200] + [409] * 9
    ends = await asyncio.gather(
        *(client.patch(url, json={"status": status}, headers=headers) for status in FINISHED * 4)
    )
    assert sorted(r.status_code for r in ends) == [200] + [409] * 11
    winner = next(r for r in ends if r.status_code == 200).json()
    final = (await client.get(url, headers=headers)).json()
    assert (final["status"], final["finished_at"]) == (winner["status"], winner["finished_at"])


async def test_a_missing_run_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/v1/agent-runs/{uuid.uuid4()}"
    headers = tenant.member.headers
    assert_problem(await client.get(url, headers=headers), 404, "/problems/not-found")
    bodies: list[dict[str, Any]] = [{"status": "running"}, {"plan": {}}, {}]
    for body in bodies:
        assert_problem(await client.patch(url, json=body, headers=headers), 404)


async def test_creating_a_run_needs_an_idempotency_key_and_a_retry_replays(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    keyless = await client.post(
        "/v1/agent-runs", json={"intent": INTENT}, headers=tenant.member.headers
    )
    assert_problem(keyless, 400, "/problems/malformed")
    headers = with_key(tenant.member)
    first = await client.post("/v1/agent-runs", json={"intent": INTENT}, headers=headers)
    again = await client.post("/v1/agent-runs", json={"intent": INTENT}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert [r["id"] for r in await items(client, tenant.member, "/v1/agent-runs")] == [
        first.json()["id"]
    ]


async def test_creating_a_run_spends_an_agent_token_and_reading_a_crud_one(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create(client, tenant.member)
    assert created.headers["ratelimit-policy"].startswith('"agent";')
    fetched = await client.get(created.headers["location"], headers=tenant.member.headers)
    assert fetched.headers["ratelimit-policy"].startswith('"crud";')


# --- appends -------------------------------------------------------------------------


async def test_a_tool_call_is_appended_with_its_number(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    response = await add_tool_call(client, tenant.member, url, tool="book_hotel")
    assert response.status_code == 201
    call = response.json()
    assert response.headers["location"] == f"{url}/tool-log"
    assert call["seq"] == 1
    assert call["run_id"] == url.rsplit("/", 1)[1]
    assert (call["tool"], call["input"], call["output"]) == (
        "book_hotel",
        {"q": "reef"},
        {"hits": 3},
    )
    assert call["created_at"].endswith("Z")
    assert await items(client, tenant.admin, f"{url}/tool-log") == [call]


async def test_a_checkpoint_is_appended_with_its_sequence(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member)
    response = await add_checkpoint(client, tenant.member, url, metadata={"model": "m1"})
    assert response.status_code == 201
    checkpoint = response.json()
    assert response.headers["location"] == f"{url}/checkpoints"
    assert checkpoint["sequence"] == 1
    assert (checkpoint["state"], checkpoint["metadata"], checkpoint["parent_id"]) == (
        {"step": "search"},
        {"model": "m1"},
        None,
    )
    assert await items(client, tenant.admin, f"{url}/checkpoints") == [checkpoint]
    bare = (await add_checkpoint(client, tenant.member, url)).json()
    assert bare["metadata"] == {}


async def test_tool_calls_and_checkpoints_share_one_consecutive_counter(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member)
    numbers = [
        (await add_tool_call(client, tenant.member, url)).json()["seq"],
        (await add_checkpoint(client, tenant.member, url)).json()["sequence"],
    ]
    await client.patch(url, json={"status": "running"}, headers=tenant.member.headers)
    numbers += [
        (await add_checkpoint(client, tenant.member, url)).json()["sequence"],
        (await add_tool_call(client, tenant.member, url)).json()["seq"],
        (await add_tool_call(client, tenant.member, url)).json()["seq"],
    ]
    assert numbers == [1, 2, 3, 4, 5]
    tool_log = await items(client, tenant.member, f"{url}/tool-log")
    assert [c["seq"] for c in tool_log] == [1, 4, 5]
    checkpoints = await items(client, tenant.member, f"{url}/checkpoints")
    assert [c["sequence"] for c in checkpoints] == [2, 3]


async def test_concurrent_appends_get_distinct_consecutive_numbers(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    answers = await asyncio.gather(
        *(
            add_tool_call(client, tenant.member, url, tool=f"tool-{n}")
            if n % 2
            else add_checkpoint(client, tenant.member, url, state={"n": n})
            for n in range(20)
        )
    )
    assert [a.status_code for a in answers] == [201] * 20
    numbers = sorted(a.json().get("seq", a.json().get("sequence")) for a in answers)
    assert numbers == list(range(1, 21))
    assert (await add_tool_call(client, tenant.member, url)).json()["seq"] == 21


@pytest.mark.parametrize("status", FINISHED)
async def test_a_finished_run_takes_no_more_appends(
    client: httpx.AsyncClient, tenant: Tenant, status: str
) -> None:
    url = await new_run(client, tenant.member, status)
    before = (await client.get(url, headers=tenant.member.headers)).json()
    tool = assert_problem(
        await add_tool_call(client, tenant.member, url), 409, "/problems/conflict"
    )
    assert status in tool["detail"]
    assert_problem(await add_checkpoint(client, tenant.member, url), 409, "/problems/conflict")
    assert await items(client, tenant.member, f"{url}/tool-log") == []
    assert await items(client, tenant.member, f"{url}/checkpoints") == []
    assert (await client.get(url, headers=tenant.member.headers)).json() == before


async def test_an_append_never_rewrites_earlier_rows(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    first = (await add_tool_call(client, tenant.member, url, output={"v": 1})).json()
    await add_tool_call(client, tenant.member, url, output={"v": 2})
    log = await items(client, tenant.member, f"{url}/tool-log")
    assert log[0] == first
    assert [c["output"] for c in log] == [{"v": 1}, {"v": 2}]


async def test_a_retried_append_is_replayed_without_taking_a_number(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    headers = with_key(tenant.member)
    body = {"tool": "t", "input": {}, "output": {}}
    first = await client.post(f"{url}/tool-log", json=body, headers=headers)
    again = await client.post(f"{url}/tool-log", json=body, headers=headers)
    assert (first.json()["seq"], again.json()["seq"]) == (1, 1)
    assert again.headers["idempotent-replayed"] == "true"
    assert (await add_checkpoint(client, tenant.member, url)).json()["sequence"] == 2


async def test_appending_to_a_missing_run_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/v1/agent-runs/{uuid.uuid4()}"
    assert_problem(await add_tool_call(client, tenant.member, url), 404, "/problems/not-found")
    assert_problem(await add_checkpoint(client, tenant.member, url), 404, "/problems/not-found")


async def test_a_checkpoint_may_name_an_earlier_checkpoint_of_its_run(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    parent = (await add_checkpoint(client, tenant.member, url)).json()
    child = await add_checkpoint(client, tenant.member, url, parent_id=parent["id"])
    assert child.status_code == 201
    assert (child.json()["parent_id"], child.json()["sequence"]) == (parent["id"], 2)


async def test_a_checkpoint_parent_outside_the_run_is_422(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    await add_tool_call(client, tenant.member, url)
    sibling = await new_run(client, tenant.member, "running")
    in_sibling = (await add_checkpoint(client, tenant.member, sibling)).json()["id"]
    foreign_run = await new_run(client, other_tenant.member, "running")
    foreign = (await add_checkpoint(client, other_tenant.member, foreign_run)).json()["id"]
    for parent_id in (in_sibling, foreign, str(uuid.uuid4())):
        response = await add_checkpoint(client, tenant.member, url, parent_id=parent_id)
        body = assert_problem(response, 422, "/problems/validation")
        assert body["errors"][0]["pointer"] == "/parent_id"
    assert await items(client, tenant.member, f"{url}/checkpoints") == []
    # A refused append gives its number back: the counter has no gap.
    assert (await add_checkpoint(client, tenant.member, url)).json()["sequence"] == 2


# --- reads ---------------------------------------------------------------------------


async def test_latest_checkpoint_is_the_highest_sequence(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    for n in range(3):
        await add_checkpoint(client, tenant.member, url, state={"n": n})
        await add_tool_call(client, tenant.member, url)
    await client.patch(url, json={"status": "succeeded"}, headers=tenant.member.headers)
    latest = await client.get(f"{url}/checkpoints/latest", headers=tenant.member.headers)
    assert latest.status_code == 200
    assert (latest.json()["state"], latest.json()["sequence"]) == ({"n": 2}, 5)
    assert latest.json() == (await items(client, tenant.member, f"{url}/checkpoints"))[-1]


async def test_latest_checkpoint_of_a_run_without_any_is_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    await add_tool_call(client, tenant.member, url)
    response = await client.get(f"{url}/checkpoints/latest", headers=tenant.member.headers)
    assert_problem(response, 404, "/problems/not-found")
    missing = f"/v1/agent-runs/{uuid.uuid4()}/checkpoints/latest"
    assert_problem(await client.get(missing, headers=tenant.member.headers), 404)


@pytest.mark.parametrize("log", ["tool-log", "checkpoints"])
async def test_child_lists_are_oldest_first_and_paginated(
    client: httpx.AsyncClient, tenant: Tenant, log: str
) -> None:
    url = await new_run(client, tenant.member, "running")
    append = add_tool_call if log == "tool-log" else add_checkpoint
    key = "seq" if log == "tool-log" else "sequence"
    for _ in range(5):
        await append(client, tenant.member, url)
    headers = tenant.member.headers
    seen: list[int] = []
    params = {"limit": "2"}
    for _ in range(3):
        page = (await client.get(f"{url}/{log}", params=params, headers=headers)).json()
        seen += [item[key] for item in page["items"]]
        params["cursor"] = page["next_cursor"]
    assert seen == [1, 2, 3, 4, 5]
    assert page["next_cursor"] is None


async def test_child_lists_of_a_run_without_children_are_empty(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member)
    for log in ("tool-log", "checkpoints"):
        response = await client.get(f"{url}/{log}", headers=tenant.member.headers)
        assert response.json() == {"items": [], "next_cursor": None}


async def test_child_lists_of_a_missing_run_are_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/agent-runs/{uuid.uuid4()}"
    for log in ("tool-log", "checkpoints"):
        assert_problem(await client.get(f"{url}/{log}", headers=tenant.member.headers), 404)


async def test_list_filters_by_user_and_status_newest_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    mine = [(await create(client, tenant.member)).json()["id"] for _ in range(3)]
    theirs = (await new_run(client, tenant.admin, "running")).rsplit("/", 1)[1]
    headers = tenant.admin.headers
    everything = await items(client, tenant.member, "/v1/agent-runs")
    assert [r["id"] for r in everything] == [theirs, *reversed(mine)]
    assert "next_seq" not in everything[0]
    by_user = await items(
        client, tenant.admin, "/v1/agent-runs", user_id=str(tenant.member.user_id)
    )
    assert [r["id"] for r in by_user] == list(reversed(mine))
    running = await items(client, tenant.admin, "/v1/agent-runs", status="running")
    assert [r["id"] for r in running] == [theirs]
    none = await items(
        client, tenant.admin, "/v1/agent-runs", user_id=str(tenant.admin.user_id), status="queued"
    )
    assert none == []
    paged = await client.get("/v1/agent-runs", params={"limit": "3"}, headers=headers)
    assert [r["id"] for r in paged.json()["items"]] == [theirs, mine[2], mine[1]]
    rest = await client.get(
        "/v1/agent-runs",
        params={"limit": "3", "cursor": paged.json()["next_cursor"]},
        headers=headers,
    )
    assert [r["id"] for r in rest.json()["items"]] == [mine[0]]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "paused"}, "status"),
        ({"user_id": "me"}, "user_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], parameter: str
) -> None:
    response = await client.get("/v1/agent-runs", params=params, headers=tenant.member.headers)
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["parameter"] == parameter


async def test_a_cursor_is_only_good_where_it_was_issued(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member, "running")
    for _ in range(2):
        await add_tool_call(client, tenant.member, url)
        await add_checkpoint(client, tenant.member, url)
    headers = tenant.member.headers
    page = await client.get(f"{url}/tool-log", params={"limit": "1"}, headers=headers)
    cursor = page.json()["next_cursor"]
    for elsewhere in (f"{url}/checkpoints", "/v1/agent-runs"):
        response = await client.get(elsewhere, params={"cursor": cursor}, headers=headers)
        assert_problem(response, 400, "/problems/malformed")
    garbage = await client.get(f"{url}/tool-log", params={"cursor": "%%%"}, headers=headers)
    assert_problem(garbage, 400, "/problems/malformed")


# --- tenancy and input ---------------------------------------------------------------

# The routes of one run, below /v1/agent-runs/{id}.
RUN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PATCH", "", {"status": "cancelled"}),
    ("PATCH", "", {"plan": {"stolen": True}}),
    ("GET", "/tool-log", None),
    ("POST", "/tool-log", {"tool": "t", "input": {}, "output": {}}),
    ("GET", "/checkpoints", None),
    ("POST", "/checkpoints", {"state": {}}),
    ("GET", "/checkpoints/latest", None),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), RUN_ROUTES)
async def test_another_orgs_run_is_not_found(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    url = await new_run(client, tenant.member, "running")
    await add_tool_call(client, tenant.member, url)
    await add_checkpoint(client, tenant.member, url)
    before = (await client.get(url, headers=tenant.member.headers)).json()
    response = await client.request(
        method, f"{url}{suffix}", json=body, headers=with_key(other_tenant.admin)
    )
    assert_problem(response, 404, "/problems/not-found")
    assert (await client.get(url, headers=tenant.member.headers)).json() == before
    assert len(await items(client, tenant.member, f"{url}/tool-log")) == 1
    assert len(await items(client, tenant.member, f"{url}/checkpoints")) == 1
    assert await items(client, other_tenant.admin, "/v1/agent-runs") == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/agent-runs", None),
        ("POST", "/v1/agent-runs", {"intent": "x"}),
        *((method, f"/v1/agent-runs/{{id}}{suffix}", body) for method, suffix, body in RUN_ROUTES),
    ],
)
async def test_every_route_needs_a_token(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path.format(id=uuid.uuid4()), json=body)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("suffix", "body", "pointer"),
    [
        ("", {"intent": ""}, "/intent"),
        ("", {"intent": "x" * 100_001}, "/intent"),
        ("", {"plan": {}}, "/intent"),
        ("", {"intent": "x", "plan": [1]}, "/plan"),
        ("", {"intent": "x", "status": "running"}, "/status"),
        ("/{id}", {"status": "paused"}, "/status"),
        ("/{id}", {"plan": "fly"}, "/plan"),
        ("/{id}", {"error": 7}, "/error"),
        ("/{id}", {"intent": "rewritten"}, "/intent"),
        ("/{id}/tool-log", {"tool": "", "input": {}, "output": {}}, "/tool"),
        ("/{id}/tool-log", {"tool": "t" * 201, "input": {}, "output": {}}, "/tool"),
        ("/{id}/tool-log", {"tool": "t", "input": {}}, "/output"),
        ("/{id}/tool-log", {"tool": "t", "input": [1], "output": {}}, "/input"),
        ("/{id}/tool-log", {"tool": "t", "input": {}, "output": {}, "seq": 1}, "/seq"),
        ("/{id}/checkpoints", {"metadata": {}}, "/state"),
        ("/{id}/checkpoints", {"state": {}, "metadata": [1]}, "/metadata"),
        ("/{id}/checkpoints", {"state": {}, "parent_id": "first"}, "/parent_id"),
        ("/{id}/checkpoints", {"state": {}, "sequence": 1}, "/sequence"),
    ],
)
async def test_invalid_bodies_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, suffix: str, body: Any, pointer: str
) -> None:
    url = await new_run(client, tenant.member, "running")
    method = "PATCH" if suffix == "/{id}" else "POST"
    target = "/v1/agent-runs" + suffix.format(id=url.rsplit("/", 1)[1])
    response = await client.request(method, target, json=body, headers=with_key(tenant.member))
    problem = assert_problem(response, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == pointer
    run = (await client.get(url, headers=tenant.member.headers)).json()
    assert (run["status"], run["plan"]) == ("running", {})
    assert await items(client, tenant.member, f"{url}/tool-log") == []
    assert await items(client, tenant.member, f"{url}/checkpoints") == []


@pytest.mark.parametrize("suffix", ["", "/{id}", "/{id}/tool-log", "/{id}/checkpoints"])
async def test_undecodable_bodies_are_400(
    client: httpx.AsyncClient, tenant: Tenant, suffix: str
) -> None:
    url = await new_run(client, tenant.member)
    method = "PATCH" if suffix == "/{id}" else "POST"
    target = "/v1/agent-runs" + suffix.format(id=url.rsplit("/", 1)[1])
    headers = with_key(tenant.member, **{"Content-Type": "application/json"})
    response = await client.request(method, target, content=b"{not json}", headers=headers)
    assert_problem(response, 400, "/problems/malformed")


@pytest.mark.parametrize(
    ("suffix", "raw", "pointer"),
    [
        ("", b'{"intent": "a\\u0000b"}', "/intent"),
        ("", b'{"intent": "x", "plan": {"days": [{"note": "\\u0000"}]}}', "/plan/days/0/note"),
        ("", b'{"intent": "x", "plan": {"a": {"k\\u0000": 1}}}', "/plan/a"),
        ("/{id}", b'{"error": "\\u0000"}', "/error"),
        ("/{id}/tool-log", b'{"tool": "\\u0000", "input": {}, "output": {}}', "/tool"),
        (
            "/{id}/tool-log",
            b'{"tool": "t", "input": {}, "output": {"a/b": "\\u0000"}}',
            "/output/a~1b",
        ),
        ("/{id}/checkpoints", b'{"state": {"\\u0000": 1}}', "/state"),
        ("/{id}/checkpoints", b'{"state": {}, "metadata": {"m": ["\\u0000"]}}', "/metadata/m/0"),
    ],
)
async def test_nul_characters_are_422_not_500(
    client: httpx.AsyncClient, tenant: Tenant, suffix: str, raw: bytes, pointer: str
) -> None:
    url = await new_run(client, tenant.member, "running")
    method = "PATCH" if suffix == "/{id}" else "POST"
    target = "/v1/agent-runs" + suffix.format(id=url.rsplit("/", 1)[1])
    headers = with_key(tenant.member, **{"Content-Type": "application/json"})
    response = await client.request(method, target, content=raw, headers=headers)
    problem = assert_problem(response, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == pointer
    assert (await client.get(url, headers=tenant.member.headers)).json()["error"] is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"intent": "\xff"}', id="invalid-utf8"),
        pytest.param(
            b'{"intent": "x", "plan": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            id="deep-nesting",
        ),
    ],
)
async def test_undecodable_hostile_bodies_are_400(
    client: httpx.AsyncClient, tenant: Tenant, raw: bytes
) -> None:
    headers = with_key(tenant.member, **{"Content-Type": "application/json"})
    response = await client.post("/v1/agent-runs", content=raw, headers=headers)
    assert_problem(response, 400, "/problems/malformed")


# --- deleting, one checkpoint, threads -----------------------------------------------------


def run_id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rsplit("/", 1)[1])


async def rows_of(engine: AsyncEngine, run: uuid.UUID) -> dict[str, int]:
    """The rows a run has in each of its tables, counted as the owner (no tenant filter)."""
    counts = {}
    async with engine.connect() as conn:
        for table, column in (
            ("agent_run", "id"),
            ("agent_tool_call", "run_id"),
            ("agent_checkpoint", "run_id"),
        ):
            query = text(f"SELECT count(*) FROM {table} WHERE {column} = :run")
            counts[table] = (await conn.execute(query, {"run": run})).scalar_one()
    return counts


async def with_children(client: httpx.AsyncClient, account: Account) -> str:
    """A running run with two tool calls and two checkpoints, the second the first's child."""
    url = await new_run(client, account, "running")
    await add_tool_call(client, account, url)
    first = (await add_checkpoint(client, account, url)).json()
    await add_tool_call(client, account, url)
    assert (await add_checkpoint(client, account, url, parent_id=first["id"])).status_code == 201
    return url


async def test_deleting_a_run_deletes_its_tool_calls_and_checkpoints(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await with_children(client, tenant.member)
    sibling = await with_children(client, tenant.member)
    assert await rows_of(owner_engine, run_id(url)) == {
        "agent_run": 1,
        "agent_tool_call": 2,
        "agent_checkpoint": 2,
    }
    response = await client.delete(url, headers=tenant.admin.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["ratelimit-policy"].startswith('"crud";')
    assert await rows_of(owner_engine, run_id(url)) == {
        "agent_run": 0,
        "agent_tool_call": 0,
        "agent_checkpoint": 0,
    }
    for suffix in ("", "/tool-log", "/checkpoints", "/checkpoints/latest"):
        assert_problem(await client.get(f"{url}{suffix}", headers=tenant.member.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.admin.headers), 404)
    assert await rows_of(owner_engine, run_id(sibling)) == {
        "agent_run": 1,
        "agent_tool_call": 2,
        "agent_checkpoint": 2,
    }
    assert [r["id"] for r in await items(client, tenant.member, "/v1/agent-runs")] == [
        str(run_id(sibling))
    ]


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "cancelled"])
async def test_a_run_is_deleted_whatever_its_status(
    client: httpx.AsyncClient, tenant: Tenant, status: str
) -> None:
    url = await new_run(client, tenant.member, status)
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.member.headers), 404)


async def test_deleting_a_missing_run_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.delete(f"/v1/agent-runs/{uuid.uuid4()}", headers=tenant.member.headers)
    assert_problem(response, 404, "/problems/not-found")


async def test_a_retried_delete_replays_its_204(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await with_children(client, tenant.member)
    headers = with_key(tenant.member)
    first = await client.delete(url, headers=headers)
    again = await client.delete(url, headers=headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(await client.delete(url, headers=with_key(tenant.member)), 404)
    assert (await rows_of(owner_engine, run_id(url)))["agent_run"] == 0


async def test_a_deleted_run_leaves_the_itineraries_that_named_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await new_run(client, tenant.member)
    trip = {"title": "Red Sea", "start_date": "2027-03-01", "end_date": "2027-03-08"}
    created = await client.post(
        "/v1/itineraries",
        json=trip | {"agent_run_id": str(run_id(url))},
        headers=with_key(tenant.member),
    )
    assert created.status_code == 201, created.text
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    kept = await client.get(created.headers["location"], headers=tenant.member.headers)
    assert kept.status_code == 200
    assert kept.json()["agent_run_id"] is None
    assert kept.json()["title"] == "Red Sea"


async def test_one_checkpoint_is_read_by_its_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = await with_children(client, tenant.member)
    listed = await items(client, tenant.member, f"{url}/checkpoints")
    for checkpoint in listed:
        response = await client.get(
            f"{url}/checkpoints/{checkpoint['id']}", headers=tenant.member.headers
        )
        assert response.status_code == 200
        assert response.json() == checkpoint
        assert response.headers["ratelimit-policy"].startswith('"crud";')
    assert listed[1]["parent_id"] == listed[0]["id"]


async def test_a_checkpoint_is_found_only_under_its_own_run(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = await with_children(client, tenant.member)
    checkpoint = (await items(client, tenant.member, f"{url}/checkpoints"))[0]["id"]
    sibling = await new_run(client, tenant.member, "running")
    foreign = await with_children(client, other_tenant.member)
    foreign_checkpoint = (await items(client, other_tenant.member, f"{foreign}/checkpoints"))[0]
    missing_run = f"/v1/agent-runs/{uuid.uuid4()}"
    for target, account in [
        (f"{sibling}/checkpoints/{checkpoint}", tenant.member),
        (f"{url}/checkpoints/{uuid.uuid4()}", tenant.member),
        (f"{missing_run}/checkpoints/{checkpoint}", tenant.member),
        (f"{url}/checkpoints/{checkpoint}", other_tenant.admin),
        (f"{url}/checkpoints/{foreign_checkpoint['id']}", tenant.member),
        (f"{foreign}/checkpoints/{foreign_checkpoint['id']}", tenant.member),
    ]:
        assert_problem(
            await client.get(target, headers=account.headers), 404, "/problems/not-found"
        )
    malformed = await client.get(f"{url}/checkpoints/first", headers=tenant.member.headers)
    assert_problem(malformed, 404)


async def test_a_run_may_name_its_thread(client: httpx.AsyncClient, tenant: Tenant) -> None:
    thread = "support/ticket 4711 \u2014 Dahab"
    created = await create(client, tenant.member, thread_id=thread)
    assert created.status_code == 201
    assert created.json()["thread_id"] == thread
    url = created.headers["location"]
    assert (await client.get(url, headers=tenant.member.headers)).json()["thread_id"] == thread
    plain = (await create(client, tenant.member)).json()
    assert plain["thread_id"] is None
    moved = await client.patch(url, json={"thread_id": "t" * 255}, headers=tenant.member.headers)
    assert moved.json()["thread_id"] == "t" * 255
    cleared = await client.patch(url, json={"thread_id": None}, headers=tenant.member.headers)
    assert cleared.json()["thread_id"] is None


async def test_list_filters_by_thread_exactly_across_pages(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    thread = f"thread-{uuid.uuid4()}"
    named = []
    for n in range(5):
        named.append((await create(client, tenant.member, thread_id=thread)).json()["id"])
        await create(client, tenant.member, thread_id=f"{thread}-{n}")
        await create(client, tenant.member, thread_id=thread.upper())
    await create(client, other_tenant.member, thread_id=thread)
    seen: list[str] = []
    params = {"thread_id": thread, "limit": "2"}
    for _ in range(3):
        page = (
            await client.get("/v1/agent-runs", params=params, headers=tenant.admin.headers)
        ).json()
        assert all(run["thread_id"] == thread for run in page["items"])
        seen += [run["id"] for run in page["items"]]
        params["cursor"] = page["next_cursor"]
    assert seen == list(reversed(named))
    assert page["next_cursor"] is None
    by_all = await items(
        client,
        tenant.admin,
        "/v1/agent-runs",
        thread_id=thread,
        status="queued",
        user_id=str(tenant.member.user_id),
    )
    assert [r["id"] for r in by_all] == list(reversed(named))
    assert await items(client, tenant.admin, "/v1/agent-runs", thread_id="elsewhere") == []


async def test_a_cursor_never_lets_unfiltered_rows_into_a_filtered_page(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The cursor is a position only: a filter added or changed mid-listing applies
    to every later page."""
    thread = f"thread-{uuid.uuid4()}"
    made = [
        (await create(client, tenant.member, thread_id=thread if n % 2 else None)).json()["id"]
        for n in range(6)
    ]
    first = await client.get("/v1/agent-runs", params={"limit": "2"}, headers=tenant.member.headers)
    assert [r["id"] for r in first.json()["items"]] == [made[5], made[4]]
    params = {"limit": "10", "cursor": first.json()["next_cursor"], "thread_id": thread}
    rest = await items(client, tenant.member, "/v1/agent-runs", **params)
    assert [r["id"] for r in rest] == [made[3], made[1]]


@pytest.mark.parametrize("thread_id", ["", "t" * 256, 7, "a\u0000b"])
async def test_an_invalid_thread_name_is_422(
    client: httpx.AsyncClient, tenant: Tenant, thread_id: Any
) -> None:
    body = assert_problem(
        await create(client, tenant.member, thread_id=thread_id), 422, "/problems/validation"
    )
    assert body["errors"][0]["pointer"] == "/thread_id"
    url = await new_run(client, tenant.member)
    patched = await client.patch(url, json={"thread_id": thread_id}, headers=tenant.member.headers)
    assert assert_problem(patched, 422)["errors"][0]["pointer"] == "/thread_id"
    assert [r["thread_id"] for r in await items(client, tenant.member, "/v1/agent-runs")] == [None]


@pytest.mark.parametrize("value", ["", "t" * 256, "a\x00b"])
async def test_an_invalid_thread_filter_is_422(
    client: httpx.AsyncClient, tenant: Tenant, value: str
) -> None:
    response = await client.get(
        "/v1/agent-runs", params={"thread_id": value}, headers=tenant.member.headers
    )
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["parameter"] == "thread_id"


async def save_thread_checkpoint(client: httpx.AsyncClient, account: Account, thread: str) -> None:
    body = {"thread_id": thread, "checkpoint_id": "1", "type": "msgpack", "checkpoint": "eA=="}
    response = await client.post("/v1/threads/checkpoints", json=body, headers=account.headers)
    assert response.status_code == 201, response.text


async def test_threads_and_runs_outlive_each_other(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"thread-{uuid.uuid4()}"
    await save_thread_checkpoint(client, tenant.member, thread)
    first = (await create(client, tenant.member, thread_id=thread)).headers["location"]
    second = (await create(client, tenant.member, thread_id=thread)).headers["location"]
    assert (await client.delete(first, headers=tenant.member.headers)).status_code == 204
    saved = await client.get(
        "/v1/threads/checkpoint", params={"thread_id": thread}, headers=tenant.member.headers
    )
    assert saved.status_code == 200, saved.text
    gone = await client.delete(
        "/v1/threads", params={"thread_id": thread}, headers=tenant.member.headers
    )
    assert gone.status_code == 204
    run = await client.get(second, headers=tenant.member.headers)
    assert (run.status_code, run.json()["thread_id"]) == (200, thread)
    listed = await items(client, tenant.member, "/v1/agent-runs", thread_id=thread)
    assert [r["id"] for r in listed] == [run.json()["id"]]


async def test_a_run_may_name_a_thread_that_does_not_exist(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create(client, tenant.member, thread_id=f"not-yet-{uuid.uuid4()}")
    assert created.status_code == 201
