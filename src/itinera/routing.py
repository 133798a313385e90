"""Declaring endpoints, and turning each into its per-route ASGI chain.

An endpoint is a coroutine ``handler(ctx, body=..., query=...) -> Response``;
the types of ``body`` and ``query`` come from its annotations and are decoded
(and validated) by msgspec before it runs. The decorator's arguments are the
route's attributes: whether it is public, its rate-limit bucket, whether it
takes an Idempotency-Key. The same declarations feed the OpenAPI document.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

import msgspec
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.db.errors import DATABASE_ERRORS, domain_error
from itinera.db.repository import Repository
from itinera.db.unit_of_work import UnitOfWork
from itinera.errors import (
    AuthenticationError,
    FieldError,
    InvalidInputError,
    ItineraError,
    MalformedInputError,
    MethodNotAllowedError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from itinera.http import JSON, MSGPACK, UNDECODABLE, error_response
from itinera.pagination import K
from itinera.ratelimit import BucketRule
from itinera.resources import Resources
from itinera.security.principal import Principal
from itinera_client.schemas.pagination import Page

HandlerFn = Callable[..., Awaitable[Response]]
F = TypeVar("F", bound=HandlerFn)
R = TypeVar("R", bound=Repository)
T = TypeVar("T")


class Idempotency(enum.Enum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


class Context:
    """What a handler may ask of its request."""

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def principal(self) -> Principal:
        principal = request_scope.principal(self.scope)
        if principal is None:  # pragma: no cover - public routes do not ask
            raise AuthenticationError("authentication required")
        return principal

    @property
    def uow(self) -> UnitOfWork:
        return request_scope.unit_of_work(self.scope)

    def repository(self, kind: type[R]) -> R:
        """A repository on this request's transaction (and, for tenant data, its org)."""
        return kind(request_scope.unit_of_work(self.scope))

    @property
    def resources(self) -> Resources:
        return request_scope.resources(self.scope)

    @property
    def path_params(self) -> dict[str, Any]:
        return self.scope.get("path_params", {})  # type: ignore[no-any-return]

    def path_id(self, name: str = "id") -> uuid.UUID:
        value = self.path_params[name]
        assert isinstance(value, uuid.UUID)
        return value

    @property
    def headers(self) -> Headers:
        return Headers(scope=self.scope)

    def header_list(self, name: bytes) -> str | None:
        """A list-valued header (``If-Match``), every line of it (``name`` in lower case)."""
        return request_scope.header_list(self.scope, name)

    @property
    def accepts_msgpack(self) -> bool:
        """Whether ``Accept`` asks for MessagePack at least as much as for JSON."""
        return _prefers_msgpack(request_scope.header_list(self.scope, b"accept"))

    def after(self, cursor: str | None, key_type: type[K]) -> K | None:
        """The sort key a page continues after, from a cursor issued by this route to this org."""
        if cursor is None:
            return None
        return self.resources.cursors.decode(
            cursor, key_type, route=self._route, org_id=self.principal.org_id
        )

    def page(self, items: list[T], next_key: uuid.UUID | int | None) -> Page[T]:
        cursor = None
        if next_key is not None:
            cursor = self.resources.cursors.encode(
                next_key, route=self._route, org_id=self.principal.org_id
            )
        return Page(items=items, next_cursor=cursor)

    @property
    def _route(self) -> str:
        return request_scope.route_template(self.scope) or ""


