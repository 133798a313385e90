"""Bound what a request may bring: its headers (431), its body (413) and its pace (408)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.errors import ContentTooLargeError, HeadersTooLargeError, RequestTimeoutError
from itinera.http import error_response


class RequestLimitsMiddleware:
    """Refuses oversized headers, then buffers the whole body (chunked too) up to ``max_bytes``.

    Every endpoint reads a JSON body whole anyway; buffering here lets the
    inner layers (rate limits by body field, idempotency fingerprints) read
    it from the scope, and the 413 is sent before any of them runs. A body
    that pauses for longer than ``body_timeout`` between two chunks is refused
    with 408 and its connection closed (after a 413 too: ``itinera.http`` adds
    ``Connection: close`` to both): a slow sender must not hold a request slot
    (and, further in, a database connection) open at will.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_header_bytes: int, body_timeout: float
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            too_large = HeadersTooLargeError(self.max_header_bytes)
            await error_response(too_large)(scope, receive, send)
            return
        declared = request_scope.header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(ContentTooLargeError(self.max_bytes))(scope, receive, send)
            return
        if declared is None and request_scope.header(scope, b"transfer-encoding") is None:
            # Neither length nor chunks: HTTP/1.1 says there is no body (RFC 9112 §6.3).
            scope[request_scope.BODY] = b""
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                too_slow = RequestTimeoutError(self.body_timeout)
                await error_response(too_slow)(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(ContentTooLargeError(self.max_bytes))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[request_scope.BODY] = body
        replayed = False

        async def receive_buffered() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, receive_buffered, send)
