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
from itinera.ops import docs_page
from itinera.ops.openapi import build_document
from itinera.routing import Api, Context, Idempotency, Operation
from itinera.settings import Settings
from itinera_client.schemas.pagination import Page, PageQuery

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
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert {k: scheme[k] for k in ("type", "scheme", "bearerFormat")} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert "/v1/auth/login" in scheme["description"]
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
        "destination_id",
        "agent_run_id",
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


def policy_of(response: httpx.Response) -> dict[str, str]:
    return dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )


def links_in(page: str) -> list[str]:
    """Every URL the page names: in src and href attributes, and in its inline script."""
    pairs = re.findall(r'(?:src|href)="([^"]*)"|\.src = "([^"]*)"', page)
    return [attribute or script for attribute, script in pairs]


async def test_docs_page_loads_only_its_own_files_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    page = response.text
    assert re.search(r"https?:|//[a-z0-9.-]+\.[a-z]", page, re.IGNORECASE) is None
    urls = links_in(page)
    assert "openapi.json" in urls
    assets = [url for url in urls if url != "openapi.json"]
    assert {url.split("?")[0] for url in assets} == {
        f"docs/assets/{name}" for name in docs_page.SWAGGER_UI_FILES
    }
    policy = policy_of(response)
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    # The one inline script runs by its hash, and only what it loads runs besides.
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}' 'strict-dynamic'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert "<style" not in page
    assert " style=" not in page


async def test_docs_files_are_the_packages_own_with_their_types_and_a_year_of_caching(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text
    directory = docs_page.swagger_ui_directory()
    linked = [url for url in links_in(page) if url.startswith("docs/assets/")]
    for url in linked:
        name = url.removeprefix("docs/assets/").split("?")[0]
        response = await client.get(f"/{url}", headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200, url
        assert response.content == directory.joinpath(name).read_bytes()
        media_type = docs_page.SWAGGER_UI_FILES[name]
        assert response.headers["content-type"].split(";")[0] == media_type
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-encoding" not in response.headers
        etag = response.headers["etag"]
        again = await client.get(
            f"/{url}", headers={"Accept-Encoding": "identity", "If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""


async def test_docs_text_files_go_gzipped_to_clients_that_take_it(
    client: httpx.AsyncClient,
) -> None:
    bundle = docs_page.swagger_ui_directory().joinpath("swagger-ui-bundle.js").read_bytes()
    plain = await client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"}
    )
    zipped = await client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(bundle) / 2
    assert zipped.content == bundle  # httpx undoes the gzip
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["etag"] != plain.headers["etag"]
    refused = await client.get(
        "/docs/assets/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip;q=0, br"}
    )
    assert "content-encoding" not in refused.headers
    icon = await client.get("/docs/assets/favicon-32x32.png", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in icon.headers
    assert "vary" not in icon.headers


async def test_a_docs_file_without_its_fingerprint_is_revalidated(
    client: httpx.AsyncClient,
) -> None:
    for url in ("/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui.css?v=0123456789abcdef"):
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/index.html",
        "/docs/assets/swagger-initializer.js",
        "/docs/assets/swagger-ui-bundle.js.map",
        "/docs/assets/..%2F..%2F__init__.py",
        "/docs/assets/%2e%2e",
        "/docs/assets/../openapi.py",
        "/docs/assets/vendor/swagger-ui-bundle.js",
        "/docs/assets/",
    ],
)
async def test_the_docs_route_serves_no_file_outside_its_list(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_main_operations_carry_request_examples_that_their_bodies_accept(
    document: dict[str, Any],
) -> None:
    main = {
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/itineraries"),
        ("POST", "/v1/knowledge/search"),
        ("POST", "/v1/destinations"),
    }
    with_examples = set()
    for operation in all_operations():
        if operation.body_type is None:
            continue
        body = entry_of(document, operation)["requestBody"]["content"]["application/json"]
        if "example" in body:
            with_examples.add((operation.method, CONVERTOR.sub(r"{\1}", operation.path)))
            # As try-it-out sends it: the example decodes as the operation's body.
            msgspec.json.decode(msgspec.json.encode(body["example"]), type=operation.body_type)
    assert main <= with_examples
    login = document["paths"]["/v1/auth/login"]["post"]["requestBody"]
    assert login["content"]["application/json"]["example"]["org"] == "demo"  # `itinera seed`
    search = document["paths"]["/v1/knowledge/search"]["post"]["requestBody"]
    assert set(search["content"]["application/json"]["example"]) == {"query_text", "k"}


async def test_vectors_are_documented_at_the_configured_dimension(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    document = (await client.get("/openapi.json")).json()
    search = document["components"]["schemas"]["SearchRequest"]["properties"]["query_vector"]
    vector = next(s for s in search["anyOf"] if s.get("type") == "array")
    assert vector["minItems"] == vector["maxItems"] == settings.embedding_dim
    assert "x-embedding-vector" not in str(document)