@dataclass(eq=False)
class Operation:
    method: str
    path: str
    handler: HandlerFn
    summary: str
    tag: str
    response: Any = None
    status: int = 200
    public: bool = False
    # A policy name (per user), a rule picking policy and key, or None (not limited).
    bucket: str | BucketRule | None = "crud"
    idempotency: Idempotency = Idempotency.NONE
    uses_database: bool = True
    # Only enabled admins of the org, as the database has them when the request starts.
    admin_only: bool = False
    # Statuses it answers besides `status` and the generic ones (2xx: same body shape).
    statuses: tuple[int, ...] = ()
    # The body may also come as application/msgpack (bytes stay bytes), and the
    # handler may answer in it (``Context.accepts_msgpack``).
    msgpack: bool = False
    body_type: Any = field(init=False, default=None)
    query_type: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        hints = get_type_hints(self.handler)
        self.body_type = hints.get("body")
        self.query_type = hints.get("query")
        self._integer_parameters = _integer_fields(self.query_type)
        self._body_decoder = (
            msgspec.json.Decoder(self.body_type) if self.body_type is not None else None
        )
        self._msgpack_decoder = (
            msgspec.msgpack.Decoder(self.body_type)
            if self.msgpack and self.body_type is not None
            else None
        )

    @property
    def accepted(self) -> str:
        """The media types its body may come in."""
        return f"{JSON}, {MSGPACK}" if self.msgpack else JSON

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def decode_body(self, scope: Scope) -> Any:
        assert self._body_decoder is not None
        raw = request_scope.body(scope)
        try:
            body = self._body_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            # The typed decoder stops at the first problem: a schema error early
            # in the text must not hide a syntax error later (that one is a 400).
            _check_json_syntax(raw)
            raise InvalidInputError(
                "the body does not match the schema", [_field_error(str(exc), "pointer")]
            ) from exc
        except UNDECODABLE as exc:
            raise MalformedInputError(f"the body is not valid JSON: {exc}") from exc
        # JSON can carry NUL only as the escape \u0000, which PostgreSQL cannot
        # store in text or jsonb: look for it (rarely) and point at where it is.
        if b"\\u0000" in raw and (pointer := _nul_pointer(body)) is not None:
            raise InvalidInputError.at(pointer, "text must not contain NUL characters")
        return body

    def decode_msgpack_body(self, scope: Scope) -> Any:
        """A MessagePack body. What JSON could not carry is refused where the service would
        store it as JSON (free-form objects) or as text (NUL)."""
        assert self._msgpack_decoder is not None
        raw = request_scope.body(scope)
        try:
            body = self._msgpack_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            # As for JSON: a malformed body is a 400 even past a schema error.
            _check_msgpack_syntax(raw)
            raise InvalidInputError(
                "the body does not match the schema", [_field_error(str(exc), "pointer")]
            ) from exc
        except UNDECODABLE as exc:
            raise MalformedInputError(f"the body is not valid MessagePack: {exc}") from exc
        if (problem := unstorable(body)) is not None:
            raise InvalidInputError.at(*problem)
        return body

    def decode_query(self, scope: Scope) -> Any:
        """Query parameters, strictly: text stays text (``?user_id=null`` is not "no filter").

        Only integer parameters are read from their digits; a parameter given
        twice is refused rather than silently picked.
        """
        params: dict[str, Any] = {}
        for name, value in _query_pairs(scope):
            if name in params:
                raise InvalidInputError.at_parameter(name, "give this parameter once")
            params[name] = _integer(value) if name in self._integer_parameters else value
        try:
            return msgspec.convert(params, self.query_type)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(
                "the query parameters are not valid", [_field_error(str(exc), "parameter")]
            ) from exc


# Decoding into Raw skips over each value, checking its syntax and nesting
# depth without building it (about 1 ms per MiB, against 13 ms for an untyped
# decode, which would also stop at a number out of range). It does not look
# inside strings for bad UTF-8: that is checked apart, when there is non-ASCII.
_JSON_SYNTAX = msgspec.json.Decoder(msgspec.Raw)


def _check_json_syntax(raw: bytes) -> None:
    """Raise ``MalformedInputError`` unless ``raw`` is JSON, whatever its shape or values."""
    try:
        _JSON_SYNTAX.decode(raw)
        if not raw.isascii():
            raw.decode()
    except UNDECODABLE as exc:
        raise MalformedInputError(f"the body is not valid JSON: {exc}") from exc


class Api:
    """The operations of one area of the API, declared with decorators."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        def register(handler: F) -> F:
            self.operations.append(
                Operation(method, path, handler, summary=summary, tag=self.tag, **attributes)
            )
            return handler

        return register

    def get(self, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        return self.route("GET", path, summary=summary, **attributes)

    def post(self, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        attributes.setdefault("idempotency", Idempotency.OPTIONAL)
        return self.route("POST", path, summary=summary, **attributes)

    def put(self, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        attributes.setdefault("idempotency", Idempotency.OPTIONAL)
        return self.route("PUT", path, summary=summary, **attributes)

    def patch(self, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        attributes.setdefault("idempotency", Idempotency.OPTIONAL)
        return self.route("PATCH", path, summary=summary, **attributes)

    def delete(self, path: str, *, summary: str, **attributes: Any) -> Callable[[F], F]:
        attributes.setdefault("idempotency", Idempotency.OPTIONAL)
        attributes.setdefault("status", 204)
        return self.route("DELETE", path, summary=summary, **attributes)


class EndpointApp:
    """Innermost ASGI app of a route: decode, call the handler, map domain errors."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self.operation
        try:
            if operation.admin_only:
                # The caller's rights are checked as the transaction opens:
                # open it before any work is done for a caller who is not an admin.
                await request_scope.unit_of_work(scope).driver()
            kwargs: dict[str, Any] = {}
            if operation.query_type is not None:
                kwargs["query"] = operation.decode_query(scope)
            if operation.body_type is not None:
                if _is_json(scope):
                    kwargs["body"] = operation.decode_body(scope)
                elif operation.msgpack and _media_type(scope) == MSGPACK:
                    kwargs["body"] = operation.decode_msgpack_body(scope)
                else:
                    raise UnsupportedMediaTypeError(operation.accepted, method=operation.method)
            response = await operation.handler(Context(scope), **kwargs)
        except ItineraError as exc:
            response = error_response(exc)
        except DATABASE_ERRORS as exc:
            # A statement the handler did not guard still failed on the input.
            error = domain_error(exc)
            if error is None:
                raise
            response = error_response(error)
        await response(scope, receive, send)


