"""Destinations and their dive sites on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import (
    CountryCode,
    JsonObject,
    Latitude,
    Longitude,
    LongText,
    Name,
    Slug,
)

Timezone = Annotated[
    str, Meta(min_length=1, max_length=64, description="IANA time zone", examples=["Africa/Cairo"])
]
# Bounded above so no number decodes to infinity (which JSON cannot answer back);
# the deepest point of any ocean is under 11 km.
Depth = Annotated[float, Meta(ge=0, le=11_000, description="metres below the surface")]
Certification = Annotated[str, Meta(min_length=1, max_length=100, examples=["PADI Advanced"])]
Difficulty = Literal["beginner", "intermediate", "advanced"]
# Whole metres: a query parameter is read as a number only when it is an integer.
DepthLimit = Annotated[
    int, Meta(ge=0, le=11_000, description="sites whose max_depth_m is at most this many metres")
]


class Destination(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    country: str
    lat: float
    lon: float
    timezone: str | None
    description: str
    metadata: dict[str, object]
    created_at: datetime
    updated_at: datetime


class DestinationCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slug: Annotated[Slug, Meta(examples=["dahab"])]
    name: Annotated[Name, Meta(examples=["Dahab"])]
    country: Annotated[CountryCode, Meta(examples=["EG"])]
    lat: Annotated[Latitude, Meta(examples=[28.4937])]
    lon: Annotated[Longitude, Meta(examples=[34.5136])]
    timezone: Timezone | None = None
    description: Annotated[
        LongText, Meta(examples=["Shore dives on the Gulf of Aqaba, the Blue Hole among them."])
    ] = ""
    metadata: JsonObject = msgspec.field(default_factory=dict)


class DestinationListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    country: CountryCode | None = None


class DestinationUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slug: Slug | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    country: CountryCode | UnsetType = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    timezone: Timezone | UnsetType | None = UNSET
    description: LongText | UnsetType = UNSET
    metadata: JsonObject | UnsetType = UNSET


class DiveSite(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    destination_id: uuid.UUID
    name: str
    min_depth_m: float
    max_depth_m: float
    difficulty: Difficulty
    min_certification: str | None
    lat: float
    lon: float
    metadata: dict[str, object]
    created_at: datetime
    updated_at: datetime


class DiveSiteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The destination comes from the path it is posted under."""

    name: Name
    min_depth_m: Depth
    max_depth_m: Depth
    difficulty: Difficulty
    min_certification: Certification | None = None
    lat: Latitude
    lon: Longitude
    metadata: JsonObject = msgspec.field(default_factory=dict)


class DiveSiteUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    min_depth_m: Depth | UnsetType = UNSET
    max_depth_m: Depth | UnsetType = UNSET
    difficulty: Difficulty | UnsetType = UNSET
    min_certification: Certification | UnsetType | None = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    metadata: JsonObject | UnsetType = UNSET


class DiveSiteListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    difficulty: Difficulty | None = None
    max_depth_m: DepthLimit | None = None
