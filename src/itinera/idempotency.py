"""Idempotency keys: their form, the request fingerprint, and the stored responses."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import parse_qsl, urlencode

import msgspec
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.types import Scope

from itinera import scope as request_scope
from itinera.db.models import IdempotencyRecord
from itinera.db.prepared import Prepared
from itinera.db.tenancy import TenantStatements
from itinera.errors import MalformedInputError
from itinera.http import UNDECODABLE

KEY_FORM = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII
STORED_HEADERS = frozenset({b"content-type", b"location", b"etag"})
# Answers that depend on the moment, not on the request, are never replayed.
NEVER_STORED = frozenset({401, 403, 409, 412, 428, 429})

_sorted_json = msgspec.json.Encoder(order="sorted")


def parse_key(lines: list[str]) -> str | None:
    """The key of an ``Idempotency-Key`` header; the quoted form ``"k"`` is the key ``k``."""
    if not lines:
        return None
    if len(lines) > 1:
        raise MalformedInputError("send one Idempotency-Key header")
    key = lines[0].strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not KEY_FORM.fullmatch(key) or '"' in key:
        raise MalformedInputError("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


def fingerprint(scope: Scope) -> bytes:
    """Method, path, sorted query, If-Match and the body as canonical JSON (else raw bytes)."""
    body = request_scope.body(scope)
    try:
        canonical = _sorted_json.encode(msgspec.json.decode(body)) if body else b""
    except UNDECODABLE:
        canonical = body
    query = urlencode(sorted(parse_qsl(scope.get("query_string", b"").decode("latin-1"))))
    if_match = request_scope.header_list(scope, b"if-match") or ""
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], query, if_match):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(canonical)
    return digest.digest()


def lock_id(org_id: uuid.UUID, user_id: uuid.UUID, key: str) -> int:
    """The 64-bit advisory-lock key of (org, user, key)."""
    digest = hashlib.sha256(org_id.bytes + user_id.bytes + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def should_store(status: int) -> bool:
    return 200 <= status < 300 or (400 <= status < 500 and status not in NEVER_STORED)


class StoredResponse(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]  # only STORED_HEADERS, by lower-case name
    body: bytes


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


class IdempotencyRecords(TenantStatements):
    async def find(self, user_id: uuid.UUID, key: str) -> tuple[bytes, StoredResponse] | None:
        """The live record of the key; an expired one counts as absent."""
        row = await self.fetchrow(FIND, user_id=user_id, key=key)
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
        await self.fetchrow(
            STORE,
            user_id=user_id,
            key=key,
            fingerprint=request_fingerprint,
            status=response.status,
            headers=response.headers,
            body=response.body,
            ttl_seconds=ttl_seconds,
        )
