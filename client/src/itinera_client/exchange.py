"""The steps of one call, for either face to carry out: credentials, idempotency, retries.

A call's policy is written once, here, as a generator that yields what it
needs done — send this request, wait this long, refresh the tokens — and is
sent back what came of it. The async face carries the steps out with
``httpx.AsyncClient`` and ``anyio``, the sync face with ``httpx.Client`` and
``time.sleep``; neither knows anything of the policy.

- A fresh ``Idempotency-Key`` per logical call that may change something
  (``POST``, ``PUT``, ``PATCH``, ``DELETE``), the same one on each retry, so a
  retry can never apply a change twice.
- Answers that say "not now" (409 ``idempotency-in-flight``, 429, 503) are
  retried after ``Retry-After`` as the ``RetryPolicy`` allows; every other
  error is raised as its ``itinera_client.errors`` class.
- A login's access token is refreshed before it expires, and once more if
  the service answers 401 to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from itinera_client.auth import Credentials, login_call
from itinera_client.calls import Call
from itinera_client.errors import AuthenticationError, error_from_response
from itinera_client.retries import RetryPolicy
from itinera_client.schemas.auth import TokenPair

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Send this request; the step is answered with the ``httpx.Response``."""

    method: str
    path: str
    headers: httpx.Headers
    content: bytes | None
    params: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep this many seconds; answered with None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Refresh:
    """Refresh the tokens, one refresh at a time, unless the access token is no longer
    ``stale`` by the time it is this caller's turn; answered with None."""

    stale: str | None


Step = Send | Wait | Refresh
Steps = Generator[Step, Any, T]


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def call_steps(call: Call[T], credentials: Credentials, policy: RetryPolicy) -> Steps[T]:
    """Carry out ``call``: its result, or its error raised."""
    content = call.encoded_body()
    headers = httpx.Headers({"Accept": "application/json"})
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    headers.update(call.headers or {})
    if call.is_unsafe and not call.public and "idempotency-key" not in headers:
        headers["Idempotency-Key"] = call.idempotency_key or new_idempotency_key()
    params = dict(call.params) if call.params else None
    attempt = 1
    refreshed_on_401 = False
    while True:
        sent = headers.copy()
        token = None
        if not call.public:
            if credentials.is_expiring():
                yield Refresh(credentials.bearer())
            token = credentials.bearer()
            if token is not None:
                sent["Authorization"] = f"Bearer {token}"
        response: httpx.Response = yield Send(call.method, call.path, sent, content, params)
        if response.status_code < 400:
            return call.read(response)
        if (
            response.status_code == httpx.codes.UNAUTHORIZED
            and token is not None
            and credentials.can_refresh
            and not refreshed_on_401
        ):
            # Expired early by the service's clock, or restored from storage without
            # its age: one refresh, then the same request again (its key unchanged).
            refreshed_on_401 = True
            yield Refresh(token)
            continue
        error = error_from_response(response)
        wait = policy.wait_before_retry(error, attempt)
        if wait is None:
            raise error
        attempt += 1
        yield Wait(wait)


def refresh_steps(credentials: Credentials, policy: RetryPolicy) -> Steps[TokenPair]:
    """Exchange the refresh token for new tokens. A refused refresh (the login expired,
    was logged out, or its token was reused) ends the login: log in again."""
    try:
        tokens = yield from call_steps(credentials.refresh_call(), credentials, policy)
    except AuthenticationError:
        credentials.forget()
        raise
    credentials.adopt(tokens)
    return tokens


def login_steps(
    credentials: Credentials, policy: RetryPolicy, org: str, email: str, password: str
) -> Steps[TokenPair]:
    tokens = yield from call_steps(login_call(org, email, password), credentials, policy)
    credentials.adopt(tokens)
    return tokens


def logout_steps(credentials: Credentials, policy: RetryPolicy) -> Steps[None]:
    """Revoke the login. Should a refresh come between building the call and its answer,
    the retired token it sends still names the login: the service revokes it all."""
    yield from call_steps(credentials.logout_call(), credentials, policy)
    credentials.forget()
