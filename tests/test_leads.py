"""Leads: captures upsert on (email in any case, source); lists and their filters."""

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


def address() -> str:
    return f"Diver.{uuid.uuid4().hex[:8]}@Example.com"


async def capture(
    client: httpx.AsyncClient, account: Account, email: str, **fields: Any
) -> httpx.Response:
    body = {"email": email, "source": "website"} | fields
    return await client.post("/v1/leads", json=body, headers=account.headers)


async def chat_session(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.post("/v1/chat/sessions", json={}, headers=account.headers)
    assert response.status_code == 201
    return response.json()["id"]  # type: ignore[no-any-return]


async def leads(client: httpx.AsyncClient, account: Account, **params: str) -> list[str]:
    response = await client.get("/v1/leads", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return [lead["id"] for lead in response.json()["items"]]


async def test_a_first_capture_answers_201_with_a_location_that_finds_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await chat_session(client, tenant.member)
    email = address()
    response = await capture(
        client,
        tenant.member,
        email,
        name="Ana Diver",
        phone="+20 100 123 4567",
        chat_session_id=session_id,
        metadata={"interest": "Red Sea"},
    )
    assert response.status_code == 201
    lead = response.json()
    assert set(lead) == {
        "id",
        "email",
        "name",
        "phone",
        "source",
        "chat_session_id",
        "metadata",
        "created_at",
        "updated_at",
    }
    assert (lead["email"], lead["name"], lead["phone"], lead["source"]) == (
        email,
        "Ana Diver",
        "+20 100 123 4567",
        "website",
    )
    assert (lead["chat_session_id"], lead["metadata"]) == (session_id, {"interest": "Red Sea"})
    assert lead["created_at"].endswith("Z")
    assert response.headers["location"] == f"/v1/leads/{lead['id']}"
    found = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert found.status_code == 200
    assert found.json() == lead


async def test_absent_optional_fields_start_empty(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    lead = (await capture(client, tenant.member, address())).json()
    assert (lead["name"], lead["phone"], lead["chat_session_id"], lead["metadata"]) == (
        None,
        None,
        None,
        {},
    )


async def test_a_repeat_capture_in_another_case_updates_the_lead(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = address()
    first = (await capture(client, tenant.member, email, name="Ana", metadata={"a": 1})).json()
    session_id = await chat_session(client, tenant.admin)
    again = await capture(
        client,
        tenant.admin,
        email.lower(),
        name="Ana Diver",
        phone="+44 20 7946 0000",
        chat_session_id=session_id,
        metadata={"b": 2},
    )
    assert again.status_code == 200
    assert "location" not in again.headers
    lead = again.json()
    assert lead["id"] == first["id"]
    assert (lead["email"], lead["name"], lead["phone"]) == (
        email.lower(),
        "Ana Diver",
        "+44 20 7946 0000",
    )
    assert (lead["chat_session_id"], lead["metadata"]) == (session_id, {"b": 2})
    assert lead["created_at"] == first["created_at"]
    assert datetime.fromisoformat(lead["updated_at"]) > datetime.fromisoformat(first["updated_at"])
    assert await leads(client, tenant.admin, email=email) == [first["id"]]


async def test_a_repeat_keeps_what_it_does_not_send_and_null_clears(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = address()
    session_id = await chat_session(client, tenant.member)
    first = await capture(
        client,
        tenant.member,
        email,
        name="Ana",
        phone="+20 100",
        chat_session_id=session_id,
        metadata={"a": 1},
    )
    kept = (await capture(client, tenant.member, email)).json()
    assert (kept["name"], kept["phone"], kept["chat_session_id"], kept["metadata"]) == (
        "Ana",
        "+20 100",
        session_id,
        {"a": 1},
    )
    cleared = (await capture(client, tenant.member, email, phone=None, chat_session_id=None)).json()
    assert cleared["id"] == first.json()["id"]
    assert (cleared["name"], cleared["phone"], cleared["chat_session_id"]) == ("Ana", None, None)


async def test_the_same_email_from_another_source_is_another_lead(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    email = address()
    web = await capture(client, tenant.member, email, source="website")
    chat = await capture(client, tenant.member, email.upper(), source="chat")
    assert (web.status_code, chat.status_code) == (201, 201)
    assert web.json()["id"] != chat.json()["id"]
    assert await leads(client, tenant.member, email=email) == [chat.json()["id"], web.json()["id"]]


async def test_concurrent_captures_make_one_lead(client: httpx.AsyncClient, tenant: Tenant) -> None:
    email = address()
    answers = await asyncio.gather(
        *(capture(client, tenant.member, email, name=f"try {n}") for n in range(10))
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(await leads(client, tenant.member, email=email)) == 1


async def test_list_filters_by_source_and_email_newest_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ana, ben = address(), address()
    made = [
        (await capture(client, tenant.member, email, source=source)).json()["id"]
        for email, source in [(ana, "website"), (ben, "website"), (ana, "chat"), (ben, "fair")]
    ]
    assert await leads(client, tenant.member) == list(reversed(made))
    assert await leads(client, tenant.member, source="website") == [made[1], made[0]]
    assert await leads(client, tenant.member, email=ana.upper()) == [made[2], made[0]]
    assert await leads(client, tenant.member, email=ben, source="fair") == [made[3]]
    assert await leads(client, tenant.member, source="Website") == []
    first = await client.get("/v1/leads", params={"limit": "3"}, headers=tenant.admin.headers)
    assert [lead["id"] for lead in first.json()["items"]] == list(reversed(made))[:3]
    rest = await client.get(
        "/v1/leads",
        params={"limit": "3", "cursor": first.json()["next_cursor"]},
        headers=tenant.admin.headers,
    )
    assert [lead["id"] for lead in rest.json()["items"]] == [made[0]]
    assert rest.json()["next_cursor"] is None


async def test_leads_never_cross_orgs(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    email = address()
    ours = await capture(client, tenant.member, email, name="Ours")
    theirs = await capture(client, other_tenant.member, email, name="Theirs")
    assert (ours.status_code, theirs.status_code) == (201, 201)
    assert await leads(client, other_tenant.admin) == [theirs.json()["id"]]
    assert await leads(client, tenant.admin, email=email) == [ours.json()["id"]]


async def test_a_chat_session_of_another_org_or_none_is_422(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await chat_session(client, other_tenant.member)
    email = address()
    for session_id in (foreign, str(uuid.uuid4())):
        response = await capture(client, tenant.member, email, chat_session_id=session_id)
        body = assert_problem(response, 422, "/problems/validation")
        assert body["errors"][0]["pointer"] == "/chat_session_id"
    assert await leads(client, tenant.member, email=email) == []


async def test_a_lapsed_chat_session_may_still_be_linked(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """A lead is worth keeping even when the chat that won it has expired."""
    session_id = await chat_session(client, tenant.member)
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE chat_session SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": uuid.UUID(session_id)},
        )
    response = await capture(client, tenant.member, address(), chat_session_id=session_id)
    assert response.status_code == 201
    assert response.json()["chat_session_id"] == session_id


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"email": "not an email"}, "/email"),
        ({"email": "x" * 310 + "@example.com"}, "/email"),
        ({"source": ""}, "/source"),
        ({"source": "s" * 101}, "/source"),
        ({"name": ""}, "/name"),
        ({"name": "n" * 201}, "/name"),
        ({"phone": "p" * 51}, "/phone"),
        ({"chat_session_id": "chat-1"}, "/chat_session_id"),
        ({"metadata": [1]}, "/metadata"),
        ({"metadata": None}, "/metadata"),
        ({"surprise": True}, "/surprise"),
    ],
)
async def test_invalid_captures_are_422_with_a_pointer(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], pointer: str
) -> None:
    body = {"email": address(), "source": "website"} | fields
    response = await client.post("/v1/leads", json=body, headers=tenant.member.headers)
    problem = assert_problem(response, 422, "/problems/validation")
    assert problem["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize(("missing", "pointer"), [("email", "/email"), ("source", "/source")])
async def test_a_capture_without_a_required_field_is_422(
    client: httpx.AsyncClient, tenant: Tenant, missing: str, pointer: str
) -> None:
    body = {"email": address(), "source": "website"}
    del body[missing]
    response = await client.post("/v1/leads", json=body, headers=tenant.member.headers)
    assert assert_problem(response, 422)["errors"][0]["pointer"] == pointer


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"email": "nobody"}, "email"),
        ({"source": ""}, "source"),
        ({"limit": "0"}, "limit"),
        ({"status": "new"}, "status"),
    ],
)
async def test_invalid_list_queries_are_422(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, str], parameter: str
) -> None:
    response = await client.get("/v1/leads", params=params, headers=tenant.member.headers)
    assert assert_problem(response, 422)["errors"][0]["parameter"] == parameter


