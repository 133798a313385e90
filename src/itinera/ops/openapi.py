"""The OpenAPI 3.1 document, generated from the route declarations, and its docs page.

Each :class:`~itinera.routing.Operation` already says what a client needs: its
body and query Structs, its response type and success status, whether it is
public, its rate-limit bucket, whether it takes an ``Idempotency-Key``, and the
extra statuses it may answer. The generic answers follow from those
attributes the way the middleware produces them: 401 behind auth, 429 behind
a bucket, 413/415 with a body, 400/422 with any input. Conditional headers
are read from the statuses an operation lists: 428 makes ``If-Match``
required, 412 alone makes it optional, 304 offers ``If-None-Match``.

``response`` is a msgspec type (answered as JSON), a media type string for a
body that is not JSON (``"text/html"``), or None (no schema described).

The declarations are module-level and never change while the process runs,
so the document is built and encoded once, on first request.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import re
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.responses import Response

from itinera.http import JSON, PROBLEM_JSON
from itinera.operations import api_operations
from itinera.ops import docs_page
from itinera.routing import Api, Context, Idempotency, Operation
from itinera_client.schemas.problems import Problem

api = Api(tag="operations")

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"
HEADERS = "#/components/headers/"
NOT_MODIFIED = 304

Schema = dict[str, Any]

_PATH_PARAMETER = re.compile(r"{(?P<name>\w+)(?::(?P<convertor>\w+))?}")
_CONVERTOR_SCHEMAS: dict[str, Schema] = {
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
# Outside OpenAPI's rule for component keys. msgspec already turns "Page[User]" into
# "Page_User_"; applying the rule here keeps the document valid whatever it does.
_INVALID_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")

# status -> (component name, description, response headers)
ERROR_RESPONSES: dict[int, tuple[str, str, tuple[str, ...]]] = {
    400: ("BadRequest", "The body is not JSON, or a cursor or header is malformed.", ()),
    401: (
        "Unauthorized",
        "Not authenticated: a missing, invalid or expired bearer token (or, for login "
        "and refresh, wrong credentials or a spent refresh token).",
        ("WWW-Authenticate",),
    ),
    403: ("Forbidden", "The caller's role does not allow this.", ()),
    404: ("NotFound", "No such resource in the caller's org.", ()),
    409: (
        "Conflict",
        "A unique rule or the resource's state forbids this, or a request with the same "
        "Idempotency-Key is still in flight (retry after Retry-After).",
        ("Retry-After",),
    ),
    408: (
        "RequestTimeout",
        "The body stopped arriving for longer than the configured pause; the connection is closed.",
        (),
    ),
    412: ("PreconditionFailed", "If-Match names a stale or weak ETag; nothing changed.", ()),
    413: ("ContentTooLarge", "The body is larger than the configured limit.", ()),
    415: ("UnsupportedMediaType", "Send the body as application/json.", ("Accept",)),
    431: (
        "RequestHeaderFieldsTooLarge",
        "The request headers together are larger than the configured limit.",
        (),
    ),
    422: (
        "UnprocessableContent",
        "The body or a parameter breaks the schema or a rule, or the Idempotency-Key "
        "was used for a different request.",
        (),
    ),
    428: ("PreconditionRequired", "Send If-Match with the ETag you last read.", ()),
    429: (
        "TooManyRequests",
        "The rate-limit bucket is empty.",
        ("Retry-After", "RateLimit", "RateLimit-Policy"),
    ),
    503: ("ServiceUnavailable", "A dependency is unavailable; retry.", ("Retry-After",)),
}

RESPONSE_HEADERS: dict[str, Schema] = {
    "X-Request-ID": {
        "description": "The request's id: the caller's when sane, else generated.",
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "Where the created resource lives.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "ETag": {
        "description": 'Strong entity tag of the version, e.g. `"3"`.',
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "Present on a stored response replayed for a repeated Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "RateLimit": {
        "description": 'Tokens left and seconds until the next, e.g. `"crud";r=59;t=1`.',
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": 'The bucket\'s quota and window, e.g. `"crud";q=60;w=60`.',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The Bearer challenge.",
        "schema": {"type": "string"},
    },
    "Accept": {
        "description": "The media type the body must have.",
        "schema": {"type": "string"},
    },
}

BEARER_AUTH: Schema = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The `access_token` of `POST /v1/auth/login` (or `/v1/auth/refresh`).",
}

DESCRIPTION = """\
Data and API backbone of an agentic travel planner.

