"""The OpenAPI document describes every declared route, and /docs renders it offline."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.responses import Response

from itinera.app import all_operations
from itinera.ops.openapi import build_document
from itinera.pagination import Page, PageQuery
from itinera.routing import Api, Context, Idempotency, Operation
from itinera.settings import Settings

COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9._-]+$")
CONVERTOR = re.compile(r"{(\w+):\w+}")


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations_in(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, entry in item.items():
            yield method.upper(), path, entry


def entry_of(document: dict[str, Any], operation: Operation) -> dict[str, Any]:
    path = CONVERTOR.sub(r"{\1}", operation.path)
    return document["paths"][path][operation.method.lower()]  # type: ignore[no-any-return]


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


async def test_openapi_json_is_valid_openapi_3_1_served_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Itinera"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_declared_operation_is_documented_and_nothing_else(
    document: dict[str, Any],
) -> None:
    declared = {(op.method, CONVERTOR.sub(r"{\1}", op.path)) for op in all_operations()}
    documented = {(method, path) for method, path, _ in operations_in(document)}
    assert documented == declared
    ids = [entry["operationId"] for _, _, entry in operations_in(document)]
    assert len(ids) == len(set(ids))


def test_public_operations_need_no_security_and_the_rest_a_bearer_token(
    document: dict[str, Any],
) -> None:
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    for operation in all_operations():
        entry = entry_of(document, operation)
        if operation.public:
            assert entry["security"] == [], operation.path
            assert "401" not in entry["responses"] or 401 in operation.statuses
        else:
            assert "security" not in entry, operation.path
            assert entry["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}


def test_every_reference_resolves_and_every_schema_key_is_valid(
    document: dict[str, Any],
) -> None:
    components = document["components"]
    for ref in refs_in(document):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in components[section], ref
    assert all(COMPONENT_KEY.match(name) for name in components["schemas"])
    # Schemas nobody refers to (e.g. query Structs, inlined as parameters) are left out.
    referenced = {ref.rsplit("/", 1)[1] for ref in refs_in(document)}
    assert set(components["schemas"]) <= referenced


def test_a_request_body_points_at_its_struct_schema(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/itineraries"]["post"]
    body = create["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ItineraryCreate"
    schema = document["components"]["schemas"]["ItineraryCreate"]
    assert set(schema["required"]) == {"title", "start_date", "end_date"}
    assert schema["additionalProperties"] is False
    problem = create["responses"]["422"]
    assert problem == {"$ref": "#/components/responses/UnprocessableContent"}
    content = document["components"]["responses"]["UnprocessableContent"]["content"]
    assert content == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_query_fields_become_parameters_and_path_convertors_are_dropped(
    document: dict[str, Any],
) -> None:
    listing = document["paths"]["/v1/itineraries"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert {name for name, p in parameters.items() if p["in"] == "query"} == {
        "limit",
        "cursor",
        "user_id",
        "status",
    }
    assert parameters["limit"]["schema"] == {
        "description": "page size (1-200)",
        "type": "integer",
        "minimum": 1,
        "maximum": 200,
        "default": 50,
    }
    assert parameters["user_id"]["schema"] == {"type": "string", "format": "uuid"}
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert document["components"]["schemas"][page.rsplit("/", 1)[1]]["title"] == "Page[Itinerary]"
    one = document["paths"]["/v1/itineraries/{id}"]["get"]
    assert one["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def test_conditional_and_idempotency_headers_follow_the_declarations(
    document: dict[str, Any],
) -> None:
    def headers(entry: dict[str, Any]) -> dict[str, bool]:
        return {
            p["name"]: p["required"] for p in entry.get("parameters", ()) if p["in"] == "header"
        }

    item = document["paths"]["/v1/itineraries/{id}"]
    assert headers(item["get"]) == {"If-None-Match": False}
    assert item["get"]["responses"]["304"] == {"$ref": "#/components/responses/NotModified"}
    assert headers(item["put"]) == {"Idempotency-Key": False, "If-Match": True}
    assert headers(item["patch"]) == {"Idempotency-Key": False, "If-Match": True}
    assert headers(item["delete"]) == {"Idempotency-Key": False, "If-Match": False}
    assert "content" not in item["delete"]["responses"]["204"]
    create = document["paths"]["/v1/itineraries"]["post"]
    assert headers(create) == {"Idempotency-Key": True}
    assert "Location" in create["responses"]["201"]["headers"]
    login = document["paths"]["/v1/auth/login"]["post"]
    assert headers(login) == {}
    assert login["responses"]["429"] == {"$ref": "#/components/responses/TooManyRequests"}


class Thing(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str


class ThingQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    required_flag: bool


async def put_thing(ctx: Context, body: Thing, query: ThingQuery) -> Response:
    raise NotImplementedError


def other_area() -> Api:
    """An area whose handler happens to share its name with one of another area."""
    api = Api(tag="other")

    @api.get("/v1/other", summary="Other", response=None, bucket="agent")
    async def put_thing(ctx: Context) -> Response:
        raise NotImplementedError

    return api


def test_the_generator_handles_any_declaration_generically() -> None:
    api = Api(tag="things")
    api.put(
        "/v1/things/{slug}/{n:int}",
        summary="Put a thing",
        response=Page[Thing],
        idempotency=Idempotency.REQUIRED,
        statuses=(428,),
    )(put_thing)
    document = build_document([*api.operations, *other_area().operations])
    validate(document, cls=OpenAPIV31SpecValidator)

    entry = document["paths"]["/v1/things/{slug}/{n}"]["put"]
    parameters = {p["name"]: p for p in entry["parameters"]}
    assert parameters["slug"]["schema"] == {"type": "string"}
    assert parameters["n"]["schema"] == {"type": "integer", "minimum": 0}
    assert parameters["required_flag"]["required"] is True
    assert parameters["cursor"]["schema"] == {"type": "string", "maxLength": 200}
    assert parameters["Idempotency-Key"]["required"] is True
    assert parameters["If-Match"]["required"] is True
    assert set(entry["responses"]) == {
        "200",
        "400",
        "401",
        "404",
        "408",
        "409",
        "413",
        "415",
        "422",
        "428",
        "429",
        "431",
        "503",
    }
    assert document["paths"]["/v1/other"]["get"]["operationId"] == "other.put_thing"
    assert "content" not in document["paths"]["/v1/other"]["get"]["responses"]["200"]
    assert set(document["components"]["schemas"]) == {
        "Page_Thing_",
        "Thing",
        "Problem",
        "FieldProblem",
    }


async def test_docs_page_is_html_that_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "openapi.json" in page
    assert re.search(r"https?://|//[a-z0-9.-]+\.[a-z]", page, re.IGNORECASE) is None
    assert re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", page) is None
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert "unsafe" not in response.headers["content-security-policy"]


async def test_vectors_are_documented_at_the_configured_dimension(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    document = (await client.get("/openapi.json")).json()
    search = document["components"]["schemas"]["SearchRequest"]["properties"]["query_vector"]
    vector = next(s for s in search["anyOf"] if s.get("type") == "array")
    assert vector["minItems"] == vector["maxItems"] == settings.embedding_dim
    assert "x-embedding-vector" not in str(document)
