"""Cursor pagination: opaque cursors bound to their route and org.

The page and its query are wire types (``itinera_client.schemas.pagination``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import TypeVar

import msgspec

from itinera.errors import MalformedInputError

K = TypeVar("K", uuid.UUID, int)

MAC_BYTES = 16


class CursorCodec:
    """Signs the last sort key of a page so a cursor only works where it was issued."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"itinera-cursor", hashlib.sha256).digest()

    def encode(self, key: uuid.UUID | int, *, route: str, org_id: uuid.UUID) -> str:
        payload = msgspec.json.encode(key)
        mac = self._mac(payload, route, org_id)
        return base64.urlsafe_b64encode(mac + payload).rstrip(b"=").decode()

    def decode(self, cursor: str, key_type: type[K], *, route: str, org_id: uuid.UUID) -> K:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError as exc:
            raise MalformedInputError("the cursor is not valid") from exc
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload, route, org_id)):
            raise MalformedInputError("the cursor is not valid here")
        try:
            return msgspec.json.decode(payload, type=key_type)
        except msgspec.DecodeError as exc:  # pragma: no cover - signed by us
            raise MalformedInputError("the cursor is not valid") from exc

    def _mac(self, payload: bytes, route: str, org_id: uuid.UUID) -> bytes:
        message = b"\0".join((route.encode(), org_id.bytes, payload))
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]