async def test_a_garbage_cursor_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(
        "/v1/leads", params={"cursor": "garbage"}, headers=tenant.member.headers
    )
    assert_problem(response, 400, "/problems/malformed")


async def test_undecodable_and_non_json_bodies_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    broken = await client.post("/v1/leads", content=b'{"email":', headers=tenant.member.headers)
    assert_problem(broken, 400, "/problems/malformed")
    as_form = await client.post(
        "/v1/leads",
        content=b"email=a@b.c",
        headers={**tenant.member.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(as_form, 415)


async def test_lead_routes_need_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/leads"), 401)
    assert_problem(
        await client.post("/v1/leads", json={"email": "a@b.c", "source": "website"}), 401
    )
    one = f"/v1/leads/{uuid.uuid4()}"
    assert_problem(await client.get(one), 401)
    assert_problem(await client.delete(one), 401)


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        pytest.param(b'"name": "a\\u0000b"', 422, id="nul-in-name"),
        pytest.param(b'"metadata": {"a": "\\u0000"}', 422, id="nul-in-metadata"),
        pytest.param(b'"name": "a\xffb"', 400, id="utf8"),
        pytest.param(b'"metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, id="deep"),
    ],
)
async def test_hostile_bodies_are_refused_without_a_500(
    client: httpx.AsyncClient, tenant: Tenant, extra: bytes, status: int
) -> None:
    raw = b'{"email": "' + address().encode() + b'", "source": "website", ' + extra + b"}"
    response = await client.post("/v1/leads", content=raw, headers=tenant.member.headers)
    assert_problem(response, status)


# --- one lead, deleting, erasure -----------------------------------------------------------


async def lead_rows(engine: AsyncEngine, lead_id: str) -> int:
    """The lead's rows, counted as the owner (no tenant filter)."""
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM lead WHERE id = :id")
        return int((await conn.execute(query, {"id": uuid.UUID(lead_id)})).scalar_one())


async def test_a_lead_is_read_by_its_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    lead = (await capture(client, tenant.member, address(), name="Ana")).json()
    again = (await capture(client, tenant.admin, lead["email"].upper(), name="Ana D.")).json()
    response = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.member.headers)
    assert response.status_code == 200
    assert response.json() == again
    assert response.headers["ratelimit-policy"].startswith('"crud";')


