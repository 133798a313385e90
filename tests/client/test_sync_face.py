"""The sync face from plain blocking code (no event loop of the test's own), against a live
service: the same calls, credentials, idempotency and errors as the async face."""

from __future__ import annotations

from datetime import date

import pytest

from itinera_client import SyncItineraClient
from itinera_client.errors import NotFoundError, PreconditionFailedError
from itinera_client.schemas.itineraries import Itinerary, ItineraryCreate, ItineraryUpdate
from itinera_client.schemas.knowledge import KnowledgeCreate, SearchRequest
from itinera_client.schemas.leads import LeadCapture
from tests.support.live_service import LiveService
from tests.support.recording import Recorder


def test_the_sync_face_logs_in_writes_reads_and_searches(live_tenant: LiveService) -> None:
    recorder = Recorder()
    with (
        recorder.sync_http() as http,
        SyncItineraClient(live_tenant.base_url, http_client=http) as client,
    ):
        client.login(live_tenant.org.slug, live_tenant.admin.email, live_tenant.password)
        assert client.me().user.id == live_tenant.admin.user_id

        item, created = client.knowledge.upsert(
            KnowledgeCreate(
                key="faq/visa.md",
                source="faq",
                title="Visas for Egypt",
                body="A visa on arrival covers Sinai resorts for fifteen days.",
                metadata={"country": "EG"},
            )
        )
        assert created
        hits = client.knowledge.search(SearchRequest(query_text="visa", metadata={"country": "EG"}))
        assert [hit.key for hit in hits.results] == ["faq/visa.md"]
        client.knowledge.delete_by_key("faq/visa.md")
        with pytest.raises(NotFoundError):
            client.knowledge.get(item.id)

        trip = client.itineraries.create(
            ItineraryCreate(title="Sinai", start_date=date(2027, 3, 1), end_date=date(2027, 3, 8))
        )
        final = client.itineraries.update(
            trip.id, ItineraryUpdate(status="final"), version=trip.version
        )
        with pytest.raises(PreconditionFailedError):
            client.itineraries.delete(trip.id, version=trip.version)
        assert client.itineraries.get_if_changed(trip.id, final.version) is None
        read = client.request("GET", f"/v1/itineraries/{trip.id}", response_type=Itinerary)
        assert read == final

        for n in range(3):
            client.leads.capture(LeadCapture(email=f"sync{n}@example.com", source="sync"))
        emails = [
            lead.email
            for lead in client.paginate(
                lambda cursor: client.leads.list(source="sync", limit=1, cursor=cursor)
            )
        ]
        assert emails == ["sync2@example.com", "sync1@example.com", "sync0@example.com"]

    writes = [e for e in recorder.exchanges if e.method in {"POST", "PATCH", "DELETE"}]
    keys = [e.idempotency_key for e in writes if e.path != "/v1/auth/login"]
    assert all(keys)
    assert len(set(keys)) == len(keys)
