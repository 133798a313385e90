"""``SyncItineraClient``: the Itinera API from blocking code, on one ``httpx.Client``.

The same calls, credentials, idempotency and retries as ``ItineraClient``
(both carry out the steps of ``itinera_client.exchange``); this face sends
with ``httpx.Client``, waits with ``time.sleep`` and serialises refreshes
with a ``threading.Lock``, so one instance may serve many threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from itinera_client.auth import Credentials
from itinera_client.calls import Call, json_of, request_call, response_of
from itinera_client.defaults import DEFAULT_TIMEOUT, USER_AGENT, request_url
from itinera_client.exchange import (
    Refresh,
    Send,
    Steps,
    Wait,
    call_steps,
    login_steps,
    logout_steps,
    refresh_steps,
)
from itinera_client.resources.agent_runs import SyncAgentRuns
from itinera_client.resources.api_keys import SyncApiKeys
from itinera_client.resources.chat import SyncChat
from itinera_client.resources.destinations import SyncDestinations
from itinera_client.resources.itineraries import SyncItineraries
from itinera_client.resources.knowledge import SyncKnowledge
from itinera_client.resources.leads import SyncLeads
from itinera_client.resources.threads import SyncThreads
from itinera_client.resources.users import SyncUsers
from itinera_client.retries import RetryPolicy
from itinera_client.schemas.auth import Me, TokenPair
from itinera_client.schemas.pagination import Page

T = TypeVar("T")


class SyncItineraClient:
    """The Itinera API, blocking: what ``ItineraClient`` offers, with the same arguments.

    Each face keeps its own credentials. To use both faces as one identity,
    give both the same API key; two logins are two sessions, each refreshed
    by its own face.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        tokens: TokenPair | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._credentials = Credentials(api_key=api_key, tokens=tokens)
        self._refresh_lock = threading.Lock()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.users = SyncUsers(self)
        self.api_keys = SyncApiKeys(self)
        self.destinations = SyncDestinations(self)
        self.knowledge = SyncKnowledge(self)
        self.agent_runs = SyncAgentRuns(self)
        self.itineraries = SyncItineraries(self)
        self.chat = SyncChat(self)
        self.leads = SyncLeads(self)
        self.threads = SyncThreads(self)

    def __enter__(self) -> SyncItineraClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    @property
    def tokens(self) -> TokenPair | None:
        return self._credentials.tokens

    def login(self, org: str, email: str, password: str) -> TokenPair:
        return self._drive(login_steps(self._credentials, self.retry, org, email, password))

    def refresh(self) -> TokenPair:
        if not self._credentials.can_refresh:
            raise RuntimeError("not logged in: nothing to refresh")
        self._execute(Refresh(self._credentials.bearer()))
        tokens = self._credentials.tokens
        assert tokens is not None  # a refused refresh raised
        return tokens

    def logout(self) -> None:
        self._drive(logout_steps(self._credentials, self.retry))

    def me(self) -> Me:
        return self.run(Call("GET", "/v1/me", json_of(Me)))

    @overload
    def request(
        self,
        method: str,
        path: str,
        *,
        response_type: type[T],
        json: object = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        authenticated: bool = True,
    ) -> T: ...

    @overload
    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        authenticated: bool = True,
    ) -> httpx.Response: ...

    def request(
        self,
        method: str,
        path: str,
        *,
        response_type: Any = None,
        json: object = None,
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        authenticated: bool = True,
    ) -> Any:
        """See ``ItineraClient.request``."""
        read = response_of if response_type is None else json_of(response_type)
        call = request_call(
            method,
            path,
            read,
            json=json,
            content=content,
            params=params,
            headers=headers,
            idempotency_key=idempotency_key,
            authenticated=authenticated,
        )
        return self.run(call)

    def paginate(self, fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        """Every item of a list, page after page (see ``ItineraClient.paginate``)."""
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def run(self, call: Call[T]) -> T:
        return self._drive(call_steps(call, self._credentials, self.retry))

    def _drive(self, steps: Steps[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = self._execute(step)

    def _execute(self, step: Send | Wait | Refresh) -> Any:
        match step:
            case Send():
                request = self._http.build_request(
                    step.method,
                    request_url(self.base_url, step.path),
                    params=step.params,
                    content=step.content,
                    headers=step.headers,
                )
                return self._http.send(request)
            case Wait():
                time.sleep(step.seconds)
            case Refresh():
                with self._refresh_lock:
                    if self._credentials.needs_refresh(step.stale):
                        self._drive(refresh_steps(self._credentials, self.retry))
        return None
