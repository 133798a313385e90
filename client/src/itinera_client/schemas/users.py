"""Users on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from itinera_client.schemas.types import Email

Password = Annotated[str, Meta(min_length=8, max_length=1024)]
RoleName = Literal["member", "admin"]


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    email: str
    role: RoleName
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    role: RoleName = "member"


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: RoleName | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET
