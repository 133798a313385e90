"""Itineraries on the wire. ``data`` holds the days and their items, free-form."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import JsonObject, Title

ItineraryStatus = Literal["draft", "final"]
# For the OpenAPI document: what a planner might keep in `data`, which the service never reads.
EXAMPLE_PLAN = {
    "days": [
        {"date": "2026-05-02", "items": ["Arrive in Sharm el-Sheikh", "Transfer to Dahab"]},
        {"date": "2026-05-03", "items": ["The Canyon", "Blue Hole"]},
    ]
}


class Itinerary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    created_by: uuid.UUID
    agent_run_id: uuid.UUID | None
    destination_id: uuid.UUID | None
    title: str
    start_date: date
    end_date: date
    status: ItineraryStatus
    data: dict[str, object]
    version: int
    created_at: datetime
    updated_at: datetime


class ItineraryCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Also the body of PUT, which replaces every field it names and resets the rest."""

    title: Annotated[Title, Meta(examples=["A week of diving in Dahab"])]
    start_date: Annotated[date, Meta(examples=["2026-05-02"])]
    end_date: Annotated[date, Meta(examples=["2026-05-09"])]
    status: ItineraryStatus = "draft"
    data: Annotated[JsonObject, Meta(examples=[EXAMPLE_PLAN])] = msgspec.field(default_factory=dict)
    agent_run_id: uuid.UUID | None = None
    destination_id: uuid.UUID | None = None


class ItineraryUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Title | UnsetType = UNSET
    start_date: date | UnsetType = UNSET
    end_date: date | UnsetType = UNSET
    status: ItineraryStatus | UnsetType = UNSET
    data: JsonObject | UnsetType = UNSET
    agent_run_id: uuid.UUID | UnsetType | None = UNSET
    destination_id: uuid.UUID | UnsetType | None = UNSET


class ItineraryListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID | None = None
    status: ItineraryStatus | None = None
    destination_id: uuid.UUID | None = None
    agent_run_id: uuid.UUID | None = None
