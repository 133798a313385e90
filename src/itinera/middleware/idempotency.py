"""Per route: exactly-once writes for requests that carry an ``Idempotency-Key``.

Inside the request's own transaction: take a transaction-level advisory lock
on the key, read its record, and either replay the stored response, refuse,
or run the handler under a savepoint and store its response with its writes.
The response is held until the commit. A crash releases the lock with the
connection, so there is no pending state and no lease to expire.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.errors import ItineraError, MalformedInputError
from itinera.http import (
    IDEMPOTENCY_IN_FLIGHT,
    IDEMPOTENCY_KEY_REUSED,
    MALFORMED,
    error_response,
    problem_response,
)
from itinera.idempotency import (
    STORED_HEADERS,
    IdempotencyRecords,
    StoredResponse,
    fingerprint,
    lock_id,
    parse_key,
    should_store,
)

SAVEPOINT = "idempotent_handler"
REPLAYED = (b"idempotent-replayed", b"true")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, required: bool) -> None:
        self.app = app
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            key = parse_key(request_scope.header_lines(scope, b"idempotency-key"))
        except MalformedInputError as exc:
            await problem_response(400, exc.detail, type=MALFORMED)(scope, receive, send)
            return
        if key is None:
            if self.required:
                detail = "this operation needs an Idempotency-Key header"
                await problem_response(400, detail, type=MALFORMED)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        principal = request_scope.principal(scope)
        assert principal is not None, "idempotency applies to authenticated routes"
        resources = request_scope.resources(scope)
        uow = request_scope.unit_of_work(scope)
        request_fingerprint = fingerprint(scope)
        try:
            granted = await uow.begin(
                advisory_lock=lock_id(principal.org_id, principal.user_id, key), savepoint=SAVEPOINT
            )
            # A statement of its own: its snapshot is taken after the lock, so
            # it sees the record of a request that held the lock a moment ago.
            records = IdempotencyRecords(await uow.driver(), principal.org_id)
            found = await records.find(principal.user_id, key)
        except ItineraError as exc:
            await error_response(exc)(scope, receive, send)
            return

        if found is not None:
            stored_fingerprint, stored = found
            if stored_fingerprint != request_fingerprint:
                resources.metrics.idempotency_outcome("reused")
                detail = "this Idempotency-Key was used for a different request"
                response = problem_response(422, detail, type=IDEMPOTENCY_KEY_REUSED)
                await response(scope, receive, send)
                return
            resources.metrics.idempotency_outcome("replayed")
            await _replay(stored, send)
            return
        if not granted:
            resources.metrics.idempotency_outcome("in_flight")
            response = problem_response(
                409,
                "a request with this Idempotency-Key is in progress; retry shortly",
                type=IDEMPOTENCY_IN_FLIGHT,
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return

        resources.metrics.idempotency_outcome("new")
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        # An exception propagates: nothing is stored and the key stays free.
        await self.app(scope, receive, hold)
        status, headers, body = _collected(held)
        if status >= 400:
            await uow.rollback_to_savepoint(SAVEPOINT)
        settings = resources.settings
        if should_store(status):
            # Exactly once at every size: past the cap the body is left out,
            # never the record, and a replay answers status and headers alone.
            if len(body) > settings.idempotency_max_stored_bytes:
                body = b""
            await records.store(
                principal.user_id,
                key,
                request_fingerprint,
                StoredResponse(status, headers, body),
                settings.idempotency_ttl_seconds,
            )
        await uow.commit()
        for message in held:
            await send(message)


def _collected(messages: list[Message]) -> tuple[int, dict[str, str], bytes]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in start.get("headers", [])
        if name.lower() in STORED_HEADERS
    }
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return int(start["status"]), headers, body


async def _replay(stored: StoredResponse, send: Send) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers.items()
    ]
    if stored.status not in (204, 304):
        headers.append((b"content-length", str(len(stored.body)).encode()))
    headers.append(REPLAYED)
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