Authenticate with `Authorization: Bearer <access token>` from `POST /v1/auth/login`.
Errors are RFC 9457 `application/problem+json`. Lists are cursor-paginated
(`limit`, `cursor` → `next_cursor`). Writes accept an `Idempotency-Key`.
Every response carries `X-Request-ID`."""


@api.get(
    "/openapi.json",
    summary="This API as an OpenAPI 3.1 document",
    response=dict[str, Any],
    public=True,
    bucket=None,
    uses_database=False,
)
async def openapi_document(ctx: Context) -> Response:
    return Response(_encoded_document(ctx.resources.settings.embedding_dim), media_type=JSON)


@api.get(
    "/docs",
    summary="Interactive API documentation (Swagger UI), served without any third-party resource",
    response="text/html",
    public=True,
    bucket=None,
    uses_database=False,
)
async def api_docs(ctx: Context) -> Response:
    """Authorize with an access token, then try any operation from the page."""
    return (await docs_page.load()).page_response()


class AssetQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    v: Annotated[str, Meta(max_length=64, description="the file's fingerprint")] | None = None


@api.get(
    "/docs/assets/{name}",
    summary="A file the docs page loads: Swagger UI's script, style sheet and icons",
    response=None,
    public=True,
    bucket=None,
    uses_database=False,
    statuses=(NOT_MODIFIED,),
)
async def docs_asset(ctx: Context, query: AssetQuery) -> Response:
    """With the fingerprint the page links it by, the file may be cached for a year."""
    site = await docs_page.load()
    return site.asset_response(
        ctx.path_params["name"],
        query.v,
        ctx.header_list(b"accept-encoding"),
        ctx.header_list(b"if-none-match"),
    )


@functools.cache
def _encoded_document(embedding_dim: int) -> bytes:
    operations = [*api_operations(), *api.operations]
    return msgspec.json.encode(build_document(operations, embedding_dim))


def build_document(
    operations: Sequence[Operation], embedding_dim: int | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``operations``.

    With ``embedding_dim``, embedding vectors are documented at exactly that length.
    """
    types = _wire_types(operations)
    top_level, components = _schema_components(types)
    _fix_vector_lengths(components, embedding_dim)
    schema_of = dict(zip(types, top_level, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for operation in operations:
        path, path_parameters = _openapi_path(operation.path)
        operation_id = _unique(operation.operation_id, operation.tag, operation_ids)
        entry = _operation(operation, operation_id, path_parameters, schema_of, components)
        paths.setdefault(path, {})[operation.method.lower()] = entry

    statuses = {
        int(status)
        for methods in paths.values()
        for entry in methods.values()
        for status in entry["responses"]
    }
    responses = {_error_name(s): _error_response(s) for s in sorted(statuses) if s >= 400}
    if NOT_MODIFIED in statuses:
        responses["NotModified"] = {
            "description": "The resource still has the ETag named in If-None-Match.",
            "headers": _header_refs("ETag", "X-Request-ID"),
        }
    reachable = _reachable(components, paths, responses)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Itinera",
            "version": _version(),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in operations)],
        "paths": paths,
        "components": {
            "schemas": {name: components[name] for name in sorted(reachable)},
            "responses": responses,
            "headers": RESPONSE_HEADERS,
            "securitySchemes": {"bearerAuth": BEARER_AUTH},
        },
        "security": [{"bearerAuth": []}],
    }


def _fix_vector_lengths(node: Any, embedding_dim: int | None) -> None:
    """Schemas marked ``x-embedding-vector`` hold exactly the configured number of items."""
    if isinstance(node, dict):
        if node.pop("x-embedding-vector", False) and embedding_dim is not None:
            node["minItems"] = node["maxItems"] = embedding_dim
        for value in node.values():
            _fix_vector_lengths(value, embedding_dim)
    elif isinstance(node, list):
        for value in node:
            _fix_vector_lengths(value, embedding_dim)


def _wire_types(operations: Sequence[Operation]) -> list[Any]:
    found: dict[Any, None] = {Problem: None}
    for operation in operations:
        for declared in (operation.response, operation.body_type, operation.query_type):
            if declared is not None and not isinstance(declared, str):
                found[declared] = None
    return list(found)


