"""Deleting and finding through the client, against a live service: runs, chat sessions
and leads deleted, one checkpoint and one lead read, and the lists' filters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.errors import NotFoundError, ValidationError
from itinera_client.schemas.agent_runs import AgentRunCreate, AgentRunUpdate, CheckpointCreate
from itinera_client.schemas.chat import ChatMessageCreate
from itinera_client.schemas.destinations import DestinationCreate, Difficulty, DiveSiteCreate
from itinera_client.schemas.itineraries import ItineraryCreate
from itinera_client.schemas.leads import LeadCapture
from tests.support.live_service import LiveService


@pytest.fixture
async def client(live_tenant: LiveService) -> AsyncIterator[ItineraClient]:
    async with ItineraClient(live_tenant.base_url) as client:
        await client.login(live_tenant.org.slug, live_tenant.admin.email, live_tenant.password)
        yield client


@pytest.fixture
def sync_client(live_tenant: LiveService) -> Iterator[SyncItineraClient]:
    with SyncItineraClient(live_tenant.base_url, api_key=live_tenant.mint_api_key()) as client:
        yield client


def dive_site(name: str, max_depth_m: float, difficulty: Difficulty = "beginner") -> DiveSiteCreate:
    return DiveSiteCreate(
        name=name,
        min_depth_m=0,
        max_depth_m=max_depth_m,
        difficulty=difficulty,
        lat=28.5,
        lon=34.5,
    )


async def test_a_run_names_its_thread_and_is_deleted_with_its_checkpoints(
    client: ItineraClient,
) -> None:
    run = await client.agent_runs.create(
        AgentRunCreate(intent="plan a week in Dahab", thread_id="support/4711")
    )
    other = await client.agent_runs.create(AgentRunCreate(intent="another"))
    await client.agent_runs.update(run.id, AgentRunUpdate(status="running"))
    first = await client.agent_runs.append_checkpoint(run.id, CheckpointCreate(state={"n": 1}))
    second = await client.agent_runs.append_checkpoint(
        run.id, CheckpointCreate(state={"n": 2}, parent_id=first.id)
    )

    assert run.thread_id == "support/4711"
    assert await client.agent_runs.checkpoint(run.id, first.id) == first
    assert (await client.agent_runs.checkpoint(run.id, second.id)).parent_id == first.id
    with pytest.raises(NotFoundError):
        await client.agent_runs.checkpoint(other.id, first.id)
    listed = await client.agent_runs.list(thread_id="support/4711")
    assert [r.id for r in listed.items] == [run.id]

    await client.agent_runs.delete(run.id)
    for read in (client.agent_runs.get(run.id), client.agent_runs.checkpoint(run.id, first.id)):
        with pytest.raises(NotFoundError):
            await read
    with pytest.raises(NotFoundError):
        await client.agent_runs.delete(run.id)
    assert [r.id for r in (await client.agent_runs.list()).items] == [other.id]
    with pytest.raises(ValidationError):
        await client.agent_runs.list(thread_id="")


async def test_a_person_is_erased_chats_first_then_leads(client: ItineraClient) -> None:
    session = await client.chat.create_session()
    await client.chat.post_message(
        session.id, ChatMessageCreate(role="assistant", content="Welcome to Dahab")
    )
    lead = await client.leads.capture(
        LeadCapture(email="Ana@Example.com", source="chat", chat_session_id=session.id)
    )
    assert await client.leads.get(lead.id) == lead

    await client.chat.delete_session(session.id)
    with pytest.raises(NotFoundError):
        await client.chat.get_session(session.id)
    unlinked = await client.leads.get(lead.id)
    assert (unlinked.email, unlinked.chat_session_id) == ("Ana@Example.com", None)

    await client.leads.delete(lead.id)
    with pytest.raises(NotFoundError):
        await client.leads.get(lead.id)
    assert (await client.leads.list(email="ana@example.com")).items == []


async def test_itineraries_destinations_and_dive_sites_are_found_by_their_filters(
    client: ItineraClient,
) -> None:
    dahab = await client.destinations.create(
        DestinationCreate(slug="dahab", name="Dahab", country="EG", lat=28.49, lon=34.51)
    )
    cancun = await client.destinations.create(
        DestinationCreate(slug="cancun", name="Cancún", country="MX", lat=21.16, lon=-86.85)
    )
    assert [d.id for d in (await client.destinations.list(country="EG")).items] == [dahab.id]
    assert [d.id for d in (await client.destinations.list(country="MX")).items] == [cancun.id]

    shallow = await client.destinations.create_dive_site(dahab.id, dive_site("Lighthouse", 18))
    deep = await client.destinations.create_dive_site(
        dahab.id, dive_site("The Canyon", 52, "advanced")
    )
    by_depth = await client.destinations.dive_sites(dahab.id, max_depth_m=30)
    assert by_depth.items == [shallow]
    by_difficulty = await client.destinations.dive_sites(dahab.id, difficulty="advanced")
    assert by_difficulty.items == [deep]

    run = await client.agent_runs.create(AgentRunCreate(intent="a week in Dahab"))
    start, end = date(2027, 5, 1), date(2027, 5, 7)
    planned = await client.itineraries.create(
        ItineraryCreate(
            title="Dahab",
            start_date=start,
            end_date=end,
            destination_id=dahab.id,
            agent_run_id=run.id,
        )
    )
    await client.itineraries.create(
        ItineraryCreate(title="Cancún", start_date=start, end_date=end, destination_id=cancun.id)
    )
    by_destination = await client.itineraries.list(destination_id=dahab.id)
    assert [i.id for i in by_destination.items] == [planned.id]
    by_run = await client.itineraries.list(agent_run_id=run.id)
    assert [i.id for i in by_run.items] == [planned.id]
    walked = [
        itinerary.id
        async for itinerary in client.paginate(
            lambda cursor: client.itineraries.list(destination_id=cancun.id, limit=1, cursor=cursor)
        )
    ]
    assert len(walked) == 1


def test_the_sync_face_deletes_and_filters_too(sync_client: SyncItineraClient) -> None:
    run = sync_client.agent_runs.create(AgentRunCreate(intent="sync", thread_id="sync-thread"))
    sync_client.agent_runs.update(run.id, AgentRunUpdate(status="running"))
    checkpoint = sync_client.agent_runs.append_checkpoint(run.id, CheckpointCreate(state={}))
    assert sync_client.agent_runs.checkpoint(run.id, checkpoint.id) == checkpoint
    assert [r.id for r in sync_client.agent_runs.list(thread_id="sync-thread").items] == [run.id]
    sync_client.agent_runs.delete(run.id)
    with pytest.raises(NotFoundError):
        sync_client.agent_runs.get(run.id)

    session = sync_client.chat.create_session()
    lead = sync_client.leads.capture(
        LeadCapture(email="sync@example.com", source="sync", chat_session_id=session.id)
    )
    sync_client.chat.delete_session(session.id)
    assert sync_client.leads.get(lead.id).chat_session_id is None
    sync_client.leads.delete(lead.id)
    with pytest.raises(NotFoundError):
        sync_client.leads.delete(lead.id)

    red_sea = sync_client.destinations.create(
        DestinationCreate(
            slug=f"d-{uuid.uuid4().hex[:8]}", name="Aqaba", country="JO", lat=29.5, lon=35.0
        )
    )
    site = sync_client.destinations.create_dive_site(red_sea.id, dive_site("Cedar Pride", 26))
    assert [d.id for d in sync_client.destinations.list(country="JO").items] == [red_sea.id]
    assert sync_client.destinations.dive_sites(red_sea.id, max_depth_m=26).items == [site]
    assert sync_client.destinations.dive_sites(red_sea.id, max_depth_m=25).items == []
    trip = sync_client.itineraries.create(
        ItineraryCreate(
            title="Aqaba",
            start_date=date(2027, 6, 1),
            end_date=date(2027, 6, 3),
            destination_id=red_sea.id,
        )
    )
    assert [i.id for i in sync_client.itineraries.list(destination_id=red_sea.id).items] == [
        trip.id
    ]
