"""Refresh tokens: stored as SHA-256, rotated by one conditional UPDATE."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import aliased

from itinera.db.models import RefreshToken, new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository

_ORG = RefreshToken.org_id == bindparam("org_id")
_LIVE = RefreshToken.revoked_at.is_(None)

START_FAMILY = Prepared(
    insert(RefreshToken).values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        user_id=bindparam("user_id"),
        family_id=bindparam("family_id"),
        token_hash=bindparam("token_hash"),
        family_expires_at=bindparam("family_expires_at"),
    )
)

# Retire a live token and insert its successor, in one statement: the UPDATE's
# row lock is the whole race (of concurrent rotations of one token exactly one
# sees ``revoked_at IS NULL``), and a token it did not retire gets no successor.
_retired = (
    update(RefreshToken)
    .where(
        _ORG,
        RefreshToken.token_hash == bindparam("old_hash"),
        _LIVE,
        RefreshToken.family_expires_at > func.now(),
    )
    .values(revoked_at=func.now(), replaced_by=bindparam("successor"))
    .returning(
        RefreshToken.org_id,
        RefreshToken.user_id,
        RefreshToken.family_id,
        RefreshToken.family_expires_at,
    )
    .cte("retired")
)
ROTATE = Prepared(
    insert(RefreshToken)
    .from_select(
        ["org_id", "id", "user_id", "family_id", "token_hash", "family_expires_at"],
        select(
            _retired.c.org_id,
            bindparam("successor", type_=RefreshToken.id.type),
            _retired.c.user_id,
            _retired.c.family_id,
            bindparam("new_hash", type_=RefreshToken.token_hash.type),
            _retired.c.family_expires_at,
        ),
    )
    .returning(RefreshToken.user_id, RefreshToken.family_id, RefreshToken.family_expires_at)
)


def _revoke_family_of(*, of_user: bool) -> Prepared:
    """Revoke the live tokens of the family a known token (live or not) belongs to."""
    known = aliased(RefreshToken)
    family = select(known.family_id).where(
        known.org_id == bindparam("org_id"), known.token_hash == bindparam("token_hash")
    )
    if of_user:
        family = family.where(known.user_id == bindparam("user_id"))
    return Prepared(
        update(RefreshToken)
        .where(_ORG, RefreshToken.family_id == family.scalar_subquery(), _LIVE)
        .values(revoked_at=func.now())
    )


REVOKE_FAMILY_OF = _revoke_family_of(of_user=False)
REVOKE_FAMILY_OF_USER = _revoke_family_of(of_user=True)


@dataclass(frozen=True, slots=True)
class Rotated:
    user_id: uuid.UUID
    family_id: uuid.UUID
    family_expires_at: datetime


class RefreshTokenRepository(TenantRepository):
    async def start_family(
        self, user_id: uuid.UUID, token_hash: bytes, family_expires_at: datetime
    ) -> None:
        await self.execute(
            START_FAMILY,
            id=new_id(),
            user_id=user_id,
            family_id=new_id(),
            token_hash=token_hash,
            family_expires_at=family_expires_at,
        )

    async def rotate(self, old_hash: bytes, new_hash: bytes) -> Rotated | None:
        """Retire a live token and issue its successor in the same family (None: it was
        not live — unknown, revoked, or its family expired)."""
        row = await self.one(ROTATE, old_hash=old_hash, new_hash=new_hash, successor=new_id())
        if row is None:
            return None
        return Rotated(row["user_id"], row["family_id"], row["family_expires_at"])

    async def revoke_family_of(self, token_hash: bytes, *, user_id: uuid.UUID | None = None) -> int:
        """Revoke the family of a known token, live or not; with ``user_id``, only when
        the token is that user's. Returns how many live tokens were revoked."""
        if user_id is None:
            return await self.execute(REVOKE_FAMILY_OF, token_hash=token_hash)
        return await self.execute(REVOKE_FAMILY_OF_USER, token_hash=token_hash, user_id=user_id)
