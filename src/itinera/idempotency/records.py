"""The stored responses, one per (org, user, key)."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import and_, bindparam, func, select

from itinera.db.literals import Inlined, bytea_literal, dollar_quoted, uuid_literal
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


class IdempotencyRecords(TenantRepository):
    async def find(self, user_id: uuid.UUID, key: str) -> tuple[bytes, StoredResponse] | None:
        """The live record of the key; an expired one counts as absent."""
        row = await self.one(FIND, user_id=user_id, key=key)
        if row is None:
            return None
        return row["fingerprint"], StoredResponse(row["status"], row["headers"], row["body"])


def stored_at_commit(
    user_id: uuid.UUID,
    key: str,
    request_fingerprint: bytes,
    response: StoredResponse,
    ttl_seconds: int,
) -> Inlined:
    """The statement that stores the key's record, for the transaction's COMMIT message.

    ``itinera_store_response`` (migration 0009) overwrites an expired record of
    the key: the caller holds the key's lock.
    """
    headers = msgspec.json.encode(response.headers).decode()

    def call(key: str, fingerprint: str, headers_json: str, body: str) -> str:
        values = (
            uuid_literal(user_id),
            key,
            fingerprint,
            f"{int(response.status)}::smallint",
            f"{headers_json}::jsonb",
            body,
            str(int(ttl_seconds)),
        )
        return f"SELECT itinera_store_response({', '.join(values)})"

    return Inlined(
        sql=call(
            dollar_quoted(key),
            bytea_literal(request_fingerprint),
            dollar_quoted(headers),
            bytea_literal(response.body),
        ),
        shown=call("$key", "$fingerprint", "$headers", "$body"),
    )
