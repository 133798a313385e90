"""Per route: open the request's unit of work, and commit before the response leaves."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.db.unit_of_work import UnitOfWork


class UnitOfWorkMiddleware:
    """Holds the response until the transaction is over.

    A success (< 400) commits, anything else rolls back; only then are the
    held messages sent, so a client never sees a 201 for a write that did not
    commit. A layer inside may commit first (idempotency stores its record
    with the handler's writes and commits itself).
    """

    def __init__(self, app: ASGIApp, *, requires_admin: bool = False) -> None:
        self.app = app
        self.requires_admin = requires_admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = request_scope.principal(scope)
        resources = request_scope.resources(scope)
        db = resources.db
        uow = UnitOfWork(
            db.app_engine,
            principal.org_id if principal else None,
            user_id=principal.user_id if principal else None,
            requires_admin=self.requires_admin,
            statement_timeout=resources.settings.db_statement_timeout_seconds,
            gate=db.request_gate,
            gate_timeout=db.request_gate_timeout,
        )
        scope[request_scope.UNIT_OF_WORK] = uow
        held: list[Message] = []
        status = 500

        async def hold(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            held.append(message)

        try:
            await self.app(scope, receive, hold)
            if status < 400:
                await uow.commit()
            else:
                await uow.rollback()
        finally:
            # Shielded inside: the connection must go back to the pool clean
            # even when the request is cancelled (client gone, server stopping).
            await uow.close()
        for message in held:
            await send(message)
