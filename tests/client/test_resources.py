"""The typed methods, area by area, against a live service: what comes back is the wire
type the service answered, decoded."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from itinera_client import ItineraClient
from itinera_client.errors import AuthenticationError, NotFoundError, PreconditionFailedError
from itinera_client.schemas.agent_runs import (
    AgentRunCreate,
    AgentRunUpdate,
    CheckpointCreate,
    ToolCallCreate,
)
from itinera_client.schemas.api_keys import ApiKeyCreate
from itinera_client.schemas.chat import ChatMessageCreate, ChatSessionCreate
from itinera_client.schemas.destinations import DestinationCreate, DestinationUpdate, DiveSiteCreate
from itinera_client.schemas.itineraries import ItineraryCreate, ItineraryUpdate
from itinera_client.schemas.knowledge import ChunkIn, KnowledgeCreate, SearchRequest
from itinera_client.schemas.leads import LeadCapture
from itinera_client.schemas.users import UserCreate, UserUpdate
from tests.support.database import TEST_EMBEDDING_DIM
from tests.support.live_service import LiveService


@pytest.fixture
async def client(live_tenant: LiveService) -> AsyncIterator[ItineraClient]:
    async with ItineraClient(live_tenant.base_url) as client:
        await client.login(live_tenant.org.slug, live_tenant.admin.email, live_tenant.password)
        yield client


def vector(hot: int) -> list[float]:
    return [1.0 if i == hot else 0.0 for i in range(TEST_EMBEDDING_DIM)]


async def test_knowledge_as_documents_upserted_listed_read_searched_and_deleted_by_key(
    client: ItineraClient,
) -> None:
    key = "guides/dahab/blue hole.md"
    first = KnowledgeCreate(
        key=key,
        source="https://example.com/dahab",
        title="The Blue Hole",
        body="A sinkhole with an arch at 56 metres.",
        metadata={"region": "red-sea", "kind": "site"},
        chunks=[ChunkIn(text="A sinkhole with an arch at 56 metres.", vector=vector(0))],
    )
    item, created = await client.knowledge.upsert(first)
    assert created
    assert (item.key, item.title, item.chunks[0].has_vector) == (key, "The Blue Hole", True)

    second = KnowledgeCreate(
        key=key, source=first.source, title="The Blue Hole, Dahab", body="Replaced.", metadata={}
    )
    replaced, created = await client.knowledge.upsert(second)
    assert not created
    assert (replaced.id, replaced.title, len(replaced.chunks)) == (item.id, second.title, 1)
    other, _ = await client.knowledge.upsert(
        KnowledgeCreate(
            source="https://example.com/aqaba",
            title="Aqaba",
            body="Wrecks and a sinkhole of their own.",
            metadata={"region": "red-sea", "kind": "wreck"},
        )
    )

    page = await client.knowledge.list(source=first.source)
    assert [summary.key for summary in page.items] == [key]
    assert (await client.knowledge.get_by_key(key)).id == item.id
    assert (await client.knowledge.get(other.id)).title == "Aqaba"

    found = await client.knowledge.search(
        SearchRequest(query_text="sinkhole", metadata={"kind": "wreck"})
    )
    assert [(hit.item_id, hit.key, hit.metadata["kind"]) for hit in found.results] == [
        (other.id, None, "wreck")
    ]

    await client.knowledge.delete_by_key(key)
    with pytest.raises(NotFoundError):
        await client.knowledge.get_by_key(key)
    await client.knowledge.delete(other.id)
    assert (await client.knowledge.list()).items == []


async def test_itineraries_are_written_against_the_version_they_read(
    client: ItineraClient,
) -> None:
    trip = await client.itineraries.create(
        ItineraryCreate(
            title="Red Sea week", start_date=date(2027, 5, 1), end_date=date(2027, 5, 7)
        )
    )
    assert await client.itineraries.get_if_changed(trip.id, trip.version) is None

    final = await client.itineraries.update(
        trip.id, ItineraryUpdate(status="final"), version=trip.version
    )
    assert (final.status, final.version) == ("final", trip.version + 1)
    assert await client.itineraries.get_if_changed(trip.id, trip.version) == final
    with pytest.raises(PreconditionFailedError):
        await client.itineraries.update(trip.id, ItineraryUpdate(title="Stale"), version=1)

    replaced = await client.itineraries.replace(
        trip.id,
        ItineraryCreate(title="Two weeks", start_date=date(2027, 5, 1), end_date=date(2027, 5, 14)),
        version=final.version,
    )
    assert (replaced.title, replaced.status) == ("Two weeks", "draft")
    assert [t.id for t in (await client.itineraries.list(status="draft")).items] == [trip.id]
    with pytest.raises(PreconditionFailedError):
        await client.itineraries.delete(trip.id, version=final.version)
    await client.itineraries.delete(trip.id, version=replaced.version)
    with pytest.raises(NotFoundError):
        await client.itineraries.get(trip.id)


async def test_destinations_and_their_dive_sites(client: ItineraClient) -> None:
    dahab = await client.destinations.create(
        DestinationCreate(slug="dahab", name="Dahab", country="EG", lat=28.49, lon=34.51)
    )
    renamed = await client.destinations.update(dahab.id, DestinationUpdate(name="Dahab, Sinai"))
    assert renamed.name == "Dahab, Sinai"
    site = await client.destinations.create_dive_site(
        dahab.id,
        DiveSiteCreate(
            name="The Canyon",
            min_depth_m=15,
            max_depth_m=52,
            difficulty="advanced",
            lat=28.55,
            lon=34.52,
        ),
    )
    assert (await client.destinations.dive_sites(dahab.id)).items == [site]
    assert (await client.destinations.get_dive_site(site.id)).name == "The Canyon"
    await client.destinations.delete(dahab.id)
    with pytest.raises(NotFoundError):
        await client.destinations.get_dive_site(site.id)


async def test_an_agent_run_with_its_tool_log_and_checkpoints(client: ItineraClient) -> None:
    run = await client.agent_runs.create(AgentRunCreate(intent="a week of wreck diving"))
    running = await client.agent_runs.update(run.id, AgentRunUpdate(status="running"))
    call = await client.agent_runs.append_tool_call(
        run.id, ToolCallCreate(tool="search", input={"q": "wrecks"}, output={"hits": 3})
    )
    first = await client.agent_runs.append_checkpoint(run.id, CheckpointCreate(state={"step": 1}))
    second = await client.agent_runs.append_checkpoint(
        run.id, CheckpointCreate(state={"step": 2}, parent_id=first.id)
    )

    assert running.status == "running"
    assert (await client.agent_runs.tool_log(run.id)).items == [call]
    assert [c.sequence for c in (await client.agent_runs.checkpoints(run.id)).items] == [
        first.sequence,
        second.sequence,
    ]
    assert await client.agent_runs.latest_checkpoint(run.id) == second
    assert [r.id for r in (await client.agent_runs.list(status="running")).items] == [run.id]


async def test_a_chat_session_its_messages_and_a_lead(client: ItineraClient) -> None:
    session = await client.chat.create_session(ChatSessionCreate(profile={"certification": "AOW"}))
    posted = await client.chat.post_message(
        session.id, ChatMessageCreate(role="user", content="Where can I see mantas?")
    )
    assert posted.message.content == "Where can I see mantas?"
    assert (await client.chat.messages(session.id)).items == [posted.message]
    assert (await client.chat.get_session(session.id)).profile == {"certification": "AOW"}

    lead = await client.leads.capture(
        LeadCapture(email="Ana@Example.com", source="chat", chat_session_id=session.id)
    )
    again = await client.leads.capture(LeadCapture(email="ana@example.com", source="chat"))
    assert again.id == lead.id
    assert again.chat_session_id == session.id
    assert [found.id for found in (await client.leads.list(source="chat")).items] == [lead.id]


async def test_an_admin_manages_users_and_their_api_keys(
    client: ItineraClient, live_tenant: LiveService
) -> None:
    email = f"bo-{uuid.uuid4().hex[:8]}@example.com"
    user = await client.users.create(UserCreate(email=email, password="a long password"))
    promoted = await client.users.update(user.id, UserUpdate(role="admin"))
    assert promoted.role == "admin"
    assert (await client.users.get(user.id)).email == email

    created = await client.api_keys.create(ApiKeyCreate(user_id=user.id, name="worker"))
    assert created.secret.startswith("itk_")
    listed = await client.api_keys.list(user_id=user.id)
    assert [(k.id, k.name) for k in listed.items] == [(created.id, "worker")]
    async with ItineraClient(live_tenant.base_url, api_key=created.secret) as worker:
        assert (await worker.me()).user.id == user.id
        await client.api_keys.revoke(created.id)
        with pytest.raises(AuthenticationError):
            await worker.me()


async def test_paginate_walks_every_page(client: ItineraClient) -> None:
    for n in range(5):
        await client.leads.capture(LeadCapture(email=f"lead{n}@example.com", source="fair"))

    emails = [
        lead.email
        async for lead in client.paginate(
            lambda cursor: client.leads.list(source="fair", limit=2, cursor=cursor)
        )
    ]

    assert emails == [f"lead{n}@example.com" for n in reversed(range(5))]