def _schema_components(types: list[Any]) -> tuple[list[Schema], dict[str, Schema]]:
    """msgspec's schemas for ``types``, with component names that OpenAPI accepts."""
    top_level, components = msgspec.json.schema_components(
        types, schema_hook=_schema_hook, ref_template=SCHEMAS + "{name}"
    )
    renames: dict[str, str] = {}
    for name in components:
        key = _INVALID_KEY_CHARACTERS.sub("_", name)
        while key != name and (key in components or key in renames.values()):
            key += "_"
        renames[name] = key
    refs = {SCHEMAS + old: SCHEMAS + new for old, new in renames.items()}
    return (
        [_rewrite_refs(schema, refs) for schema in top_level],
        {renames[name]: _rewrite_refs(schema, refs) for name, schema in components.items()},
    )


def _schema_hook(cls: type) -> Schema:
    if cls is object:  # e.g. dict[str, object]: any JSON value
        return {"description": "any JSON value"}
    raise NotImplementedError


def _operation(
    operation: Operation,
    operation_id: str,
    path_parameters: list[Schema],
    schema_of: dict[Any, Schema],
    components: dict[str, Schema],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tags": [operation.tag],
        "summary": operation.summary,
        "operationId": operation_id,
    }
    if doc := inspect.getdoc(operation.handler):
        entry["description"] = doc
    parameters = list(path_parameters)
    if operation.query_type is not None:
        parameters += _query_parameters(schema_of[operation.query_type], components)
    parameters += _header_parameters(operation)
    if parameters:
        entry["parameters"] = parameters
    if operation.body_type is not None:
        body: Schema = {"schema": schema_of[operation.body_type]}
        if (example := _request_example(schema_of[operation.body_type], components)) is not None:
            body["example"] = example
        entry["requestBody"] = {"required": True, "content": {JSON: body}}
    entry["responses"] = _responses(operation, schema_of, bool(path_parameters))
    if operation.public:
        entry["security"] = []
    if isinstance(operation.bucket, str):  # a rule picks its bucket per request
        entry["x-rate-limit-bucket"] = operation.bucket
    return entry


