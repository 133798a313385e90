"""What the transaction layer does for a request that carries an ``Idempotency-Key``.

Inside the request's own transaction: the key's transaction-level advisory
lock is taken in the opening message, which also checks that the key has no
record; if it has one (or the lock is held elsewhere) the record is read, and
the request is replayed or refused; else it goes to the handler under a
savepoint, and its response is stored with its writes, in the message that
commits them. A crash releases the lock with the connection, so there is no
pending state and no lease.
"""

from __future__ import annotations

from starlette.types import Message, Scope

from itinera import scope as request_scope
from itinera.db.literals import Inlined
from itinera.db.unit_of_work import UnitOfWork
from itinera.errors import IdempotencyInFlightError, IdempotencyKeyReusedError
from itinera.idempotency.policy import (
    STORED_HEADERS,
    StoredResponse,
    fingerprint,
    lock_id,
    should_store,
)
from itinera.idempotency.records import IdempotencyRecords, stored_at_commit

SAVEPOINT = "idempotent_handler"
REPLAYED = (b"idempotent-replayed", b"true")


class IdempotencyStep:
    """Exactly once for one request and its key."""

    def __init__(self, scope: Scope, uow: UnitOfWork, key: str) -> None:
        principal = request_scope.principal(scope)
        assert principal is not None, "idempotency applies to authenticated routes"
        self.user_id = principal.user_id
        self.org_id = principal.org_id
        self.key = key
        self.uow = uow
        self.resources = request_scope.resources(scope)
        self.fingerprint = fingerprint(scope)

    async def before_handler(self) -> list[Message] | None:
        """Lock and look up: the messages of a replay, None to run the handler.

        Raises the refusals (reused key, key in flight) as errors.
        """
        metrics = self.resources.metrics
        # The opening asks, after taking the lock, whether the key has a record:
        # a new key (the common case) is ready for its handler at once.
        fresh = await self.uow.begin(
            advisory_lock=lock_id(self.org_id, self.user_id, self.key),
            savepoint=SAVEPOINT,
            unrecorded_key=(self.user_id, self.key),
        )
        if fresh:
            metrics.idempotency_outcome("new")
            return None
        # The lock is held elsewhere, or the key has a record: read it. A
        # statement of its own, whose snapshot is taken after the opening, so
        # it sees the record of a request that held the lock a moment ago.
        found = await IdempotencyRecords(self.uow).find(self.user_id, self.key)
        if found is not None:
            stored_fingerprint, stored = found
            if stored_fingerprint != self.fingerprint:
                metrics.idempotency_outcome("reused")
                raise IdempotencyKeyReusedError(
                    "this Idempotency-Key was used for a different request"
                )
            metrics.idempotency_outcome("replayed")
            return _replay(stored)
        # No record after all (it expired in between): as busy as a held lock.
        metrics.idempotency_outcome("in_flight")
        raise IdempotencyInFlightError(
            "a request with this Idempotency-Key is in progress; retry shortly"
        )

    async def before_commit(self, response: list[Message]) -> Inlined | None:
        """Keep the handler's writes only for a success; the statement that stores what the
        key will replay, for the COMMIT message (None: this answer is not kept).

        Exactly once at every size: past the cap the body is left out, never
        the record, and a replay answers status and headers alone.
        """
        status, headers, body = _collected(response)
        if status >= 400:
            await self.uow.rollback_to_savepoint(SAVEPOINT)
        if not should_store(status):
            return None
        settings = self.resources.settings
        if len(body) > settings.idempotency_max_stored_bytes:
            body = b""
        return stored_at_commit(
            self.user_id,
            self.key,
            self.fingerprint,
            StoredResponse(status, headers, body),
            settings.idempotency_ttl_seconds,
        )


def _collected(messages: list[Message]) -> tuple[int, dict[str, str], bytes]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in start.get("headers", [])
        if name.lower() in STORED_HEADERS
    }
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return int(start["status"]), headers, body


def _replay(stored: StoredResponse) -> list[Message]:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers.items()
    ]
    if stored.status not in (204, 304):
        headers.append((b"content-length", str(len(stored.body)).encode()))
    headers.append(REPLAYED)
    return [
        {"type": "http.response.start", "status": stored.status, "headers": headers},
        {"type": "http.response.body", "body": stored.body},
    ]