class MethodDispatch:
    """One path, several methods, each with its own chain; 405 + ``Allow`` for the rest."""

    def __init__(self, path: str, apps: dict[str, ASGIApp]) -> None:
        # The template as logs, metrics and cursors name it: /v1/itineraries/{id}
        self.path = _CONVERTOR.sub("}", path)
        self.apps = dict(apps)
        if "GET" in self.apps:
            self.apps.setdefault("HEAD", self.apps["GET"])
        self.allowed = tuple(sorted(self.apps))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[request_scope.ROUTE] = self.path
        app = self.apps.get(scope["method"])
        if app is None:
            not_allowed = MethodNotAllowedError(scope["method"], self.allowed)
            await error_response(not_allowed)(scope, receive, send)
            return
        await app(scope, receive, send)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The router's answer when no route matches the path."""
    if scope["type"] == "http":
        await error_response(NotFoundError("no such route"))(scope, receive, send)


ChainBuilder = Callable[[Operation], ASGIApp]


def build_routes(operations: Sequence[Operation], chain: ChainBuilder) -> list[Route]:
    """One Starlette route per path, each method with its own middleware chain."""
    by_path: dict[str, dict[str, ASGIApp]] = {}
    for operation in operations:
        methods = by_path.setdefault(operation.path, {})
        if operation.method in methods:
            raise ValueError(f"{operation.method} {operation.path} is declared twice")
        methods[operation.method] = chain(operation)
    # No methods on the Route: MethodDispatch answers 405 itself, as a problem.
    return [Route(path, MethodDispatch(path, apps)) for path, apps in by_path.items()]


class IndexedRouter:
    """Starlette's router, trying only the routes a path's first two segments allow.

    Starlette tries every route's pattern in turn; a request for the 25th
    path ran 25 regular expressions. Here a path looks up its first two
    segments (``/v1/itineraries``) and tries those routes, plus any route with
    a parameter among its own first two segments, in their declared order;
    paths of no group (and lifespan events) go through the whole router.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        routes = [route for route in router.routes if isinstance(route, Route)]
        open_ended = [route for route in routes if "{" in _first_segments(route.path)]
        keys = {_first_segments(route.path) for route in routes} - {""}
        self.groups = {
            key: Router(
                routes=[
                    route
                    for route in routes
                    if _first_segments(route.path) == key or route in open_ended
                ],
                redirect_slashes=router.redirect_slashes,
                default=router.default,
            )
            for key in keys
            if "{" not in key
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            group = self.groups.get(_first_segments(scope["path"]))
            if group is not None:
                await group(scope, receive, send)
                return
        await self.router(scope, receive, send)


def _first_segments(path: str) -> str:
    """``/v1/itineraries/{id}`` → ``/v1/itineraries``; ``/health`` → ``/health``."""
    second = path.find("/", 1)
    if second < 0:
        return path
    third = path.find("/", second + 1)
    return path if third < 0 else path[:third]


def _is_json(scope: Scope) -> bool:
    lines = request_scope.header_lines(scope, b"content-type")
    if not lines:
        return True  # a missing content type is read as JSON
    if len(lines) > 1:
        return False  # which one would the body follow?
    media_type = lines[0].split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _media_type(scope: Scope) -> str | None:
    """The body's one media type, in lower case (None: absent, or given twice)."""
    lines = request_scope.header_lines(scope, b"content-type")
    return lines[0].split(";", 1)[0].strip().lower() if len(lines) == 1 else None


def _prefers_msgpack(accept: str | None) -> bool:
    if not accept or MSGPACK not in accept.lower():
        return False
    weights: dict[str, float] = {}
    for element in accept.lower().split(","):
        media_type, *parameters = element.split(";")
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media_type.strip()] = weight
    json = weights.get(JSON, weights.get("application/*", weights.get("*/*", 0.0)))
    return weights.get(MSGPACK, 0.0) > 0 and weights.get(MSGPACK, 0.0) >= json


def _check_msgpack_syntax(raw: bytes) -> None:
    """Raise ``MalformedInputError`` unless ``raw`` is one MessagePack value."""
    try:
        msgspec.msgpack.decode(raw)
    except UNDECODABLE as exc:
        raise MalformedInputError(f"the body is not valid MessagePack: {exc}") from exc


