"""Threads for LangGraph: checkpoints by namespace, channel values by version, pending
writes, lists, delete, copy, prune, the state bucket, and retention."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from langgraph.checkpoint.base.id import uuid6
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db import models as m
from itinera.db.engine import create_engine, session_factory
from itinera.db.pool import request_pool
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.threads.repository import ThreadRepository
from itinera.retention.policies import policies
from itinera.retention.sweeper import sweep
from itinera.settings import Settings
from itinera_client.schemas.threads import CheckpointPut, WriteIn, WritesPut
from tests.support.app import running_app
from tests.support.http import assert_problem
from tests.support.tenants import Account, Tenant

MSGPACK = "application/msgpack"
AS_MSGPACK = {"Content-Type": MSGPACK, "Accept": MSGPACK}


def new_checkpoint_id() -> str:
    """LangGraph's own: time-ordered, compared as strings."""
    return str(uuid6(clock_seq=-1))


def value(channel: str, version: str, blob: bytes | None, type_: str = "msgpack") -> dict[str, Any]:
    return {"channel": channel, "version": version, "type": type_, "value": blob}


async def send(
    client: httpx.AsyncClient,
    account: Account,
    method: str,
    path: str,
    body: Any = None,
    *,
    msgpack: bool = True,
    **headers: str,
) -> httpx.Response:
    if not msgpack:
        return await client.request(method, path, json=body, headers={**account.headers, **headers})
    return await client.request(
        method,
        path,
        content=msgspec.msgpack.encode(body),
        headers={**account.headers, **AS_MSGPACK, **headers},
    )


def decoded(response: httpx.Response) -> Any:
    if response.headers["content-type"] == MSGPACK:
        return msgspec.msgpack.decode(response.content)
    return response.json()


async def put(
    client: httpx.AsyncClient,
    account: Account,
    thread_id: str,
    checkpoint_id: str | None = None,
    *,
    expect: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "thread_id": thread_id,
        "checkpoint_id": checkpoint_id or new_checkpoint_id(),
        "type": "msgpack",
        "checkpoint": b"checkpoint " + (checkpoint_id or "").encode(),
        **fields,
    }
    response = await send(client, account, "POST", "/v1/threads/checkpoints", body)
    if expect is not None:
        assert response.status_code == expect, response.text
    else:
        assert response.status_code in (200, 201), response.text
    return body


async def put_writes(
    client: httpx.AsyncClient,
    account: Account,
    thread_id: str,
    checkpoint_id: str,
    task_id: str,
    writes: list[tuple[int, str, bytes]],
    **fields: Any,
) -> httpx.Response:
    body = {
        "thread_id": thread_id,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "writes": [
            {"idx": idx, "channel": channel, "type": "msgpack", "value": blob}
            for idx, channel, blob in writes
        ],
        **fields,
    }
    return await send(client, account, "POST", "/v1/threads/writes", body)


async def get(
    client: httpx.AsyncClient,
    account: Account,
    thread_id: str,
    checkpoint_id: str | None = None,
    checkpoint_ns: str = "",
) -> dict[str, Any] | None:
    params = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        params["checkpoint_id"] = checkpoint_id
    response = await client.get(
        "/v1/threads/checkpoint", params=params, headers={**account.headers, "Accept": MSGPACK}
    )
    if response.status_code == 404:
        assert_problem(response, 404, "/problems/not-found")
        return None
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MSGPACK
    return decoded(response)  # type: ignore[no-any-return]


async def search(client: httpx.AsyncClient, account: Account, **body: Any) -> dict[str, Any]:
    response = await send(client, account, "POST", "/v1/threads/checkpoints/search", body)
    assert response.status_code == 200, response.text
    return decoded(response)  # type: ignore[no-any-return]


async def listed(client: httpx.AsyncClient, account: Account, **body: Any) -> list[str]:
    """Every checkpoint id the search finds, page after page."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await search(client, account, **body, cursor=cursor)
        ids += [item["checkpoint_id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            return ids


def values_of(found: dict[str, Any]) -> dict[str, bytes | None]:
    return {v["channel"]: v["value"] for v in found["values"]}


def writes_of(found: dict[str, Any]) -> list[tuple[str, str, int, str, bytes]]:
    return [
        (w["task_id"], w["task_path"], w["idx"], w["channel"], w["value"])
        for w in found["pending_writes"]
    ]


async def rows(engine: AsyncEngine, org_id: uuid.UUID) -> dict[str, int]:
    """The org's rows in each thread table, as the owner sees them."""
    counts = {}
    async with engine.connect() as conn:
        for model in (m.Thread, m.ThreadCheckpoint, m.ThreadBlob, m.ThreadWrite):
            counts[model.__tablename__] = await conn.scalar(
                select(func.count()).select_from(model).where(model.org_id == org_id)
            )
    return counts


