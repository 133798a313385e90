"""What a client sent and what came back, as httpx's own event hooks see it (nothing is
changed on the way)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    request_headers: httpx.Headers
    status: int
    response_headers: httpx.Headers
    body: bytes
    at: float  # time.monotonic() when the answer arrived

    @property
    def idempotency_key(self) -> str | None:
        return self.request_headers.get("idempotency-key")

    @property
    def problem_type(self) -> str | None:
        if not self.response_headers.get("content-type", "").startswith("application/problem"):
            return None
        return str(httpx.Response(self.status, content=self.body).json()["type"])


class Recorder:
    """Hand ``async_http()`` or ``sync_http()`` to a client as its ``http_client``."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def _record(self, response: httpx.Response) -> None:
        request = response.request
        exchange = Exchange(
            method=request.method,
            path=request.url.path,
            request_headers=request.headers,
            status=response.status_code,
            response_headers=response.headers,
            body=response.content,
            at=time.monotonic(),
        )
        with self._lock:
            self.exchanges.append(exchange)

    async def _record_async(self, response: httpx.Response) -> None:
        await response.aread()
        self._record(response)

    def _record_sync(self, response: httpx.Response) -> None:
        response.read()
        self._record(response)

    def async_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=30, event_hooks={"response": [self._record_async]})

    def sync_http(self) -> httpx.Client:
        return httpx.Client(timeout=30, event_hooks={"response": [self._record_sync]})

    def to(self, method: str, path: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path == path]

    def since(self, index: int) -> list[Exchange]:
        return self.exchanges[index:]
