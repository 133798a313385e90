"""One API call, apart from how it is sent: method, path, body, and how its answer is read.

The typed methods of both faces (async and sync) are built from these, so a
route's path, body and answer type are written down once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import httpx
import msgspec

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# Methods that may change something: they carry an Idempotency-Key.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Reader = Callable[[httpx.Response], T]
encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """``read`` turns a successful answer (status below 400) into the call's result.

    ``body`` is encoded as JSON (any msgspec-encodable value); ``content`` is
    sent as it is, with its own ``Content-Type`` in ``headers``. ``public``
    calls (login, refresh) go without credentials.
    """

    method: str
    path: str
    read: Reader[T]
    body: object = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    public: bool = False
    idempotency_key: str | None = None

    @property
    def is_unsafe(self) -> bool:
        return self.method in UNSAFE_METHODS

    def encoded_body(self) -> bytes | None:
        if self.content is not None:
            return self.content
        return None if self.body is None else encoder.encode(self.body)


class AsyncRunner(Protocol):
    async def run(self, call: Call[T]) -> T: ...


class SyncRunner(Protocol):
    def run(self, call: Call[T]) -> T: ...


# Built once per type: a decoder compiles its type on construction.
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def json_of(type_: type[T]) -> Reader[T]:
    """Read the answer's JSON as ``type_`` (a Struct, ``Page[...]``, ...)."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders.setdefault(type_, msgspec.json.Decoder(type_))

    def read(response: httpx.Response) -> T:
        return decoder.decode(response.content)  # type: ignore[no-any-return]

    return read


def with_created(read: Reader[T]) -> Reader[tuple[T, bool]]:
    """The answer, and whether it was created (201) rather than found or replaced (200)."""

    def read_created(response: httpx.Response) -> tuple[T, bool]:
        return read(response), response.status_code == httpx.codes.CREATED

    return read_created


def nothing(response: httpx.Response) -> None:
    """For 204 answers."""


def unless_not_modified(read: Reader[T]) -> Reader[T | None]:
    """None for 304 Not Modified, else the answer."""

    def read_modified(response: httpx.Response) -> T | None:
        if response.status_code == httpx.codes.NOT_MODIFIED:
            return None
        return read(response)

    return read_modified


def query(struct: msgspec.Struct) -> dict[str, str]:
    """Query parameters from a query Struct; None means "no filter" and is left out."""
    return {
        name: value if isinstance(value, str) else msgspec.json.encode(value).decode()
        for name, value in msgspec.to_builtins(struct).items()
        if value is not None
    }


def etag(version: int) -> str:
    """The strong entity tag of a resource ``version`` (itineraries answer it as ``ETag``)."""
    return f'"{version}"'


def request_call(
    method: str,
    path: str,
    read: Reader[T],
    *,
    json: object = None,
    content: bytes | None = None,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    authenticated: bool = True,
) -> Call[T]:
    """The call behind the faces' low-level ``request()``."""
    if json is not None and content is not None:
        raise ValueError("send json or content, not both")
    return Call(
        method.upper(),
        path,
        read,
        body=json,
        content=content,
        params=None if params is None else {k: str(v) for k, v in params.items()},
        headers=headers,
        public=not authenticated,
        idempotency_key=idempotency_key,
    )


def response_of(response: httpx.Response) -> httpx.Response:
    return response
