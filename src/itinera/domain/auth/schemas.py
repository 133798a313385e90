"""Login, refresh and the caller's identity on the wire."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from itinera.domain.types import Email
from itinera.domain.users.schemas import RoleName

Slug = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]
RefreshTokenText = Annotated[str, Meta(min_length=1, max_length=200)]


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    org: Slug
    email: Email
    password: Annotated[str, Meta(min_length=1, max_length=1024)]


class RefreshRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    refresh_token: RefreshTokenText


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str


class MeUser(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    email: str
    role: RoleName


class MeOrg(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str


class Me(msgspec.Struct, frozen=True, kw_only=True):
    user: MeUser
    org: MeOrg
