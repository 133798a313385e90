"""Property-based fuzzing of every operation, generated from the app's own OpenAPI document.

schemathesis loads ``GET /openapi.json`` from the real app (``create_app`` with the
suite's ``settings``, lifespan running) and, for each operation in it, sends its
coverage cases (boundaries, missing and mistyped fields, unexpected methods and
media types) and then hypothesis-generated ones, valid and invalid. Every
response must: be no 5xx; have a documented status, content type, headers and
body schema; be problem+json naming its own status when it is an error; reject
schema-violating input; answer 405 + Allow to undeclared methods; and answer a
missing required header with 400 (Idempotency-Key) or 428 (If-Match).

Why a real uvicorn server in a thread rather than schemathesis' ASGI support:
that support drives the app from a blocking client through an event loop of its
own and keeps the app's lifespan open until the process exits, while the suite's
fixtures live on pytest-asyncio's session loop. Served on a loopback port from a
thread (tests/support/fuzz_server.py), the app has its own loop, its own engine
and Redis client, and a lifespan we start and stop; schemathesis then talks to
it over HTTP with ``requests``, as it would to any deployment.

Requests carry the bearer token of a fresh tenant's admin, so admin-only
operations run too (a test below sends every protected operation without one).
Every other case of an ``/{id}`` operation aims at a real resource of that
tenant (tests/support/fuzz_resources.py), the rest at the generated UUIDs
(404). Idempotency keys that are valid are made unique per request: hypothesis'
favourite keys ("0") would otherwise replay, or be refused as reused, and the
handlers would hardly run. Invalid and missing keys go out as generated.

Around it: document-driven checks that a missing or malformed Idempotency-Key
is 400 and a missing token 401 on every operation that says so, and a
hypothesis property for vectors (which the generic fuzzer cannot reach: the
document does not say the configured dimension).

Bounded: coverage cases plus ``FUZZED_CASES_PER_OPERATION`` generated ones per
operation, a fixed seed, no shrinking (a failure prints its reproducing curl
command), no example database: about 45 s for the module on two cores.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.settings import Settings
from tests.support.database import TEST_EMBEDDING_DIM
from tests.support.fuzz_resources import RealTargets, kind_of
from tests.support.fuzz_server import serving
from tests.support.http import assert_problem
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.slow

FUZZED_CASES_PER_OPERATION = 10
TIMEOUT = 10
PROBLEM_JSON = "application/problem+json"
UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
PATH_PARAMETER = re.compile(r"\{\w+\}")
# What the contract accepts as an Idempotency-Key: 1-255 visible ASCII, bare or quoted.
VALID_KEY = re.compile(r'"[!#-~]{1,255}"|[!#-~]{1,255}')

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 9457,
        "generation": {
            "mode": "all",
            "deterministic": True,
            "no-shrink": True,
            "database": "none",
            # The token is ours (see test_every_protected_operation_refuses_a_missing_token).
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # The contract's answers to a missing Idempotency-Key and a missing If-Match.
            "missing_required_header": {"expected-statuses": [400, 428]},
            # schemathesis' default list, plus 413: how an oversized body is refused.
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            },
        },
    }
)


def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every error is RFC 9457 problem+json with a type and a title, naming its own status."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type == PROBLEM_JSON, f"{response.status_code} answered as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == response.status_code, body
    for member in ("type", "title"):
        assert isinstance(body.get(member), str), body
        assert body[member], body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    problem_details,
]


@pytest.fixture(scope="module")
def fuzz_base_url(settings: Settings) -> Iterator[str]:
    with serving(settings) as base_url:
        yield base_url


@pytest.fixture(scope="module")
async def fuzz_tenant(owner_engine: AsyncEngine, settings: Settings) -> Tenant:
    return await make_tenant(owner_engine, settings)


@pytest.fixture(scope="module")
def fuzz_session(fuzz_tenant: Tenant) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxies from the environment, and no lookup per request
        session.headers.update(fuzz_tenant.admin.headers)
        yield session


@pytest.fixture(scope="module")
def targets(fuzz_session: requests.Session, fuzz_base_url: str, fuzz_tenant: Tenant) -> RealTargets:
    return RealTargets(fuzz_session, fuzz_base_url, fuzz_tenant.member.user_id)


@pytest.fixture(scope="module")
def api_schema(fuzz_base_url: str) -> Any:
    return schemathesis.openapi.from_url(
        f"{fuzz_base_url}/openapi.json", config=CONFIG, timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def document(api_schema: Any) -> dict[str, Any]:
    return api_schema.raw_schema  # type: ignore[no-any-return]


@pytest.fixture
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy loader reads and rewrites ``Function._nodeid`` to name each
    operation's subtest; pytest 9 keeps the id elsewhere, so lend it the attribute."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# schemathesis leaves out the operation that served the document (GET /openapi.json)
# unless a filter names it; a filter that names every path keeps the whole document.
schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/")


def aim(case: Any, targets: RealTargets) -> None:
    """Make valid Idempotency-Keys unique; point every other valid ``{id}`` at a real resource."""
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and VALID_KEY.fullmatch(key.strip()):
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    path_id = (case.path_parameters or {}).get("id")
    kind = kind_of(case.operation.path)
    if kind is None or not isinstance(path_id, str) or not UUID.fullmatch(path_id):
        return
    if not targets.takes_turn(case.operation.label):
        return
    real = targets.fresh(kind) if case.method == "DELETE" else targets.kept(kind)
    case.path_parameters["id"] = real
    # A write that may succeed needs the current version: aim the generated If-Match at it.
    if (
        kind == "itinerary"
        and case.method in ("PUT", "PATCH")
        and "If-Match" in (case.headers or {})
    ):
        etag = targets.etag(real)
        if etag is not None:
            case.headers["If-Match"] = etag


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZED_CASES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    # explicit: schemathesis' examples and coverage cases; generate: the fuzzed ones.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@pytest.mark.usefixtures("node_id_for_schemathesis")
def test_every_operation_keeps_its_contract(
    case: Any,
    fuzz_base_url: str,
    fuzz_session: requests.Session,
    fuzz_tenant: Tenant,
    targets: RealTargets,
) -> None:
    aim(case, targets)
    headers = fuzz_tenant.admin.headers
    response = case.call(
        base_url=fuzz_base_url, session=fuzz_session, headers=headers, timeout=TIMEOUT
    )
    case.validate_response(response, checks=CHECKS, headers=headers)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, entry in item.items():
            yield method.upper(), path, entry


def header_parameter(entry: dict[str, Any], name: str) -> dict[str, Any] | None:
    for parameter in entry.get("parameters", ()):
        if parameter["in"] == "header" and parameter["name"].lower() == name.lower():
            return parameter  # type: ignore[no-any-return]
    return None


def concrete(path: str) -> str:
    """The path with a random UUID for each of its parameters (``{id}``, ``{checkpoint_id}``)."""
    return PATH_PARAMETER.sub(lambda _: str(uuid.uuid4()), path)


def test_the_fuzzer_takes_every_operation_of_the_document(
    api_schema: Any, document: dict[str, Any]
) -> None:
    """What ``schema.parametrize()`` runs: the served document's operations, all of them."""
    filters = api_schema.config.operations.filter_set_with(include=schema.filter_set)
    fuzzed = api_schema.clone(filter_set=filters).get_all_operations()
    labels = {result.ok().label for result in fuzzed}
    assert labels == {f"{method} {path}" for method, path, _ in operations(document)}
    assert len(labels) > 40