_NUL_TEXT = "text must not contain NUL characters"
# What a typed field may hold that needs no look inside (type(), not isinstance:
# a Struct's isinstance check costs several times as much, and this runs per field).
_OPAQUE = frozenset({bytes, int, float, bool, type(None)})


def unstorable(body: Any) -> tuple[str, str] | None:
    """The JSON pointer of the first value a MessagePack body holds that the service
    cannot store, and why: text with NUL, or, inside a free-form object (stored as
    jsonb), anything JSON has no form for (bytes, extension types, non-finite numbers,
    keys that are not text). A loop, as for ``_nul_pointer``; scalars are checked in
    place, so only containers are queued."""
    pending: list[tuple[str, object]] = [("", body)]
    while pending:
        pointer, value = pending.pop()
        if type(value) is dict:
            if (problem := _not_json(pointer, value)) is not None:
                return problem
            continue
        names = getattr(value, "__struct_fields__", None)
        if names is not None:
            items: Any = zip(names, msgspec.structs.astuple(value), strict=True)  # type: ignore[arg-type]
        elif type(value) in (list, tuple):
            items = enumerate(value)  # type: ignore[arg-type]
        else:
            continue  # a typed scalar of another kind (a date, a UUID)
        for key, item in items:
            kind = type(item)
            if kind is str:
                if "\x00" in item:
                    return f"{pointer}/{key}", _NUL_TEXT
            elif kind not in _OPAQUE:
                pending.append((f"{pointer}/{key}", item))
    return None


def _not_json(pointer: str, document: dict[Any, Any]) -> tuple[str, str] | None:
    """The first value of a free-form object that JSON cannot carry, and why."""
    pending: list[tuple[str, object]] = [(pointer, document)]
    while pending:
        pointer, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return pointer, _NUL_TEXT
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or "\x00" in key:
                    return pointer, "object keys must be text without NUL characters"
                escaped = key.replace("~", "~0").replace("/", "~1")
                pending.append((f"{pointer}/{escaped}", item))
        elif isinstance(value, list):
            pending.extend((f"{pointer}/{index}", item) for index, item in enumerate(value))
        elif not (
            value is None
            or isinstance(value, bool | int)
            or (isinstance(value, float) and math.isfinite(value))
        ):
            return pointer, "a free-form object holds JSON values only"
    return None


def _integer_fields(struct: Any) -> frozenset[str]:
    """The fields of a query Struct that hold integers (possibly optional)."""
    if struct is None:
        return frozenset()
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)

    def holds_int(t: msgspec.inspect.Type) -> bool:
        if isinstance(t, msgspec.inspect.Metadata):
            return holds_int(t.type)
        if isinstance(t, msgspec.inspect.UnionType):
            return any(holds_int(member) for member in t.types)
        return isinstance(t, msgspec.inspect.IntType)

    return frozenset(field.encode_name for field in info.fields if holds_int(field.type))


def _integer(value: str) -> int | str:
    """The integer a parameter spells, or the text itself (validation will say why)."""
    digits = value.removeprefix("-")
    return int(value) if digits.isascii() and digits.isdigit() and len(digits) < 19 else value


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    query_string = scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(query_string, keep_blank_values=True)


def _nul_pointer(body: Any) -> str | None:
    """The JSON pointer of the first string (or key) holding a NUL character, if any.

    A loop rather than a recursion: the deepest document the decoder accepted
    cannot overflow it.
    """
    pending: list[tuple[str, object]] = [
        (f"/{name}", getattr(body, name)) for name in getattr(body, "__struct_fields__", ())
    ]
    while pending:
        pointer, value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return pointer
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return pointer
                pending.append((f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}", item))
        elif isinstance(value, list | tuple):
            pending.extend((f"{pointer}/{index}", item) for index, item in enumerate(value))
        elif isinstance(value, msgspec.Struct):
            pending.extend(
                (f"{pointer}/{name}", getattr(value, name)) for name in value.__struct_fields__
            )
    return None


_CONVERTOR = re.compile(r":[a-z]+}")
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")


def _field_error(message: str, kind: str) -> FieldError:
    """Turn msgspec's ``... - at `$.a[0].b``` into a JSON pointer (or a parameter name)."""
    match = _AT_PATH.search(message)
    detail = message[: match.start()] if match else message
    path = match.group("path") if match else ""
    parts = [p for p in re.split(r"\.|\[|\]", path) if p]
    named = _NAMED_FIELD.search(detail)
    if named:
        parts.append(named.group("name"))
    if kind == "parameter":
        return FieldError(detail=detail, parameter=parts[0] if parts else None)
    pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
    return FieldError(detail=detail, pointer=pointer)