async def test_a_missing_lead_is_404(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/v1/leads/{uuid.uuid4()}"
    assert_problem(await client.get(url, headers=tenant.member.headers), 404, "/problems/not-found")
    assert_problem(await client.delete(url, headers=tenant.member.headers), 404)
    assert_problem(await client.get("/v1/leads/lead-1", headers=tenant.member.headers), 404)


async def test_deleting_a_lead_answers_204_and_it_is_gone(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    email = address()
    lead = (await capture(client, tenant.member, email)).json()
    other = (await capture(client, tenant.member, email, source="chat")).json()
    response = await client.delete(f"/v1/leads/{lead['id']}", headers=tenant.admin.headers)
    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["ratelimit-policy"].startswith('"crud";')
    assert await lead_rows(owner_engine, lead["id"]) == 0
    assert_problem(await client.get(f"/v1/leads/{lead['id']}", headers=tenant.member.headers), 404)
    assert_problem(
        await client.delete(f"/v1/leads/{lead['id']}", headers=tenant.admin.headers), 404
    )
    assert await leads(client, tenant.member, email=email) == [other["id"]]
    # Captured again, it is a new lead.
    anew = await capture(client, tenant.member, email)
    assert anew.status_code == 201
    assert anew.json()["id"] != lead["id"]


async def test_another_orgs_lead_is_not_found_and_not_deleted(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    lead = (await capture(client, tenant.member, address())).json()
    url = f"/v1/leads/{lead['id']}"
    stranger = other_tenant.admin
    assert_problem(await client.get(url, headers=stranger.headers), 404, "/problems/not-found")
    for headers in (stranger.headers, with_key(stranger)):
        assert_problem(await client.delete(url, headers=headers), 404, "/problems/not-found")
    assert await lead_rows(owner_engine, lead["id"]) == 1
    assert (await client.get(url, headers=tenant.member.headers)).json() == lead


async def test_a_retried_lead_delete_replays_its_204(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/leads/{(await capture(client, tenant.member, address())).json()['id']}"
    headers = with_key(tenant.member)
    first = await client.delete(url, headers=headers)
    again = await client.delete(url, headers=headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(await client.delete(url, headers=with_key(tenant.member)), 404)


async def test_an_org_erases_a_person_through_the_api_alone(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """Find the person's leads by email (any case), delete the chats they link, then them."""
    email = address()
    for source in ("chat", "website"):
        session_id = await chat_session(client, tenant.member)
        posted = await client.post(
            f"/v1/chat/sessions/{session_id}/messages",
            json={"role": "assistant", "content": f"Hello {email}"},
            headers=tenant.member.headers,
        )
        assert posted.status_code == 201
        await capture(client, tenant.member, email, source=source, chat_session_id=session_id)
    bystander = (await capture(client, tenant.member, address())).json()

    found = await client.get(
        "/v1/leads", params={"email": email.upper()}, headers=tenant.admin.headers
    )
    for lead in found.json()["items"]:
        session = lead["chat_session_id"]
        gone = await client.delete(f"/v1/chat/sessions/{session}", headers=tenant.admin.headers)
        assert gone.status_code == 204
        gone = await client.delete(f"/v1/leads/{lead['id']}", headers=tenant.admin.headers)
        assert gone.status_code == 204

    async with owner_engine.connect() as conn:
        remaining = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM lead WHERE org_id = :org"
                    "          AND lower(email) = lower(:email)) AS leads,"
                    " (SELECT count(*) FROM chat_message WHERE org_id = :org"
                    "          AND content LIKE '%' || :email || '%') AS messages,"
                    " (SELECT count(*) FROM chat_session WHERE org_id = :org) AS sessions"
                ),
                {"org": tenant.org_id, "email": email},
            )
        ).one()
    assert (remaining.leads, remaining.messages, remaining.sessions) == (0, 0, 0)
    assert await leads(client, tenant.member) == [bystander["id"]]