def test_a_missing_required_idempotency_key_is_400(
    document: dict[str, Any], fuzz_base_url: str, fuzz_session: requests.Session
) -> None:
    requiring = [
        (method, path)
        for method, path, entry in operations(document)
        if (parameter := header_parameter(entry, "Idempotency-Key")) and parameter["required"]
    ]
    assert ("POST", "/v1/agent-runs") in requiring
    assert ("POST", "/v1/itineraries") in requiring
    for method, path in requiring:
        response = fuzz_session.request(
            method, fuzz_base_url + concrete(path), json={}, timeout=TIMEOUT
        )
        assert_problem(response, 400, "/problems/malformed")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "has space", '"unbalanced', 'in"side', "caf\u00e9"],
    ids=["empty", "too-long", "space", "unbalanced-quote", "inner-quote", "latin-1"],
)
def test_a_malformed_idempotency_key_is_400_wherever_one_is_taken(
    key: str, document: dict[str, Any], fuzz_base_url: str, fuzz_session: requests.Session
) -> None:
    taking = [
        (method, path)
        for method, path, entry in operations(document)
        if header_parameter(entry, "Idempotency-Key") is not None
    ]
    assert taking
    for method, path in taking:
        response = fuzz_session.request(
            method,
            fuzz_base_url + concrete(path),
            json={},
            # As bytes: requests would refuse to encode a str header that is not ASCII.
            headers={"Idempotency-Key": key.encode("latin-1")},
            timeout=TIMEOUT,
        )
        assert_problem(response, 400, "/problems/malformed")  # type: ignore[arg-type]


