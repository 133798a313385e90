"""Sales leads on the wire. One lead per (email in any case, source) in an org."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import Email, JsonObject, Name

# Free-form, as sales teams name their channels ("website", "chat", "dema-2027").
LeadSource = Annotated[str, Meta(min_length=1, max_length=100, examples=["website"])]
# Phone numbers come in every notation; bounded, not parsed.
Phone = Annotated[str, Meta(min_length=1, max_length=50, examples=["+20 100 123 4567"])]


class Lead(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    email: str
    name: str | None
    phone: str | None
    source: str
    chat_session_id: uuid.UUID | None
    metadata: dict[str, object]
    created_at: datetime
    updated_at: datetime


class LeadCapture(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A capture creates the lead, or updates the one with this email (any case) and source.

    On a repeat capture, what is sent wins and what is absent is kept: a later
    form that asks only for the email must not erase the phone number taken
    earlier. ``null`` clears a field; ``metadata`` is replaced whole when sent;
    the email takes the spelling of the latest capture.
    """

    email: Email
    source: LeadSource
    name: Name | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET
    chat_session_id: uuid.UUID | UnsetType | None = UNSET
    metadata: JsonObject | UnsetType = UNSET


class LeadListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    source: LeadSource | None = None
    email: Email | None = None
