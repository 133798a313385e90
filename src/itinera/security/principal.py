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
    """

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role
