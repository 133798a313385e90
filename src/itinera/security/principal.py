from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

Role = Literal["member", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: put in the request scope by the auth middleware."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