def _openapi_path(path: str) -> tuple[str, list[Schema]]:
    """``/v1/x/{id:uuid}`` -> ``/v1/x/{id}`` and its path parameters."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": dict(_CONVERTOR_SCHEMAS.get(match["convertor"] or "str", {})),
        }
        for match in _PATH_PARAMETER.finditer(path)
    ]
    return _PATH_PARAMETER.sub(r"{\g<name>}", path), parameters


def _query_parameters(schema: Schema, components: dict[str, Schema]) -> list[Schema]:
    """One ``in: query`` parameter per field of the query Struct."""
    if ref := schema.get("$ref"):
        schema = components[ref.removeprefix(SCHEMAS)]
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema.get("properties", {}).items():
        field = _not_null(field)  # an absent parameter is the null
        parameter: Schema = {"name": name, "in": "query", "required": name in required}
        if description := field.get("description"):
            parameter["description"] = description
        parameter["schema"] = field
        parameters.append(parameter)
    return parameters


def _request_example(schema: Schema, components: dict[str, Schema]) -> dict[str, Any] | None:
    """A body made of the first example of each field that has one (``Meta(examples=...)``).

    Only when every required field has one: a partial example would be refused.
    Fields without examples stay out, so an example is a body that works as it
    stands (optional ids and vectors would not), for try-it-out to send.
    """
    if ref := schema.get("$ref"):
        schema = components[ref.removeprefix(SCHEMAS)]
    example: dict[str, Any] = {}
    for name, field in schema.get("properties", {}).items():
        for branch in (field, *field.get("anyOf", ())):
            if branch.get("examples"):
                example[name] = branch["examples"][0]
                break
    if not example or not set(schema.get("required", ())) <= example.keys():
        return None
    return example


def _not_null(schema: Schema) -> Schema:
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in schema and len(branches) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        schema = {**rest, **branches[0]}
    if "default" in schema and schema["default"] is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    return schema


def _header_parameters(operation: Operation) -> list[Schema]:
    parameters: list[Schema] = []
    if operation.idempotency is not Idempotency.NONE:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": operation.idempotency is Idempotency.REQUIRED,
                "description": "Makes a retry safe: the same key and request answer the "
                "stored response (1-255 visible ASCII characters, bare or quoted).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 257},
            }
        )
    if 412 in operation.statuses or 428 in operation.statuses:
        required = 428 in operation.statuses
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": required,
                "description": "The ETag of the version being changed"
                + ("." if required else "; honoured when sent."),
                "schema": {"type": "string"},
            }
        )
    if NOT_MODIFIED in operation.statuses:
        parameters.append(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "Answer 304 while the resource still has one of these ETags.",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _responses(
    operation: Operation, schema_of: dict[Any, Schema], has_path_parameters: bool
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(operation.status): _success(operation, schema_of)}
    for status in sorted(s for s in operation.statuses if s < 300):
        responses[str(status)] = _success(operation, schema_of, status)
    if NOT_MODIFIED in operation.statuses:
        responses[str(NOT_MODIFIED)] = {"$ref": RESPONSES + "NotModified"}
    for status in sorted(_error_statuses(operation, has_path_parameters)):
        responses[str(status)] = {"$ref": RESPONSES + _error_name(status)}
    return responses


def _success(
    operation: Operation, schema_of: dict[Any, Schema], status: int | None = None
) -> Schema:
    status = operation.status if status is None else status
    headers = ["X-Request-ID"]
    if status == 201:
        headers.append("Location")
    if {NOT_MODIFIED, 412, 428} & set(operation.statuses):
        headers.append("ETag")
    if operation.idempotency is not Idempotency.NONE:
        headers.append("Idempotent-Replayed")
    if operation.bucket is not None:
        headers += ["RateLimit", "RateLimit-Policy"]
    response: Schema = {
        "description": HTTPStatus(status).phrase,
        "headers": _header_refs(*headers),
    }
    declared = operation.response
    if status == 204 or declared is None:
        return response
    if isinstance(declared, str):
        response["content"] = {declared: {"schema": {"type": "string"}}}
    else:
        response["content"] = {JSON: {"schema": schema_of[declared]}}
    return response


def _error_statuses(operation: Operation, has_path_parameters: bool) -> set[int]:
    statuses = {s for s in operation.statuses if s >= 400}
    idempotent = operation.idempotency is not Idempotency.NONE
    if operation.body_type is not None or operation.query_type is not None or idempotent:
        statuses |= {400, 422}
    # Every request passes the size limits, with a body or not.
    statuses |= {413, 431}
    if operation.body_type is not None:
        statuses |= {408, 415}
    if idempotent:
        statuses.add(409)  # the same key still in flight
    if has_path_parameters:
        statuses.add(404)  # the router's answer to a malformed id
    if not operation.public:
        statuses.add(401)
    if operation.bucket is not None:
        statuses.add(429)
    if operation.uses_database or operation.bucket is not None or not operation.public:
        statuses.add(503)
    return statuses


def _error_name(status: int) -> str:
    if status in ERROR_RESPONSES:
        return ERROR_RESPONSES[status][0]
    phrase = "".join(word.capitalize() for word in HTTPStatus(status).phrase.split())
    return _INVALID_KEY_CHARACTERS.sub("", phrase) or f"Status{status}"


def _error_response(status: int) -> Schema:
    _, description, headers = ERROR_RESPONSES.get(status, ("", HTTPStatus(status).phrase, ()))
    return {
        "description": description,
        "headers": _header_refs(*headers, "X-Request-ID"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}},
    }


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": HEADERS + name} for name in names}


def _reachable(components: dict[str, Schema], *roots: Any) -> set[str]:
    """The component schemas the document refers to, directly or through each other."""
    seen: set[str] = set()
    pending = [ref for root in roots for ref in _refs(root)]
    while pending:
        ref = pending.pop()
        name = ref.removeprefix(SCHEMAS)
        if ref.startswith(SCHEMAS) and name not in seen:
            seen.add(name)
            pending.extend(_refs(components[name]))
    return seen


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _rewrite_refs(node: Any, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: refs.get(value, value) if key == "$ref" else _rewrite_refs(value, refs)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, refs) for item in node]
    return node


def _unique(operation_id: str, tag: str, taken: set[str]) -> str:
    """Handler names, qualified by tag (then numbered) where two modules share one."""
    candidate = operation_id
    if candidate in taken:
        candidate = f"{tag}.{operation_id}"
    number = 2
    while candidate in taken:
        candidate = f"{tag}.{operation_id}.{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _version() -> str:
    try:
        return importlib.metadata.version("itinera")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "0.0.0+unknown"
