"""One error class per problem type: derived from what the service answers and documents,
and met for real against a live service."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable
from datetime import date
from pathlib import Path

import httpx
import pytest

from itinera import http
from itinera.ops.problems import EXPLANATIONS
from itinera_client import ItineraClient, ItineraError
from itinera_client.errors import (
    BLANK,
    ERROR_CLASSES,
    AuthenticationError,
    ConflictError,
    DuplicateError,
    HeadersTooLargeError,
    IdempotencyKeyReusedError,
    MalformedRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ServerError,
    UnsupportedMediaTypeError,
    ValidationError,
    error_class,
    error_from_response,
)
from itinera_client.schemas.agent_runs import AgentRunCreate, AgentRunUpdate
from itinera_client.schemas.itineraries import ItineraryCreate, ItineraryUpdate
from itinera_client.schemas.users import UserCreate
from tests.support.live_service import LiveService

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# A row of the problem-type table in docs/api.md: | `type` | 422 | what it means |
_DOCUMENTED = re.compile(r"^\s*\| `(?P<type>[^`]+)` \| (?P<statuses>\d{3}(?:, \d{3})*) \|", re.M)


def answered_by_the_service() -> set[tuple[int, str]]:
    """Every (status, type) the service answers: its one error table, and the 500 for an
    exception nobody handled."""
    return set(http.ERROR_TABLE.values()) | {(500, http.BLANK)}


def documented() -> set[tuple[int, str]]:
    rows = _DOCUMENTED.findall(API_DOC.read_text())
    assert rows, "docs/api.md has its table of problem types"
    return {(int(status), type_) for type_, statuses in rows for status in statuses.split(", ")}


def test_the_documentation_lists_what_the_service_answers() -> None:
    assert documented() == answered_by_the_service()
    assert set(EXPLANATIONS) <= {type_ for _, type_ in documented()}


@pytest.mark.parametrize(("status", "problem_type"), sorted(documented()))
def test_every_documented_problem_has_its_own_error_class(status: int, problem_type: str) -> None:
    cls = error_class(status, problem_type)
    assert cls is not ItineraError
    assert (cls.problem_type, cls.default_status) == (problem_type, status)


def test_no_two_problems_share_a_class_and_no_class_stands_for_nothing() -> None:
    classes = {error_class(status, type_) for status, type_ in answered_by_the_service()}
    assert len(classes) == len(answered_by_the_service())
    assert classes == set(ERROR_CLASSES)


def test_an_unknown_problem_type_is_read_by_its_status() -> None:
    assert error_class(409, "/problems/something-new") is ConflictError
    assert error_class(502, BLANK) is ServerError
    assert error_class(418, BLANK) is ItineraError


def test_an_answer_that_is_not_a_problem_is_read_by_its_status() -> None:
    request = httpx.Request("GET", "http://proxy.example/v1/me")
    response = httpx.Response(404, text="<html>gone</html>", request=request)
    error = error_from_response(response)
    assert isinstance(error, NotFoundError)
    assert (error.status, error.type, error.title) == (404, BLANK, "Not Found")


async def test_the_service_answers_map_to_their_classes(live_tenant: LiveService) -> None:
    admin_key = live_tenant.mint_api_key()
    member_key = live_tenant.mint_api_key(live_tenant.org.member)
    async with (
        ItineraClient(live_tenant.base_url, api_key=admin_key) as client,
        ItineraClient(live_tenant.base_url, api_key=member_key) as member,
    ):
        trip = await client.itineraries.create(
            ItineraryCreate(title="Dahab", start_date=date(2027, 5, 1), end_date=date(2027, 5, 7))
        )
        raised: list[ItineraError] = []

        async def expect(cls: type[ItineraError], call: Awaitable[object]) -> None:
            with pytest.raises(cls) as caught:
                await call
            assert type(caught.value) is cls
            raised.append(caught.value)

        await expect(
            ValidationError,
            client.itineraries.update(trip.id, ItineraryUpdate(title=""), version=trip.version),
        )
        await expect(MalformedRequestError, client.knowledge.list(cursor="not-a-cursor"))
        await expect(NotFoundError, client.itineraries.get(uuid.uuid4()))
        email = f"ana-{uuid.uuid4().hex[:8]}@example.com"
        await client.users.create(UserCreate(email=email, password="a long password"))
        await expect(
            DuplicateError, client.users.create(UserCreate(email=email, password="another one"))
        )
        run = await client.agent_runs.create(AgentRunCreate(intent="plan a week in Dahab"))
        await expect(
            ConflictError, client.agent_runs.update(run.id, AgentRunUpdate(status="succeeded"))
        )
        await expect(
            PreconditionFailedError,
            client.itineraries.update(
                trip.id, ItineraryUpdate(title="x"), version=trip.version + 1
            ),
        )
        await expect(
            PreconditionRequiredError,
            client.request("PATCH", f"/v1/itineraries/{trip.id}", json={"title": "x"}),
        )
        key = f"reused-{uuid.uuid4()}"
        await client.request("POST", "/v1/leads", json=lead("a"), idempotency_key=key)
        await expect(
            IdempotencyKeyReusedError,
            client.request("POST", "/v1/leads", json=lead("b"), idempotency_key=key),
        )
        await expect(PermissionDeniedError, member.users.list())
        await expect(MethodNotAllowedError, client.request("PUT", "/v1/leads", json={}))
        await expect(
            UnsupportedMediaTypeError,
            client.request(
                "POST", "/v1/leads", content=b"email=a", headers={"Content-Type": "text/plain"}
            ),
        )
        await expect(
            HeadersTooLargeError, client.request("GET", "/v1/me", headers={"X-Big": "x" * 20_000})
        )
    async with ItineraClient(live_tenant.base_url) as anonymous:
        await expect(AuthenticationError, anonymous.me())

    validation = raised[0]
    assert validation.status == 422
    assert validation.type == "/problems/validation"
    assert [e.pointer for e in validation.errors] == ["/title"]
    assert raised[-1].headers["www-authenticate"].startswith("Bearer")


def lead(source: str) -> dict[str, str]:
    return {"email": "ana@example.com", "source": source}
