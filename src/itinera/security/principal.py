from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

Role = Literal["member", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: put in the request scope by the auth middleware.

    ``role`` is what the access token says, as it was when the token was
    issued. It never authorises anything: admin rights are checked against
    the database as each request's transaction opens (``admin_only`` routes).

    ``api_key_hash``: set when the caller authenticated with an API key (its
    SHA-256). The user id was then resolved from the key by the service a
    moment ago (and remembered for a minute); the statement that opens each
    transaction checks again that the key is live and still that user's, so a
    revoked key or a disabled user is refused on the very next request.
    """

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role
    api_key_hash: bytes | None = None
