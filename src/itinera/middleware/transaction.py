"""Per route: the request's one transaction — opened, held, committed, then sent.

Buffer, commit, then send: the handler's response is held until the
transaction is over, so a client never sees a 201 for a write that did not
commit. A success (< 400) commits and anything else rolls back — except under
an ``Idempotency-Key``, where the handler runs under a savepoint and the
record is committed with whatever the response kept (see ``idempotency.step``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.db.unit_of_work import UnitOfWork
from itinera.errors import ItineraError, MalformedInputError
from itinera.http import error_response
from itinera.idempotency.policy import parse_key
from itinera.idempotency.step import IdempotencyStep


class TransactionMiddleware:
    """The unit of work of one route's requests, with idempotency as a step when it applies.

    ``idempotent``: the route takes an ``Idempotency-Key``; ``key_required``:
    it refuses a request without one.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        requires_admin: bool = False,
        idempotent: bool = False,
        key_required: bool = False,
    ) -> None:
        self.app = app
        self.requires_admin = requires_admin
        self.idempotent = idempotent
        self.key_required = key_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            key = self._key(scope)
        except MalformedInputError as exc:
            await error_response(exc)(scope, receive, send)
            return
        uow = self._unit_of_work(scope)
        scope[request_scope.UNIT_OF_WORK] = uow
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            if key is None:
                await self.app(scope, receive, hold)
                if _status(held) < 400:
                    await uow.commit()
                else:
                    await uow.rollback()
            else:
                step = IdempotencyStep(scope, uow, key)
                try:
                    replayed = await step.before_handler()
                except ItineraError as exc:
                    await error_response(exc)(scope, receive, hold)
                else:
                    if replayed is not None:
                        held = replayed
                    else:
                        # An exception propagates: nothing is stored, the key stays free.
                        await self.app(scope, receive, hold)
                        await uow.commit(await step.before_commit(held))
        finally:
            # Shielded inside: the connection must go back to the pool clean
            # even when the request is cancelled (client gone, server stopping).
            await uow.close()
        for message in held:
            await send(message)

    def _key(self, scope: Scope) -> str | None:
        if not self.idempotent:
            return None
        key = parse_key(request_scope.header_lines(scope, b"idempotency-key"))
        if key is None and self.key_required:
            raise MalformedInputError("this operation needs an Idempotency-Key header")
        return key

    def _unit_of_work(self, scope: Scope) -> UnitOfWork:
        principal = request_scope.principal(scope)
        resources = request_scope.resources(scope)
        db = resources.db
        return UnitOfWork(
            db.requests,
            principal.org_id if principal else None,
            user_id=principal.user_id if principal else None,
            api_key_hash=principal.api_key_hash if principal else None,
            requires_admin=self.requires_admin,
            statement_timeout=resources.settings.db_statement_timeout_seconds,
            round_trips=request_scope.round_trips(scope),
        )


def _status(messages: list[Message]) -> int:
    for message in messages:
        if message["type"] == "http.response.start":
            return int(message["status"])
    return 500
