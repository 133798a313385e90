"""``ItineraClient``: the Itinera API from async code, on one ``httpx.AsyncClient``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio
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
from itinera_client.resources.agent_runs import AgentRuns
from itinera_client.resources.api_keys import ApiKeys
from itinera_client.resources.chat import Chat
from itinera_client.resources.destinations import Destinations
from itinera_client.resources.itineraries import Itineraries
from itinera_client.resources.knowledge import Knowledge
from itinera_client.resources.leads import Leads
from itinera_client.resources.threads import Threads
from itinera_client.resources.users import Users
from itinera_client.retries import RetryPolicy
from itinera_client.schemas.auth import Me, TokenPair
from itinera_client.schemas.pagination import Page

T = TypeVar("T")


class ItineraClient:
    """The Itinera API, async.

    Authenticate with an API key (``api_key="itk_..."``), with ``await
    client.login(org, email, password)``, or with tokens kept from an earlier
    login (``tokens=``). A login's tokens are refreshed by the client, one
    refresh at a time; ``client.tokens`` holds the current ones.

    Every method that may change something sends an ``Idempotency-Key``
    (fresh per call, the same on each retry); answers that say "not now"
    (409 in flight, 429, 503) are retried after ``Retry-After`` as ``retry``
    allows; other errors raise their ``itinera_client.errors`` class.

    ``http_client``: an ``httpx.AsyncClient`` of your own (proxies, event
    hooks, a transport); the client then leaves closing it to you.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        tokens: TokenPair | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._credentials = Credentials(api_key=api_key, tokens=tokens)
        self._refresh_lock = anyio.Lock()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.users = Users(self)
        self.api_keys = ApiKeys(self)
        self.destinations = Destinations(self)
        self.knowledge = Knowledge(self)
        self.agent_runs = AgentRuns(self)
        self.itineraries = Itineraries(self)
        self.chat = Chat(self)
        self.leads = Leads(self)
        self.threads = Threads(self)

    async def __aenter__(self) -> ItineraClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @property
    def tokens(self) -> TokenPair | None:
        """The login's current tokens (they change on every refresh); None with an API key."""
        return self._credentials.tokens

    async def login(self, org: str, email: str, password: str) -> TokenPair:
        """Log in as a user of the org with slug ``org``; later calls act as that user."""
        return await self._drive(login_steps(self._credentials, self.retry, org, email, password))

    async def refresh(self) -> TokenPair:
        """Refresh the login's tokens now (the client also does it by itself)."""
        if not self._credentials.can_refresh:
            raise RuntimeError("not logged in: nothing to refresh")
        await self._execute(Refresh(self._credentials.bearer()))
        tokens = self._credentials.tokens
        assert tokens is not None  # a refused refresh raised
        return tokens

    async def logout(self) -> None:
        """End the login: its refresh token (and every token since the login) is revoked."""
        await self._drive(logout_steps(self._credentials, self.retry))

    async def me(self) -> Me:
        """The caller (user and role) and their org."""
        return await self.run(Call("GET", "/v1/me", json_of(Me)))

    @overload
    async def request(
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
    async def request(
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

    async def request(
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
        """Any operation of the API, with the client's credentials, idempotency and retries.

        ``path`` starts at the root (``/v1/...``). ``json``: a body to encode
        (a Struct, dict, list); ``content``: raw bytes, with their
        ``Content-Type`` in ``headers``. ``idempotency_key``: your own key
        (to retry a call across restarts); by default unsafe methods get a
        fresh one. Answers the decoded ``response_type`` if given, else the
        ``httpx.Response``; an error answer raises its ``ItineraError``.
        """
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
        return await self.run(call)

    async def paginate(self, fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
        """Every item of a list, page after page.

        ``fetch(cursor)`` reads one page, e.g.
        ``client.paginate(lambda cursor: client.knowledge.list(source="a", cursor=cursor))``.
        """
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def run(self, call: Call[T]) -> T:
        """Carry out a ``Call`` (what the typed methods build)."""
        return await self._drive(call_steps(call, self._credentials, self.retry))

    async def _drive(self, steps: Steps[T]) -> T:
        reply: Any = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self._execute(step)

    async def _execute(self, step: Send | Wait | Refresh) -> Any:
        match step:
            case Send():
                request = self._http.build_request(
                    step.method,
                    request_url(self.base_url, step.path),
                    params=step.params,
                    content=step.content,
                    headers=step.headers,
                )
                return await self._http.send(request)
            case Wait():
                await anyio.sleep(step.seconds)
            case Refresh():
                async with self._refresh_lock:
                    if self._credentials.needs_refresh(step.stale):
                        # Shielded: once sent, the old refresh token is spent. A caller
                        # cancelled mid-refresh must not drop the new one, or the next
                        # refresh would present a retired token and end the login.
                        with anyio.CancelScope(shield=True):
                            await self._drive(refresh_steps(self._credentials, self.retry))
        return None
