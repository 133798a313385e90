"""API keys on the wire. The secret appears in one body only: the answer to creating one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import Name

Expiry = Annotated[
    datetime, Meta(tz=True, description="when the key stops working (UTC offset required)")
]


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey, frozen=True, kw_only=True):
    """The new key with its secret: shown this once, stored only as SHA-256."""

    secret: str


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID
    name: Name
    expires_at: Expiry | None = None


class ApiKeyListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID | None = None
