"""Refresh tokens: stored as SHA-256, rotated by one conditional UPDATE."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert

from itinera.db.models import RefreshToken, new_id
from itinera.db.tenancy import TenantRepository


@dataclass(frozen=True, slots=True)
class Rotated:
    user_id: uuid.UUID
    family_id: uuid.UUID
    family_expires_at: datetime


class RefreshTokenRepository(TenantRepository):
    async def start_family(
        self, user_id: uuid.UUID, token_hash: bytes, family_expires_at: datetime
    ) -> None:
        await self.session.execute(
            insert(RefreshToken).values(
                org_id=self.org_id,
                id=new_id(),
                user_id=user_id,
                family_id=new_id(),
                token_hash=token_hash,
                family_expires_at=family_expires_at,
            )
        )

    async def rotate(self, old_hash: bytes, new_hash: bytes) -> Rotated | None:
        """Retire a live token and issue its successor in the same family.

        The conditional UPDATE is the whole race: of concurrent rotations of
        one token, the row lock lets exactly one see ``revoked_at IS NULL``.
        """
        successor = new_id()
        retired = (
            await self.session.execute(
                self.update_of(RefreshToken)
                .where(
                    RefreshToken.token_hash == old_hash,
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.family_expires_at > func.now(),
                )
                .values(revoked_at=func.now(), replaced_by=successor)
                .returning(
                    RefreshToken.user_id, RefreshToken.family_id, RefreshToken.family_expires_at
                )
            )
        ).first()
        if retired is None:
            return None
        await self.session.execute(
            insert(RefreshToken).values(
                org_id=self.org_id,
                id=successor,
                user_id=retired.user_id,
                family_id=retired.family_id,
                token_hash=new_hash,
                family_expires_at=retired.family_expires_at,
            )
        )
        return Rotated(retired.user_id, retired.family_id, retired.family_expires_at)

    async def family_of(self, token_hash: bytes) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(family, user) of a known token, live or not."""
        row = (
            await self.session.execute(
                self.select_from(RefreshToken, RefreshToken.family_id, RefreshToken.user_id).where(
                    RefreshToken.token_hash == token_hash
                )
            )
        ).first()
        return (row.family_id, row.user_id) if row else None

    async def revoke_family(self, family_id: uuid.UUID) -> int:
        result = await self.session.execute(
            self.update_of(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
