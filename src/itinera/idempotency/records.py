"""The stored responses, one per (org, user, key)."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from itinera.db.models import IdempotencyRecord
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository
from itinera.idempotency.policy import StoredResponse

_RECORD = and_(
    IdempotencyRecord.org_id == bindparam("org_id"),
    IdempotencyRecord.user_id == bindparam("user_id"),
    IdempotencyRecord.key == bindparam("key"),
)
FIND = Prepared(
    select(
        IdempotencyRecord.fingerprint,
        IdempotencyRecord.status,
        IdempotencyRecord.headers,
        IdempotencyRecord.body,
    ).where(_RECORD, IdempotencyRecord.expires_at > func.now())
)
_STORED = ("fingerprint", "status", "headers", "body")
_insert = pg_insert(IdempotencyRecord).values(
    org_id=bindparam("org_id"),
    user_id=bindparam("user_id"),
    key=bindparam("key"),
    **{name: bindparam(name) for name in _STORED},
    created_at=func.now(),
    expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("ttl_seconds")),
)
# An expired record of the same key may still be there (sweeps only reclaim
# space): the caller holds the key's lock, so overwrite it.
STORE = Prepared(
    _insert.on_conflict_do_update(
        index_elements=[IdempotencyRecord.org_id, IdempotencyRecord.user_id, IdempotencyRecord.key],
        set_={
            name: getattr(_insert.excluded, name) for name in (*_STORED, "created_at", "expires_at")
        },
    )
)


class IdempotencyRecords(TenantRepository):
    async def find(self, user_id: uuid.UUID, key: str) -> tuple[bytes, StoredResponse] | None:
        """The live record of the key; an expired one counts as absent."""
        row = await self.one(FIND, user_id=user_id, key=key)
        if row is None:
            return None
        return row["fingerprint"], StoredResponse(row["status"], row["headers"], row["body"])

    async def store(
        self,
        user_id: uuid.UUID,
        key: str,
        request_fingerprint: bytes,
        response: StoredResponse,
        ttl_seconds: int,
    ) -> None:
        await self.execute(
            STORE,
            user_id=user_id,
            key=key,
            fingerprint=request_fingerprint,
            status=response.status,
            headers=response.headers,
            body=response.body,
            ttl_seconds=ttl_seconds,
        )
