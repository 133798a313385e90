"""What a key is, what makes two requests the same request, and which answers are kept."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import parse_qsl, urlencode

import msgspec
from starlette.types import Scope

from itinera import scope as request_scope
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