def test_every_protected_operation_refuses_a_missing_token(
    document: dict[str, Any], fuzz_base_url: str
) -> None:
    protected = [
        (method, path)
        for method, path, entry in operations(document)
        if entry.get("security", document["security"])
    ]
    assert len(protected) > 30
    with requests.Session() as anonymous:
        anonymous.trust_env = False
        for method, path in protected:
            response = anonymous.request(
                method, fuzz_base_url + concrete(path), json={}, timeout=TIMEOUT
            )
            assert_problem(response, 401)  # type: ignore[arg-type]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "401" in document["paths"][path][method.lower()]["responses"]


# Components from all over float64: subnormals, float32's limits and beyond, and exact zeros.
# The generic fuzzer cannot reach these: it does not know the configured dimension.
components = st.one_of(st.just(0.0), st.floats(allow_nan=False, allow_infinity=False))
vectors = st.lists(components, min_size=TEST_EMBEDDING_DIM, max_size=TEST_EMBEDDING_DIM)
similarities = st.none() | st.floats(min_value=-1, max_value=1)


@pytest.fixture(scope="module")
async def vector_tenant(owner_engine: AsyncEngine, settings: Settings) -> Tenant:
    """A tenant of its own: what this test stores must not leak into the fuzzer's searches."""
    return await make_tenant(owner_engine, settings)


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@hypothesis.given(chunk=vectors, query=vectors, min_similarity=similarities)
# Found by probing: 1e-46 is not zero in float64, so it passes the all-zero rule, but it is
# zero in pgvector's float32, where its cosine similarity with anything is NaN.
@hypothesis.example(
    chunk=[1e-46] + [0.0] * (TEST_EMBEDDING_DIM - 1),
    query=[1.0] + [0.0] * (TEST_EMBEDDING_DIM - 1),
    min_similarity=0.5,
)
def test_vectors_at_the_edges_of_float32_are_stored_and_searched_or_refused(
    chunk: list[float],
    query: list[float],
    min_similarity: float | None,
    settings: Settings,
    fuzz_base_url: str,
    vector_tenant: Tenant,
) -> None:
    """A vector is refused (422) or usable: every search answers finite scores above the floor."""
    assert settings.embedding_dim == TEST_EMBEDDING_DIM
    with requests.Session() as session:
        session.trust_env = False
        session.headers.update(vector_tenant.admin.headers)
        item: dict[str, Any] = {
            "source": "vectors.md",
            "title": "edge",
            "body": f"edge vector {uuid.uuid4()}",
            "chunks": [{"text": "reef wall", "vector": chunk}],
        }
        stored = session.post(f"{fuzz_base_url}/v1/knowledge", json=item, timeout=TIMEOUT)
        assert stored.status_code in (201, 422), stored.text
        if stored.status_code == 422:
            assert_problem(stored, 422, "/problems/validation")  # type: ignore[arg-type]
        search: dict[str, Any] = {"query_vector": query, "k": 100, "min_similarity": min_similarity}
        found = session.post(f"{fuzz_base_url}/v1/knowledge/search", json=search, timeout=TIMEOUT)
        assert found.status_code in (200, 422), found.text
        if found.status_code == 422:
            assert_problem(found, 422, "/problems/validation")  # type: ignore[arg-type]
            return
        case = f"stored {chunk} ({stored.status_code}), searched {search}"
        for result in found.json()["results"]:
            score = result["score"]
            assert isinstance(score, int | float), f"{case}: {result}"
            assert math.isfinite(score), f"{case}: {result}"
            assert -1.0 - 1e-6 <= score <= 1.0 + 1e-6, f"{case}: {result}"
            if min_similarity is not None:
                assert score >= min_similarity - 1e-6, f"{case}: {result}"
