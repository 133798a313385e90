"""Chat: sessions that expire 24 h after their last message, messages, and knowledge hits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.http import assert_problem, with_key
from tests.support.tenants import Account, Tenant

DIVER = {"certification": "AOW", "logged_dives": 48}


async def open_session(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> httpx.Response:
    return await client.post("/v1/chat/sessions", json=fields, headers=account.headers)


async def session_url(client: httpx.AsyncClient, account: Account) -> str:
    response = await open_session(client, account, profile=DIVER)
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def post(
    client: httpx.AsyncClient, account: Account, url: str, content: str, role: str = "user"
) -> httpx.Response:
    return await client.post(
        f"{url}/messages", json={"role": role, "content": content}, headers=account.headers
    )


async def set_expiry(engine: AsyncEngine, url: str, expires_at: str) -> None:
    """Move a session's expiry as the owner, e.g. ``now() - interval '1 minute'``."""
    session_id = uuid.UUID(url.rsplit("/", 1)[1])
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE chat_session SET expires_at = {expires_at} WHERE id = :id"),
            {"id": session_id},
        )


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_open_answers_201_with_location_and_a_day_to_live(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await open_session(client, tenant.member, profile=DIVER)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/chat/sessions/{body['id']}"
    assert set(body) == {"id", "created_by", "profile", "expires_at", "created_at", "updated_at"}
    assert body["created_by"] == str(tenant.member.user_id)
    assert body["profile"] == DIVER
    assert body["expires_at"].endswith("Z")
    # Both from the database's now() of one transaction.
    assert instant(body["expires_at"]) - instant(body["created_at"]) == timedelta(hours=24)
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_the_profile_defaults_to_empty(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await open_session(client, tenant.member)
    assert response.status_code == 201
    assert response.json()["profile"] == {}


async def test_posting_a_message_answers_201_with_the_message(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    response = await client.post(
        f"{url}/messages",
        json={"role": "assistant", "content": "Welcome aboard.", "metadata": {"model": "m1"}},
        headers=tenant.member.headers,
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"{url}/messages"
    body = response.json()
    assert set(body) == {"message", "hits"}
    message = body["message"]
    assert set(message) == {"id", "session_id", "role", "content", "metadata", "created_at"}
    assert (message["session_id"], message["role"], message["content"], message["metadata"]) == (
        url.rsplit("/", 1)[1],
        "assistant",
        "Welcome aboard.",
        {"model": "m1"},
    )
    listed = await client.get(f"{url}/messages", headers=tenant.admin.headers)
    assert listed.json()["items"] == [message]


async def test_a_user_message_gets_hits_other_roles_none(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    guide = {"source": "guides/dahab.md", "title": "Dahab macro"}
    ingested = await client.post(
        "/v1/knowledge",
        json=guide | {"body": "Frogfish hide under the jetty at Lighthouse reef."},
        headers=tenant.admin.headers,
    )
    assert ingested.status_code == 201
    await client.post(
        "/v1/knowledge",
        json=guide | {"body": "Another org's frogfish under another jetty."},
        headers=other_tenant.admin.headers,
    )
    url = await session_url(client, tenant.member)
    asked = await post(client, tenant.member, url, "Frogfish at the jetty?")
    assert asked.status_code == 201
    hits = asked.json()["hits"]
    assert [(h["chunk_text"], h["title"], h["source"], h["item_id"]) for h in hits] == [
        (
            "Frogfish hide under the jetty at Lighthouse reef.",
            "Dahab macro",
            "guides/dahab.md",
            ingested.json()["id"],
        )
    ]
    assert hits[0]["score"] > 0
    for role in ("assistant", "system", "tool"):
        answered = await post(client, tenant.member, url, "Frogfish at the jetty?", role=role)
        assert answered.status_code == 201
        assert answered.json()["hits"] == []
    unmatched = await post(client, tenant.member, url, "submarine")
    assert unmatched.json()["hits"] == []


async def test_a_message_of_stop_words_only_gets_no_hits(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    response = await post(client, tenant.member, url, "the & | ! ( ) <-> :*")
    assert response.status_code == 201
    assert response.json()["hits"] == []


async def test_posting_renews_the_expiry(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    await set_expiry(owner_engine, url, "now() + interval '1 hour'")
    before = (await client.get(url, headers=tenant.member.headers)).json()
    assert (await post(client, tenant.member, url, "still here", role="system")).status_code == 201
    after = (await client.get(url, headers=tenant.member.headers)).json()
    assert instant(after["expires_at"]) - instant(before["expires_at"]) > timedelta(hours=22)
    assert instant(after["expires_at"]) - instant(after["updated_at"]) == timedelta(hours=24)
    assert instant(after["updated_at"]) > instant(before["updated_at"])


async def test_reading_does_not_renew(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    await set_expiry(owner_engine, url, "now() + interval '1 hour'")
    before = (await client.get(url, headers=tenant.member.headers)).json()
    await client.get(f"{url}/messages", headers=tenant.member.headers)
    after = (await client.get(url, headers=tenant.member.headers)).json()
    assert after["expires_at"] == before["expires_at"]


async def test_an_expired_session_is_gone_and_not_revived(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    live = await session_url(client, tenant.member)
    url = await session_url(client, tenant.member)
    assert (await post(client, tenant.member, url, "hello", role="system")).status_code == 201
    await set_expiry(owner_engine, url, "now() - interval '1 minute'")
    headers = tenant.member.headers
    assert_problem(await client.get(url, headers=headers), 404, "/problems/not-found")
    assert_problem(await client.get(f"{url}/messages", headers=headers), 404)
    assert_problem(await post(client, tenant.member, url, "anyone?"), 404)
    assert_problem(await post(client, tenant.member, url, "anyone?", role="assistant"), 404)
    listed = await client.get("/v1/chat/sessions", headers=headers)
    assert [s["id"] for s in listed.json()["items"]] == [live.rsplit("/", 1)[1]]
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT expires_at < now() AS expired,"
                    " (SELECT count(*) FROM chat_message m WHERE m.session_id = s.id) AS messages"
                    " FROM chat_session s WHERE s.id = :id"
                ),
                {"id": uuid.UUID(url.rsplit("/", 1)[1])},
            )
        ).one()
    assert (row.expired, row.messages) == (True, 1)


async def test_messages_are_listed_oldest_first_in_pages(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    sent = []
    for n in range(5):
        response = await post(client, tenant.member, url, f"turn {n}", role="assistant")
        sent.append(response.json()["message"]["id"])
    first = await client.get(f"{url}/messages", params={"limit": "2"}, headers=tenant.admin.headers)
    assert [m["id"] for m in first.json()["items"]] == sent[:2]
    seen = [m["id"] for m in first.json()["items"]]
    cursor = first.json()["next_cursor"]
    while cursor is not None:
        page = await client.get(
            f"{url}/messages", params={"limit": "2", "cursor": cursor}, headers=tenant.admin.headers
        )
        seen += [m["id"] for m in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert seen == sent
    other = await session_url(client, tenant.member)
    assert (await client.get(f"{other}/messages", headers=tenant.member.headers)).json() == {
        "items": [],
        "next_cursor": None,
    }


async def test_sessions_are_listed_newest_first_by_creator_in_pages(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    mine = [(await open_session(client, tenant.member)).json()["id"] for _ in range(3)]
    theirs = (await open_session(client, tenant.admin)).json()["id"]
    everything = await client.get("/v1/chat/sessions", headers=tenant.member.headers)
    assert [s["id"] for s in everything.json()["items"]] == [theirs, *reversed(mine)]
    by_user = await client.get(
        "/v1/chat/sessions",
        params={"user_id": str(tenant.member.user_id)},
        headers=tenant.admin.headers,
    )
    assert [s["id"] for s in by_user.json()["items"]] == list(reversed(mine))
    paged = await client.get(
        "/v1/chat/sessions", params={"limit": "3"}, headers=tenant.admin.headers
    )
    assert len(paged.json()["items"]) == 3
    rest = await client.get(
        "/v1/chat/sessions",
        params={"limit": "3", "cursor": paged.json()["next_cursor"]},
        headers=tenant.admin.headers,
    )
    assert [s["id"] for s in rest.json()["items"]] == [mine[0]]
    assert rest.json()["next_cursor"] is None


async def test_another_orgs_session_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    stranger = other_tenant.admin
    assert_problem(await client.get(url, headers=stranger.headers), 404, "/problems/not-found")
    assert_problem(await client.get(f"{url}/messages", headers=stranger.headers), 404)
    assert_problem(await post(client, stranger, url, "hello"), 404)
    listed = await client.get("/v1/chat/sessions", headers=stranger.headers)
    assert listed.json()["items"] == []
    messages = await client.get(f"{url}/messages", headers=tenant.member.headers)
    assert messages.json()["items"] == []


async def test_a_missing_session_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/v1/chat/sessions/{uuid.uuid4()}"
    assert_problem(await client.get(url, headers=tenant.member.headers), 404)
    assert_problem(await client.get(f"{url}/messages", headers=tenant.member.headers), 404)
    assert_problem(await post(client, tenant.member, url, "hello"), 404)


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"role": "robot"}, "/role"),
        ({"content": ""}, "/content"),
        ({"content": "x" * 100_001}, "/content"),
        ({"content": 42}, "/content"),
        ({"metadata": [1, 2]}, "/metadata"),
        ({"metadata": {f"k{n}": n for n in range(101)}}, "/metadata"),
        ({"surprise": True}, "/surprise"),
    ],
)
async def test_invalid_messages_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    url = await session_url(client, tenant.member)
    body = {"role": "user", "content": "hello"} | fields
    response = await client.post(f"{url}/messages", json=body, headers=tenant.member.headers)
    problem = assert_problem(response, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == pointer
    assert (await client.get(f"{url}/messages", headers=tenant.member.headers)).json()[
        "items"
    ] == []


@pytest.mark.parametrize(("missing", "pointer"), [("role", "/role"), ("content", "/content")])
async def test_a_message_without_a_required_field_is_422(
    client: httpx.AsyncClient, tenant: Tenant, missing: str, pointer: str
) -> None:
    url = await session_url(client, tenant.member)
    body = {"role": "user", "content": "hello"}
    del body[missing]
    response = await client.post(f"{url}/messages", json=body, headers=tenant.member.headers)
    assert assert_problem(response, 422)["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"profile": [1]}, "/profile"),
        ({"profile": "diver"}, "/profile"),
        ({"profile": {f"k{n}": n for n in range(101)}}, "/profile"),
        ({"created_by": str(uuid.uuid4())}, "/created_by"),
        ({"expires_at": "2099-01-01T00:00:00Z"}, "/expires_at"),
    ],
)
async def test_invalid_sessions_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], pointer: str
) -> None:
    response = await client.post("/v1/chat/sessions", json=body, headers=tenant.member.headers)
    assert assert_problem(response, 422, "/problems/validation")["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"user_id": "me"}, "user_id")],
)
async def test_invalid_list_queries_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], parameter: str
) -> None:
    response = await client.get("/v1/chat/sessions", params=params, headers=tenant.member.headers)
    assert assert_problem(response, 422)["errors"][0]["parameter"] == parameter


async def test_a_message_page_rejects_another_sessions_cursor(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    for n in range(2):
        await post(client, tenant.member, url, f"turn {n}", role="assistant")
    page = await client.get(f"{url}/messages", params={"limit": "1"}, headers=tenant.member.headers)
    cursor = page.json()["next_cursor"]
    sessions = await client.get(
        "/v1/chat/sessions", params={"cursor": cursor}, headers=tenant.member.headers
    )
    assert_problem(sessions, 400, "/problems/malformed")
    garbage = await client.get(
        f"{url}/messages", params={"cursor": "not-a-cursor"}, headers=tenant.member.headers
    )
    assert_problem(garbage, 400, "/problems/malformed")


async def test_undecodable_and_non_json_bodies_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = await session_url(client, tenant.member)
    for target in ("/v1/chat/sessions", f"{url}/messages"):
        broken = await client.post(target, content=b"{not json", headers=tenant.member.headers)
        assert_problem(broken, 400, "/problems/malformed")
        as_text = await client.post(
            target,
            content=b"role=user",
            headers={**tenant.member.headers, "Content-Type": "text/plain"},
        )
        assert_problem(as_text, 415)


async def test_every_chat_route_needs_a_token(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = await session_url(client, tenant.member)
    for method, target in [
        ("GET", "/v1/chat/sessions"),
        ("POST", "/v1/chat/sessions"),
        ("GET", url),
        ("DELETE", url),
        ("GET", f"{url}/messages"),
        ("POST", f"{url}/messages"),
    ]:
        response = await client.request(
            method, target, json={"role": "user", "content": "hi"} if method == "POST" else None
        )
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("target", "raw", "status"),
    [
        pytest.param("messages", b'{"role": "user", "content": "a\\u0000b"}', 422, id="nul"),
        pytest.param("messages", b'{"role": "user", "content": "a\xffb"}', 400, id="utf8"),
        pytest.param("sessions", b'{"profile": {"a": "\\u0000"}}', 422, id="nul-in-profile"),
        pytest.param("sessions", b'{"profile": {"a": ' + DEEP + b"}}", 400, id="deep-profile"),
    ],
)
async def test_hostile_bodies_are_refused_without_a_500(
    client: httpx.AsyncClient, tenant: Tenant, target: str, raw: bytes, status: int
) -> None:
    url = await session_url(client, tenant.member)
    path = f"{url}/messages" if target == "messages" else "/v1/chat/sessions"
    assert_problem(await client.post(path, content=raw, headers=tenant.member.headers), status)


async def test_a_conversational_message_finds_passages_sharing_any_of_its_words(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for body in (
        "Beginners love the shallow reef at Lighthouse.",
        "Advanced divers go to the Blue Hole arch.",
        "Beginners and advanced divers both enjoy the Canyon.",
    ):
        await client.post(
            "/v1/knowledge",
            json={"source": "guide", "title": "Dahab", "body": body},
            headers=tenant.admin.headers,
        )
    url = await session_url(client, tenant.member)
    asked = await post(
        client,
        tenant.member,
        url,
        "What are the best dive sites for beginners and advanced divers?",
    )
    texts = [hit["chunk_text"] for hit in asked.json()["hits"]]
    # No passage holds every word; the one sharing the most comes first.
    assert texts[0] == "Beginners and advanced divers both enjoy the Canyon."
    assert set(texts) == {
        "Beginners love the shallow reef at Lighthouse.",
        "Advanced divers go to the Blue Hole arch.",
        "Beginners and advanced divers both enjoy the Canyon.",
    }


async def test_a_long_message_searches_its_first_32_distinct_words(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for body in ("Frogfish hide in plain sight.", "Zanzibar has frogfish too."):
        await client.post(
            "/v1/knowledge",
            json={"source": "guide", "title": "Critters", "body": body},
            headers=tenant.admin.headers,
        )
    url = await session_url(client, tenant.member)
    opening = "Frogfish " * 500 + " ".join(f"word{n}" for n in range(31))
    # "zanzibar" is the 33rd distinct word: the search never sees it.
    message = f"{opening} zanzibar {'padding ' * 10_000}"
    asked = await post(client, tenant.member, url, message)
    assert asked.status_code == 201, asked.text
    # Had it counted, the Zanzibar passage would share two words and come first.
    assert [hit["chunk_text"] for hit in asked.json()["hits"]] == [
        "Frogfish hide in plain sight.",
        "Zanzibar has frogfish too.",
    ]


async def test_a_user_message_is_two_statements_and_others_one(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """The renewal and the message are one statement; the hits are the second."""
    url = await session_url(client, tenant.member)
    caplog.set_level(logging.INFO, logger="itinera.access")
    caplog.clear()
    assert (await post(client, tenant.member, url, "manta reef")).status_code == 201
    assert (await post(client, tenant.member, url, "ok", role="assistant")).status_code == 201
    counts = [r.__dict__["db_round_trips"] for r in caplog.records if r.name == "itinera.access"]
    # Each with the transaction's opening and its commit.
    assert counts == [4, 3]


# --- deleting ------------------------------------------------------------------------------


def session_id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rsplit("/", 1)[1])


async def rows_of(engine: AsyncEngine, url: str) -> tuple[int, int]:
    """(sessions, messages) of the session, counted as the owner (no tenant filter)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM chat_session WHERE id = :id) AS sessions,"
                    " (SELECT count(*) FROM chat_message WHERE session_id = :id) AS messages"
                ),
                {"id": session_id(url)},
            )
        ).one()
    return row.sessions, row.messages


async def capture(client: httpx.AsyncClient, account: Account, url: str, source: str) -> Any:
    body = {"email": "ana@example.com", "source": source, "chat_session_id": str(session_id(url))}
    response = await client.post("/v1/leads", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_deleting_a_session_deletes_its_messages(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    other = await session_url(client, tenant.member)
    for n in range(3):
        await post(client, tenant.member, url, f"turn {n}", role="assistant")
    await post(client, tenant.member, other, "hello", role="assistant")
    assert await rows_of(owner_engine, url) == (1, 3)
    response = await client.delete(url, headers=tenant.admin.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["ratelimit-policy"].startswith('"crud";')
    assert await rows_of(owner_engine, url) == (0, 0)
    assert_problem(await client.get(url, headers=tenant.member.headers), 404, "/problems/not-found")
    assert_problem(await client.get(f"{url}/messages", headers=tenant.member.headers), 404)
    assert_problem(await post(client, tenant.member, url, "still there?"), 404)
    assert_problem(await client.delete(url, headers=tenant.admin.headers), 404)
    assert await rows_of(owner_engine, other) == (1, 1)
    listed = await client.get("/v1/chat/sessions", headers=tenant.member.headers)
    assert [s["id"] for s in listed.json()["items"]] == [str(session_id(other))]


async def test_leads_of_a_deleted_session_keep_their_row_and_lose_the_link(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    other = await session_url(client, tenant.member)
    leads = [await capture(client, tenant.member, url, source) for source in ("chat", "web")]
    kept = await capture(client, tenant.member, other, "fair")
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    for lead in leads:
        found = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.member.headers)
        assert found.status_code == 200
        assert found.json() == lead | {"chat_session_id": None}
    still = await client.get(f"/v1/leads/{kept['id']}", headers=tenant.member.headers)
    assert still.json()["chat_session_id"] == str(session_id(other))
    # The link is (org_id, chat_session_id): only the session's column was cleared.
    async with owner_engine.connect() as conn:
        orgs = (
            await conn.execute(
                text("SELECT org_id FROM lead WHERE id = ANY(:ids)"),
                {"ids": [uuid.UUID(lead["id"]) for lead in leads]},
            )
        ).scalars()
        assert list(orgs) == [tenant.org_id, tenant.org_id]


async def test_another_org_cannot_delete_a_session(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    await post(client, tenant.member, url, "hello", role="assistant")
    lead = await capture(client, tenant.member, url, "chat")
    for headers in (other_tenant.admin.headers, with_key(other_tenant.admin)):
        assert_problem(await client.delete(url, headers=headers), 404, "/problems/not-found")
    assert await rows_of(owner_engine, url) == (1, 1)
    found = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.member.headers)
    assert found.json()["chat_session_id"] == str(session_id(url))


async def test_an_expired_session_is_deleted_too(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """An erasure does not wait for the sweeper."""
    url = await session_url(client, tenant.member)
    await post(client, tenant.member, url, "hello", role="assistant")
    lead = await capture(client, tenant.member, url, "chat")
    await set_expiry(owner_engine, url, "now() - interval '1 minute'")
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    assert await rows_of(owner_engine, url) == (0, 0)
    found = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.member.headers)
    assert found.json()["chat_session_id"] is None


async def test_deleting_a_missing_session_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.delete(
        f"/v1/chat/sessions/{uuid.uuid4()}", headers=tenant.member.headers
    )
    assert_problem(response, 404, "/problems/not-found")


async def test_a_retried_session_delete_replays_its_204(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    headers = with_key(tenant.member)
    first = await client.delete(url, headers=headers)
    again = await client.delete(url, headers=headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(await client.delete(url, headers=with_key(tenant.member)), 404)
    assert await rows_of(owner_engine, url) == (0, 0)


async def test_messages_posted_while_the_session_is_deleted_leave_nothing_behind(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    url = await session_url(client, tenant.member)
    answers = await asyncio.gather(
        *(post(client, tenant.member, url, f"turn {n}", role="assistant") for n in range(8)),
        client.delete(url, headers=tenant.member.headers),
    )
    *posts, deleted = answers
    assert deleted.status_code == 204
    assert {answer.status_code for answer in posts} <= {201, 404}
    assert await rows_of(owner_engine, url) == (0, 0)
