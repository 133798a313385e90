"""Login, refresh and the caller's identity on the wire."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from itinera_client.schemas.types import Email
from itinera_client.schemas.users import RoleName

Slug = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]
# No length or pattern here: text that is not a refresh token is an invalid
# token (401), not a schema error (422). The body limit bounds its size, and
# security.tokens.refresh_token_org refuses it before it is hashed or looked up.
RefreshTokenText = Annotated[
    str, Meta(description="As issued by login or refresh: `<org_id>.<43 base64url characters>`")
]


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The examples are the demo credentials `itinera seed` prints (see the README).
    org: Annotated[Slug, Meta(examples=["demo"])]
    email: Annotated[Email, Meta(examples=["admin@demo.example"])]
    password: Annotated[str, Meta(min_length=1, max_length=1024, examples=["itinera-demo"])]


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