async def test_a_checkpoint_round_trips_its_bytes_exactly(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    blob = os.urandom(10_000) + b"\x00\xff" * 10
    cid = new_checkpoint_id()
    body = {
        "thread_id": thread,
        "checkpoint_id": cid,
        "type": "msgpack",
        "checkpoint": b"\x00\x01 opaque \xff",
        "metadata": {"source": "input", "step": -1, "parents": {}, "nested": {"k": [1, "x"]}},
        "channel_versions": {"messages": "00000000000000000000000000000001.0.5", "empty": "2"},
        "values": [
            value("messages", "00000000000000000000000000000001.0.5", blob),
            value("empty", "2", None, "empty"),
        ],
    }
    created = await send(client, tenant.member, "POST", "/v1/threads/checkpoints", body)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == MSGPACK
    ref = decoded(created)
    assert ref == {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": cid}
    location = await client.get(
        created.headers["location"], headers={**tenant.admin.headers, "Accept": MSGPACK}
    )
    assert location.status_code == 200, location.text

    found = await get(client, tenant.admin, thread)
    assert found is not None
    assert decoded(location) == found
    assert found["checkpoint"] == b"\x00\x01 opaque \xff"
    assert (found["thread_id"], found["checkpoint_ns"], found["checkpoint_id"]) == (thread, "", cid)
    assert found["parent_checkpoint_id"] is None
    assert found["metadata"] == body["metadata"]
    assert values_of(found) == {"messages": blob, "empty": None}
    assert {v["channel"]: v["type"] for v in found["values"]} == {
        "messages": "msgpack",
        "empty": "empty",
    }
    assert found["pending_writes"] == []
    assert found == await get(client, tenant.member, thread, cid)

    # LangGraph saves a checkpoint again: the same id replaces it (200), nothing doubles.
    again = await send(
        client, tenant.member, "POST", "/v1/threads/checkpoints", {**body, "metadata": {"v": 2}}
    )
    assert again.status_code == 200, again.text
    replaced = await get(client, tenant.member, thread)
    assert replaced is not None
    assert replaced["metadata"] == {"v": 2}
    assert values_of(replaced) == {"messages": blob, "empty": None}


async def test_json_bodies_carry_bytes_as_base64(client: httpx.AsyncClient, tenant: Tenant) -> None:
    thread = f"json-{uuid.uuid4()}"
    blob = bytes(range(256))
    cid = new_checkpoint_id()
    body = {
        "thread_id": thread,
        "checkpoint_id": cid,
        "type": "json",
        "checkpoint": msgspec.json.encode(blob).decode().strip('"'),
        "channel_versions": {"a": "1"},
        "values": [value("a", "1", None) | {"value": "AAEC"}],
    }
    created = await send(
        client, tenant.member, "POST", "/v1/threads/checkpoints", body, msgpack=False
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/json"
    as_json = await client.get(
        "/v1/threads/checkpoint", params={"thread_id": thread}, headers=tenant.member.headers
    )
    assert as_json.headers["content-type"] == "application/json"
    answer = as_json.json()
    assert answer["checkpoint"] == body["checkpoint"]
    assert answer["values"][0]["value"] == "AAEC"
    as_msgpack = await get(client, tenant.member, thread)
    assert as_msgpack is not None
    assert as_msgpack["checkpoint"] == blob
    assert values_of(as_msgpack) == {"a": b"\x00\x01\x02"}
    bad = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/checkpoints",
        {**body, "checkpoint": "not base64!"},
        msgpack=False,
    )
    assert_problem(bad, 422, "/problems/validation")


async def test_values_are_rebuilt_from_the_versions_and_an_emptied_channel_stays_gone(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    first = await put(
        client,
        tenant.member,
        thread,
        channel_versions={"a": "1", "b": "1"},
        values=[value("a", "1", b"a1"), value("b", "1", b"b1")],
    )
    # Only the channel that changed travels with the next checkpoint.
    second = await put(
        client,
        tenant.member,
        thread,
        parent_checkpoint_id=first["checkpoint_id"],
        channel_versions={"a": "2", "b": "1"},
        values=[value("a", "2", b"a2")],
    )
    # A channel that leaves the versions is gone from the values, though its blob stays.
    third = await put(
        client,
        tenant.member,
        thread,
        parent_checkpoint_id=second["checkpoint_id"],
        channel_versions={"a": "2", "c": "1"},
        values=[value("c", "1", b"c1")],
    )
    latest = await get(client, tenant.member, thread)
    assert latest is not None
    assert latest["checkpoint_id"] == third["checkpoint_id"]
    assert latest["parent_checkpoint_id"] == second["checkpoint_id"]
    assert values_of(latest) == {"a": b"a2", "c": b"c1"}
    by_id = {
        cid: await get(client, tenant.member, thread, cid)
        for cid in (first["checkpoint_id"], second["checkpoint_id"])
    }
    assert values_of(by_id[first["checkpoint_id"]] or {}) == {"a": b"a1", "b": b"b1"}
    assert values_of(by_id[second["checkpoint_id"]] or {}) == {"a": b"a2", "b": b"b1"}
    assert await get(client, tenant.member, thread, new_checkpoint_id()) is None
    assert await get(client, tenant.member, thread, checkpoint_ns="child:1") is None


async def test_namespaces_are_apart(client: httpx.AsyncClient, tenant: Tenant) -> None:
    thread = f"t-{uuid.uuid4()}"
    root = await put(client, tenant.member, thread, channel_versions={"x": "1"}, values=[])
    await put(
        client, tenant.member, thread, channel_versions={"x": "1"}, values=[value("x", "1", b"r")]
    )
    child = await put(
        client,
        tenant.member,
        thread,
        checkpoint_ns="child:1",
        channel_versions={"x": "1"},
        values=[value("x", "1", b"child")],
    )
    found = await get(client, tenant.member, thread, checkpoint_ns="child:1")
    assert found is not None
    assert found["checkpoint_id"] == child["checkpoint_id"]
    assert found["checkpoint_ns"] == "child:1"
    assert values_of(found) == {"x": b"child"}
    first = await get(client, tenant.member, thread, root["checkpoint_id"])
    assert first is not None
    assert values_of(first) == {"x": b"r"}


async def test_pending_writes_may_come_first_and_are_ordered_as_langgraph_applies_them(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    cid = new_checkpoint_id()
    # Writes of a thread and a checkpoint neither of which is saved yet.
    for task_id, task_path in (("t-b", "~b"), ("t-a", "~b"), ("t-z", "~a")):
        saved = await put_writes(
            client,
            tenant.member,
            thread,
            cid,
            task_id,
            [(1, "ch2", task_id.encode() + b"1"), (0, "ch1", task_id.encode() + b"0")],
            task_path=task_path,
        )
        assert saved.status_code == 204, saved.text
    assert await get(client, tenant.member, thread) is None
    await put(client, tenant.member, thread, cid)
    found = await get(client, tenant.member, thread)
    assert found is not None
    assert [(w[0], w[1], w[2]) for w in writes_of(found)] == [
        ("t-z", "~a", 0),
        ("t-z", "~a", 1),
        ("t-a", "~b", 0),
        ("t-a", "~b", 1),
        ("t-b", "~b", 0),
        ("t-b", "~b", 1),
    ]
    # A newer checkpoint starts without writes.
    await put(client, tenant.member, thread, parent_checkpoint_id=cid)
    latest = await get(client, tenant.member, thread)
    assert latest is not None
    assert latest["pending_writes"] == []


async def test_special_writes_overwrite_and_ordinary_ones_keep_the_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    cid = (await put(client, tenant.member, thread))["checkpoint_id"]
    first = [
        (0, "messages", b"first"),
        (-1, "__error__", b"error one"),
        (-3, "__interrupt__", b"i"),
    ]
    second = [(0, "messages", b"second"), (-1, "__error__", b"error two")]
    for writes in (first, second):
        saved = await put_writes(client, tenant.member, thread, cid, "task", writes)
        assert saved.status_code == 204, saved.text
    found = await get(client, tenant.member, thread)
    assert found is not None
    assert {(w[2], w[3], w[4]) for w in writes_of(found)} == {
        (0, "messages", b"first"),
        (-1, "__error__", b"error two"),
        (-3, "__interrupt__", b"i"),
    }


async def test_a_value_or_an_idx_given_twice_in_one_request_is_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    twice = [value("a", "1", b"x"), value("a", "1", b"y")]
    body = {
        "thread_id": thread,
        "checkpoint_id": "1",
        "type": "msgpack",
        "checkpoint": b"",
        "values": twice,
    }
    refused = await send(client, tenant.member, "POST", "/v1/threads/checkpoints", body)
    problem = assert_problem(refused, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == "/values/1"
    writes = await put_writes(
        client, tenant.member, thread, "1", "t", [(-1, "a", b""), (-1, "b", b"")]
    )
    problem = assert_problem(writes, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == "/writes/1/idx"
    assert await get(client, tenant.member, thread) is None


async def test_list_newest_first_with_before_limit_and_a_filter_on_any_metadata_key(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    ids = []
    for step in range(4):
        source = "input" if step % 2 == 0 else "loop"
        metadata = {"source": source, "step": step, "score": step * 10, "tags": {"lang": "en"}}
        ids.append((await put(client, tenant.member, thread, metadata=metadata))["checkpoint_id"])
    newest_first = list(reversed(ids))
    assert await listed(client, tenant.member, thread_id=thread) == newest_first
    assert await listed(client, tenant.member, thread_id=thread, checkpoint_ns="") == newest_first
    assert await listed(client, tenant.member, thread_id=thread, checkpoint_ns="child") == []
    assert await listed(client, tenant.member, thread_id=thread, limit=1) == newest_first
    page = await search(client, tenant.member, thread_id=thread, limit=2)
    assert [item["checkpoint_id"] for item in page["items"]] == newest_first[:2]
    assert page["next_cursor"] is not None
    assert await listed(client, tenant.member, thread_id=thread, before=ids[2]) == [ids[1], ids[0]]
    page = await search(client, tenant.member, thread_id=thread, before=ids[3], limit=1)
    assert [item["checkpoint_id"] for item in page["items"]] == [ids[2]]
    filters: list[tuple[dict[str, Any], list[str]]] = [
        ({"source": "input"}, [ids[2], ids[0]]),
        ({"step": 1}, [ids[1]]),
        ({"source": "input", "step": 2}, [ids[2]]),
        ({"source": "update", "step": 99}, []),
        ({"score": 30}, [ids[3]]),
        ({"tags": {"lang": "en"}}, newest_first),
        ({}, newest_first),
    ]
    for metadata_filter, expected in filters:
        found = await listed(client, tenant.member, thread_id=thread, filter=metadata_filter)
        assert found == expected, metadata_filter
    assert await listed(client, tenant.member, thread_id=thread, checkpoint_id=ids[1]) == [ids[1]]
    # Listed tuples are whole: values and pending writes too.
    await put_writes(client, tenant.member, thread, ids[3], "t", [(0, "ch", b"v")])
    (latest,) = (await search(client, tenant.member, thread_id=thread, limit=1))["items"]
    assert writes_of(latest) == [("t", "", 0, "ch", b"v")]
    assert latest == await get(client, tenant.member, thread)


async def test_list_across_the_orgs_threads_pages_through_copies_with_equal_ids(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    run = str(uuid.uuid4())
    source = f"t-{uuid.uuid4()}"
    ids = [
        (await put(client, tenant.member, source, metadata={"run": run}))["checkpoint_id"]
        for _ in range(3)
    ]
    await put(client, tenant.member, f"t-{uuid.uuid4()}", metadata={"run": "another"})
    await put(client, other_tenant.member, source, metadata={"run": run})
    target = f"copy-{uuid.uuid4()}"
    copied = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/copy",
        {"source_thread_id": source, "target_thread_id": target},
    )
    assert copied.status_code == 204, copied.text
    # Each id now in two threads: pages of one still meet every checkpoint once.
    expected = [cid for cid in reversed(ids) for _ in range(2)]
    assert await listed(client, tenant.member, filter={"run": run}, limit=1) == expected
    assert await listed(client, tenant.member, filter={"run": run}) == expected
    found = (await search(client, tenant.member, filter={"run": run}))["items"]
    assert {item["thread_id"] for item in found} == {source, target}
    garbage = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/checkpoints/search",
        {"filter": {"run": run}, "cursor": "not-a-cursor"},
    )
    assert_problem(garbage, 400, "/problems/malformed")
    page = await search(client, tenant.member, filter={"run": run}, limit=1)
    elsewhere = await send(
        client,
        other_tenant.member,
        "POST",
        "/v1/threads/checkpoints/search",
        {"filter": {"run": run}, "cursor": page["next_cursor"]},
    )
    assert_problem(elsewhere, 400, "/problems/malformed")


async def test_deleting_a_thread_removes_all_its_state(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    thread = f"to/delete/{uuid.uuid4()}"
    kept = f"t-{uuid.uuid4()}"
    for name in (thread, kept):
        cid = (
            await put(
                client,
                tenant.member,
                name,
                channel_versions={"a": "1"},
                values=[value("a", "1", b"a")],
            )
        )["checkpoint_id"]
        await put(client, tenant.member, name, checkpoint_ns="child:1")
        await put_writes(client, tenant.member, name, cid, "t", [(0, "a", b"w")])
    before = await rows(owner_engine, tenant.org_id)
    deleted = await client.delete(
        "/v1/threads", params={"thread_id": thread}, headers=tenant.member.headers
    )
    assert deleted.status_code == 204, deleted.text
    assert await get(client, tenant.member, thread) is None
    assert await get(client, tenant.member, thread, checkpoint_ns="child:1") is None
    assert await listed(client, tenant.member, thread_id=thread) == []
    assert await get(client, tenant.member, kept) is not None
    after = await rows(owner_engine, tenant.org_id)
    assert after == {
        "thread": before["thread"] - 1,
        "thread_checkpoint": before["thread_checkpoint"] - 2,
        "thread_blob": before["thread_blob"] - 1,
        "thread_write": before["thread_write"] - 1,
    }
    again = await client.delete(
        "/v1/threads", params={"thread_id": thread}, headers=tenant.member.headers
    )
    assert_problem(again, 404, "/problems/not-found")


async def test_copy_keeps_ids_values_and_writes_and_leaves_the_source(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    source, target = f"src-{uuid.uuid4()}", f"dst-{uuid.uuid4()}"
    first = await put(
        client,
        tenant.member,
        source,
        metadata={"step": 0},
        channel_versions={"a": "1"},
        values=[value("a", "1", b"a1")],
    )
    second = await put(
        client,
        tenant.member,
        source,
        parent_checkpoint_id=first["checkpoint_id"],
        metadata={"step": 1},
        channel_versions={"a": "2"},
        values=[value("a", "2", b"a2")],
    )
    await put(client, tenant.member, source, checkpoint_ns="child:1")
    await put_writes(client, tenant.member, source, second["checkpoint_id"], "t", [(0, "x", b"w")])
    before = await listed(client, tenant.member, thread_id=source)
    copied = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/copy",
        {"source_thread_id": source, "target_thread_id": target},
    )
    assert copied.status_code == 204, copied.text
    assert await listed(client, tenant.member, thread_id=target) == before
    assert await listed(client, tenant.member, thread_id=source) == before
    for ns in ("", "child:1"):
        original = await get(client, tenant.member, source, checkpoint_ns=ns)
        copy = await get(client, tenant.member, target, checkpoint_ns=ns)
        assert original is not None
        assert copy is not None
        assert {**copy, "thread_id": source} == original
    old = await get(client, tenant.member, target, first["checkpoint_id"])
    assert old is not None
    assert values_of(old) == {"a": b"a1"}
    missing = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/copy",
        {"source_thread_id": f"none-{uuid.uuid4()}", "target_thread_id": f"t-{uuid.uuid4()}"},
    )
    assert_problem(missing, 404, "/problems/not-found")
    itself = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/copy",
        {"source_thread_id": source, "target_thread_id": source},
    )
    assert_problem(itself, 422, "/problems/validation")


async def test_prune_keeps_the_newest_checkpoint_of_each_namespace_with_what_it_needs(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    thread, untouched = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    parent = None
    for n in range(1, 4):
        # "a" changes every step; "b" is saved once and named by every checkpoint.
        versions = {"a": str(n), "b": "1"}
        values = [value("a", str(n), f"a{n}".encode())] + (
            [value("b", "1", b"b")] if n == 1 else []
        )
        saved = await put(
            client,
            tenant.member,
            thread,
            parent_checkpoint_id=parent,
            channel_versions=versions,
            values=values,
        )
        await put_writes(
            client, tenant.member, thread, saved["checkpoint_id"], "t", [(0, "x", b"w")]
        )
        parent = saved["checkpoint_id"]
    for _ in range(2):
        child = await put(client, tenant.member, thread, checkpoint_ns="child:1")
    # Writes saved ahead of a checkpoint that is not there yet are not the prune's.
    ahead = new_checkpoint_id()
    await put_writes(client, tenant.member, thread, ahead, "t", [(0, "x", b"ahead")])
    for _ in range(2):
        await put(client, tenant.member, untouched)
    await put(client, other_tenant.member, thread)
    await put(client, other_tenant.member, thread)
    pruned = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/prune",
        {"thread_ids": [thread, f"none-{uuid.uuid4()}", thread], "strategy": "keep_latest"},
    )
    assert pruned.status_code == 204, pruned.text
    assert await listed(client, tenant.member, thread_id=thread, checkpoint_ns="") == [parent]
    assert await listed(client, tenant.member, thread_id=thread, checkpoint_ns="child:1") == [
        child["checkpoint_id"]
    ]
    latest = await get(client, tenant.member, thread)
    assert latest is not None
    assert values_of(latest) == {"a": b"a3", "b": b"b"}
    assert writes_of(latest) == [("t", "", 0, "x", b"w")]
    assert latest["parent_checkpoint_id"] is None
    assert len(await listed(client, tenant.member, thread_id=untouched)) == 2
    assert len(await listed(client, other_tenant.member, thread_id=thread)) == 2
    async with owner_engine.connect() as conn:
        ids = select(m.Thread.id).where(m.Thread.org_id == tenant.org_id, m.Thread.name == thread)
        blobs = await conn.execute(
            select(m.ThreadBlob.channel, m.ThreadBlob.version).where(
                m.ThreadBlob.thread_id == ids.scalar_subquery()
            )
        )
        writes = await conn.execute(
            select(m.ThreadWrite.checkpoint_id).where(
                m.ThreadWrite.thread_id == ids.scalar_subquery()
            )
        )
        assert sorted(tuple(row) for row in blobs) == [("a", "3"), ("b", "1")]
        assert sorted(writes.scalars()) == sorted([parent, ahead])

    deleted = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/prune",
        {"thread_ids": [thread], "strategy": "delete"},
    )
    assert deleted.status_code == 204, deleted.text
    assert await listed(client, tenant.member, thread_id=thread) == []
    assert len(await listed(client, other_tenant.member, thread_id=thread)) == 2
    nothing = await send(client, tenant.member, "POST", "/v1/threads/prune", {"thread_ids": []})
    assert nothing.status_code == 204
    unknown = await send(
        client, tenant.member, "POST", "/v1/threads/prune", {"thread_ids": [], "strategy": "all"}
    )
    assert_problem(unknown, 422, "/problems/validation")


async def test_delete_for_runs_goes_through_every_thread_and_namespace(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    doomed, kept = str(uuid.uuid4()), str(uuid.uuid4())
    one, two = f"t-{uuid.uuid4()}", f"t-{uuid.uuid4()}"
    first = await put(
        client,
        tenant.member,
        one,
        metadata={"run_id": kept},
        channel_versions={"a": "1"},
        values=[value("a", "1", b"a1")],
    )
    second = await put(
        client,
        tenant.member,
        one,
        parent_checkpoint_id=first["checkpoint_id"],
        metadata={"run_id": doomed},
        channel_versions={"a": "1", "b": "1"},
        values=[value("b", "1", b"b1")],
    )
    await put_writes(client, tenant.member, one, second["checkpoint_id"], "t", [(0, "x", b"w")])
    await put(client, tenant.member, one, checkpoint_ns="child:1", metadata={"run_id": doomed})
    await put(client, tenant.member, two, metadata={"run_id": doomed})
    await put(client, other_tenant.member, one, metadata={"run_id": doomed})
    deleted = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/delete-for-runs",
        {"run_ids": [doomed, str(uuid.uuid4())]},
    )
    assert deleted.status_code == 204, deleted.text
    assert await listed(client, tenant.member, filter={"run_id": doomed}) == []
    assert await listed(client, tenant.member, thread_id=one) == [first["checkpoint_id"]]
    assert await get(client, tenant.member, one, second["checkpoint_id"]) is None
    assert await get(client, tenant.member, two) is None
    remaining = await get(client, tenant.member, one)
    assert remaining is not None
    assert values_of(remaining) == {"a": b"a1"}
    assert len(await listed(client, other_tenant.member, filter={"run_id": doomed})) == 1
    empty = await send(
        client, tenant.member, "POST", "/v1/threads/delete-for-runs", {"run_ids": []}
    )
    assert empty.status_code == 204


async def test_another_org_sees_nothing_and_gets_the_answers_of_a_missing_thread(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    thread = f"shared-name-{uuid.uuid4()}"
    mine = await put(client, tenant.member, thread, metadata={"who": "a"})
    missing = f"missing-{uuid.uuid4()}"
    for name in (thread, missing):
        read = await client.get(
            "/v1/threads/checkpoint",
            params={"thread_id": name},
            headers=other_tenant.member.headers,
        )
        by_id = await client.get(
            "/v1/threads/checkpoint",
            params={"thread_id": name, "checkpoint_id": mine["checkpoint_id"]},
            headers=other_tenant.member.headers,
        )
        removed = await client.delete(
            "/v1/threads", params={"thread_id": name}, headers=other_tenant.member.headers
        )
        copied = await send(
            client,
            other_tenant.member,
            "POST",
            "/v1/threads/copy",
            {"source_thread_id": name, "target_thread_id": f"x-{uuid.uuid4()}"},
        )
        answers = [read, by_id, removed, copied]
        assert [r.status_code for r in answers] == [404] * 4
        assert [r.json()["detail"] for r in answers] == [
            "no such checkpoint",
            "no such checkpoint",
            "no such thread",
            "no such thread",
        ]
        assert await listed(client, other_tenant.member, thread_id=name) == []
    assert await listed(client, other_tenant.member, filter={"who": "a"}) == []
    # The same name in the other org is another thread.
    theirs = await put(client, other_tenant.member, thread, metadata={"who": "b"})
    mine_found = await get(client, tenant.member, thread)
    theirs_found = await get(client, other_tenant.member, thread)
    assert mine_found is not None
    assert theirs_found is not None
    assert mine_found["checkpoint_id"] == mine["checkpoint_id"]
    assert theirs_found["checkpoint_id"] == theirs["checkpoint_id"]


async def test_concurrent_saves_to_one_thread_lose_nothing(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """A new thread, saved to by 20 checkpoints and 20 tasks at once: one thread, all kept."""
    thread = f"busy-{uuid.uuid4()}"
    ids = [new_checkpoint_id() for _ in range(20)]
    anchor = ids[0]

    async def save(n: int) -> int:
        body = await put(
            client,
            tenant.member,
            thread,
            ids[n],
            channel_versions={f"c{n}": "1", "shared": "1"},
            values=[value(f"c{n}", "1", f"v{n}".encode()), value("shared", "1", b"s")],
        )
        return len(body)

    async def write(n: int) -> int:
        saved = await put_writes(
            client, tenant.member, thread, anchor, f"task-{n}", [(0, "x", b"%d" % n)]
        )
        return saved.status_code

    results = await asyncio.gather(*(save(n) for n in range(20)), *(write(n) for n in range(20)))
    assert results[20:] == [204] * 20
    assert sorted(await listed(client, tenant.member, thread_id=thread)) == sorted(ids)
    for n in (0, 7, 19):
        found = await get(client, tenant.member, thread, ids[n])
        assert found is not None
        assert values_of(found) == {f"c{n}": f"v{n}".encode(), "shared": b"s"}
    anchored = await get(client, tenant.member, thread, anchor)
    assert anchored is not None
    assert len(anchored["pending_writes"]) == 20
    counts = await rows(owner_engine, tenant.org_id)
    assert counts["thread"] == 1


async def test_a_huge_value_is_413_problem(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    thread = f"t-{uuid.uuid4()}"
    huge = os.urandom(settings.max_body_bytes + 1)
    refused = await put(
        client,
        tenant.member,
        thread,
        expect=413,
        channel_versions={"a": "1"},
        values=[value("a", "1", huge)],
    )
    assert refused
    assert await get(client, tenant.member, thread) is None
    writes = await put_writes(client, tenant.member, thread, "1", "t", [(0, "a", huge)])
    assert_problem(writes, 413)


@pytest.mark.parametrize(
    "name",
    [
        "users/42/threads/7",
        "/leading/and/trailing/",
        "a?b&c=d#e%2F+ ;",
        "Tauchplätze über 30 m — 🐠",
        " spaced ",
        "..",
        "k" * 255,
        "🐠" * 255,
    ],
)
async def test_any_name_of_1_to_255_characters_is_stored_faithfully(
    client: httpx.AsyncClient, tenant: Tenant, name: str
) -> None:
    name = name if len(name) == 255 else f"{name}{uuid.uuid4().hex[:6]}"
    saved = await put(client, tenant.member, name)
    found = await get(client, tenant.member, name)
    assert found is not None
    assert found["thread_id"] == name
    assert found["checkpoint_id"] == saved["checkpoint_id"]
    assert await listed(client, tenant.member, thread_id=name) == [saved["checkpoint_id"]]
    removed = await client.delete(
        "/v1/threads", params={"thread_id": name}, headers=tenant.member.headers
    )
    assert removed.status_code == 204


@pytest.mark.parametrize(
    ("name", "msgpack"),
    [
        ("", True),
        ("k" * 256, True),
        ("🐠" * 256, False),
        ("nul\x00inside", True),
        ("nul\x00", False),
    ],
    ids=["empty", "256", "256-unicode-json", "nul-msgpack", "nul-json"],
)
async def test_a_name_that_cannot_be_stored_is_422_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, name: str, msgpack: bool
) -> None:
    body = {"thread_id": name, "checkpoint_id": "1", "type": "msgpack", "checkpoint": b""}
    if not msgpack:
        body["checkpoint"] = ""
    saved = await send(
        client, tenant.member, "POST", "/v1/threads/checkpoints", body, msgpack=msgpack
    )
    problem = assert_problem(saved, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == "/thread_id"
    for method, path in (("GET", "/v1/threads/checkpoint"), ("DELETE", "/v1/threads")):
        answer = await client.request(
            method, path, params={"thread_id": name}, headers=tenant.member.headers
        )
        problem = assert_problem(answer, 422, "/problems/validation")
        assert problem["errors"][0]["parameter"] == "thread_id"


async def test_msgpack_bodies_are_checked_like_json_ones(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    def posted(content: bytes, content_type: str = MSGPACK) -> Any:
        return client.post(
            "/v1/threads/checkpoints",
            content=content,
            headers={**tenant.member.headers, "Content-Type": content_type},
        )

    good = {"thread_id": f"t-{uuid.uuid4()}", "checkpoint_id": "1", "type": "m", "checkpoint": b""}
    encoded = msgspec.msgpack.encode(good)
    assert_problem(await posted(encoded[:-3]), 400, "/problems/malformed")
    assert_problem(await posted(encoded + b"\xc1"), 400, "/problems/malformed")
    # A schema error early on does not hide a malformed body.
    early = msgspec.msgpack.encode(
        {"thread_id": 1, **{k: v for k, v in good.items() if k != "thread_id"}}
    )
    assert_problem(await posted(early + b"\xc1"), 400, "/problems/malformed")
    assert_problem(await posted(early), 422, "/problems/validation")
    unknown = msgspec.msgpack.encode({**good, "extra": 1})
    assert_problem(await posted(unknown), 422, "/problems/validation")
    for metadata, pointer in (
        ({"at": msgspec.msgpack.Ext(5, b"x")}, "/metadata/at"),
        ({"raw": b"bytes"}, "/metadata/raw"),
        ({"n": [1.0, float("nan")]}, "/metadata/n/1"),
        ({"nested": {1: "int key"}}, "/metadata/nested"),
        ({"text": "nul\x00"}, "/metadata/text"),
    ):
        refused = await posted(msgspec.msgpack.encode({**good, "metadata": metadata}))
        problem = assert_problem(refused, 422, "/problems/validation")
        assert problem["errors"][0]["pointer"] == pointer, metadata
    other_type = await posted(encoded, "application/x-www-form-urlencoded")
    assert_problem(other_type, 415)
    assert other_type.headers["accept-post"] == "application/json, application/msgpack"
    # Problems are JSON whatever the body was.
    assert (await posted(encoded[:-3])).headers["content-type"] == "application/problem+json"


async def test_msgpack_writes_are_idempotent_by_their_raw_bytes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = f"t-{uuid.uuid4()}"
    body = {"thread_id": thread, "checkpoint_id": "1", "type": "m", "checkpoint": os.urandom(64)}
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await send(client, tenant.member, "POST", "/v1/threads/checkpoints", body, **key)
    replay = await send(client, tenant.member, "POST", "/v1/threads/checkpoints", body, **key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert replay.headers["content-type"] == MSGPACK
    changed = await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/checkpoints",
        {**body, "checkpoint": b"x"},
        **key,
    )
    assert_problem(changed, 422, "/problems/idempotency-key-reused")


async def test_thread_state_takes_from_the_state_bucket_not_crud(
    settings: Settings, tenant: Tenant
) -> None:
    limited = settings.replace(rate_limit_state_per_minute=3, rate_limit_crud_per_minute=1)
    thread = f"t-{uuid.uuid4()}"
    async with running_app(limited) as client:
        answers = [
            await send(
                client,
                tenant.member,
                "POST",
                "/v1/threads/checkpoints",
                {"thread_id": thread, "checkpoint_id": str(n), "type": "m", "checkpoint": b""},
            )
            for n in range(3)
        ]
        refused = await client.get(
            "/v1/threads/checkpoint", params={"thread_id": thread}, headers=tenant.member.headers
        )
        crud = await client.get("/v1/me", headers=tenant.member.headers)
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [a.headers["ratelimit-policy"] for a in answers] == ['"state";q=3;w=60'] * 3
    assert answers[0].headers["ratelimit"].startswith('"state";r=2')
    problem = assert_problem(
        refused, 429, "https://iana.org/assignments/http-problem-types#quota-exceeded"
    )
    assert problem["violated-policies"] == ["state"]
    # The crud bucket was never touched by the thread's requests.
    assert crud.status_code == 200
    assert crud.headers["ratelimit-policy"] == '"crud";q=1;w=60'


def round_trips(caplog: pytest.LogCaptureFixture) -> list[int]:
    counts = [r.__dict__["db_round_trips"] for r in caplog.records if r.name == "itinera.access"]
    caplog.clear()
    return counts


async def test_each_saver_call_is_one_statement_in_its_transaction(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening the transaction, the statement, the commit; a prune locks its threads first."""
    thread = f"t-{uuid.uuid4()}"
    many = [value(f"c{n}", "1", os.urandom(100)) for n in range(10)]
    versions = {v["channel"]: "1" for v in many}
    caplog.set_level(logging.INFO, logger="itinera.access")
    caplog.clear()
    first = await put(client, tenant.member, thread, channel_versions=versions, values=many)
    await put(client, tenant.member, thread, channel_versions=versions, values=[])
    await put_writes(client, tenant.member, thread, first["checkpoint_id"], "t", [(0, "a", b"")])
    await get(client, tenant.member, thread)
    await get(client, tenant.member, thread, first["checkpoint_id"])
    await search(client, tenant.member, thread_id=thread, filter={"step": 1})
    await search(client, tenant.member, filter={"source": "loop"})
    assert round_trips(caplog) == [3] * 7
    await send(client, tenant.member, "POST", "/v1/threads/prune", {"thread_ids": [thread]})
    await send(
        client,
        tenant.member,
        "POST",
        "/v1/threads/copy",
        {"source_thread_id": thread, "target_thread_id": f"c-{uuid.uuid4()}"},
    )
    await send(client, tenant.member, "POST", "/v1/threads/delete-for-runs", {"run_ids": ["r"]})
    await client.delete("/v1/threads", params={"thread_id": thread}, headers=tenant.member.headers)
    assert round_trips(caplog) == [4, 3, 3, 3]


async def test_retention_deletes_a_thread_30_days_after_its_last_checkpoint(
    client: httpx.AsyncClient,
    tenant: Tenant,
    owner_engine: AsyncEngine,
    settings: Settings,
) -> None:
    stale, fresh = f"stale-{uuid.uuid4()}", f"fresh-{uuid.uuid4()}"
    for name in (stale, fresh):
        cid = (
            await put(
                client,
                tenant.member,
                name,
                channel_versions={"a": "1"},
                values=[value("a", "1", b"")],
            )
        )["checkpoint_id"]
        await put_writes(client, tenant.member, name, cid, "t", [(0, "a", b"")])
    async with owner_engine.begin() as conn:
        for name, age in ((stale, timedelta(days=30, minutes=1)), (fresh, timedelta(days=29))):
            await conn.execute(
                update(m.Thread)
                .where(m.Thread.org_id == tenant.org_id, m.Thread.name == name)
                .values(last_checkpoint_at=func.now() - age)
            )
    policy = next(p for p in policies(settings) if p.name == "threads")
    assert settings.retention_threads_seconds == timedelta(days=30).total_seconds()
    report = await sweep(session_factory(owner_engine), policy, batch_size=1)
    assert report.rows == {"writes": 1, "values": 1, "checkpoints": 1, "threads": 1}
    assert await get(client, tenant.member, stale) is None
    assert await get(client, tenant.member, fresh) is not None
    # A checkpoint moves the thread's retention on.
    await put(client, tenant.member, fresh)
    async with owner_engine.connect() as conn:
        age = await conn.scalar(
            select(func.now() - m.Thread.last_checkpoint_at).where(
                m.Thread.org_id == tenant.org_id, m.Thread.name == fresh
            )
        )
    assert age < timedelta(minutes=1)


@pytest.mark.parametrize("second_saves", ["checkpoint", "writes"])
async def test_first_saves_racing_on_a_new_thread_make_one_thread(
    settings: Settings, tenant: Tenant, owner_engine: AsyncEngine, second_saves: str
) -> None:
    """The second save waits for the first one's new thread and, once that commits,
    saves into it, though the thread was made after its statement began."""
    assert settings.database_url is not None
    pool = request_pool(settings.database_url, settings, application_name="threads-tests")
    first, second = UnitOfWork(pool, tenant.org_id), UnitOfWork(pool, tenant.org_id)
    name = f"race-{uuid.uuid4()}"
    try:
        await ThreadRepository(first).put_checkpoint(
            CheckpointPut(thread_id=name, checkpoint_id="1", type="m", checkpoint=b"1")
        )
        if second_saves == "checkpoint":
            racing = ThreadRepository(second).put_checkpoint(
                CheckpointPut(thread_id=name, checkpoint_id="2", type="m", checkpoint=b"2")
            )
        else:
            racing = ThreadRepository(second).put_writes(
                WritesPut(
                    thread_id=name,
                    checkpoint_id="1",
                    task_id="t",
                    writes=[WriteIn(idx=0, channel="c", type="m", value=b"w")],
                )
            )
        waiting = asyncio.ensure_future(racing)
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await first.commit()
        await waiting
        assert second.round_trips.database == 2  # the opening, then one statement
        await second.commit()
    finally:
        await first.close()
        await second.close()
        await pool.close()
    counts = await rows(owner_engine, tenant.org_id)
    assert counts["thread"] == 1
    assert counts["thread_checkpoint"] + counts["thread_write"] == 2


async def test_a_key_past_what_postgresql_can_index_is_422(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    wide = "".join(chr(0x10000 + (n * 7919) % 0xFFFF) for n in range(1024))
    body = {
        "thread_id": f"t-{uuid.uuid4()}",
        "checkpoint_ns": wide,
        "checkpoint_id": "1",
        "type": "m",
        "checkpoint": b"",
        "channel_versions": {"c" * 512: "v" * 255},
        "values": [value("c" * 512, "v" * 255, b"")],
    }
    saved = await send(client, tenant.member, "POST", "/v1/threads/checkpoints", body)
    problem = assert_problem(saved, 422, "/problems/validation")
    assert problem["detail"] == "a value is too large to store or index"
    assert await get(client, tenant.member, body["thread_id"], checkpoint_ns=wide) is None


async def test_row_level_security_keeps_each_orgs_thread_rows_to_itself(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    """The second wall alone: plain SQL as the service role, no repository."""
    name = f"t-{uuid.uuid4()}"
    for account in (tenant.member, other_tenant.member):
        cid = (
            await put(
                client, account, name, channel_versions={"a": "1"}, values=[value("a", "1", b"")]
            )
        )["checkpoint_id"]
        await put_writes(client, account, name, cid, "t", [(0, "a", b"")])
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, settings, application_name="threads-tests")
    try:
        for model in (m.Thread, m.ThreadCheckpoint, m.ThreadBlob, m.ThreadWrite):
            for org_id in (tenant.org_id, other_tenant.org_id):
                async with engine.begin() as conn:
                    await conn.execute(select(func.set_config("itinera.org_id", str(org_id), True)))
                    seen = set((await conn.execute(select(model.org_id))).scalars())
                assert seen == {org_id}, model.__tablename__
            async with engine.connect() as conn:
                assert await conn.scalar(select(func.count()).select_from(model)) == 0
        async with engine.connect() as conn:
            await conn.begin()
            await conn.execute(
                select(func.set_config("itinera.org_id", str(other_tenant.org_id), True))
            )
            with pytest.raises(DBAPIError, match="row-level security"):
                await conn.execute(
                    insert(m.Thread).values(org_id=tenant.org_id, id=m.new_id(), name="smuggled")
                )
            await conn.rollback()
    finally:
        await engine.dispose()
