"""Every error in ``itinera.errors`` has its row in the one table, and its facts become fields.

The classes are found by walking the hierarchy, not listed: a new error
without a row (or without an example below) fails here, not in production.
"""

from __future__ import annotations

import msgspec
import pytest

from itinera import errors
from itinera.http import ERROR_TABLE, error_response
from itinera.ratelimit import Policy

CRUD = Policy("crud", 3)
AUTH = Policy("auth", 5)


def _error_classes() -> list[type[errors.ItineraError]]:
    found: list[type[errors.ItineraError]] = []
    pending = [errors.ItineraError]
    while pending:
        cls = pending.pop()
        for subclass in cls.__subclasses__():
            pending.append(subclass)
            if subclass.__module__ == errors.__name__:
                found.append(subclass)
    return found


# One of each, with the header fields its facts call for (besides content-*).
EXAMPLES: dict[type[errors.ItineraError], tuple[errors.ItineraError, dict[str, str]]] = {
    errors.NotFoundError: (errors.NotFoundError("no such route"), {}),
    errors.MethodNotAllowedError: (
        errors.MethodNotAllowedError("PATCH", ("GET", "HEAD", "POST")),
        {"allow": "GET, HEAD, POST"},
    ),
    errors.DuplicateError: (errors.DuplicateError("taken"), {}),
    errors.ConflictError: (errors.ConflictError("finished"), {}),
    errors.IdempotencyInFlightError: (errors.IdempotencyInFlightError(), {"retry-after": "1"}),
    errors.InvalidInputError: (errors.InvalidInputError.at("/title", "too long"), {}),
    errors.IdempotencyKeyReusedError: (errors.IdempotencyKeyReusedError(), {}),
    errors.MalformedInputError: (errors.MalformedInputError("not JSON"), {}),
    errors.UnsupportedMediaTypeError: (
        errors.UnsupportedMediaTypeError("application/json", method="POST"),
        {"accept": "application/json", "accept-post": "application/json"},
    ),
    errors.ContentTooLargeError: (errors.ContentTooLargeError(1024), {"connection": "close"}),
    errors.HeadersTooLargeError: (errors.HeadersTooLargeError(8192), {}),
    errors.RequestTimeoutError: (errors.RequestTimeoutError(10), {"connection": "close"}),
    errors.AuthenticationError: (
        errors.AuthenticationError("expired", reason="invalid_token"),
        {"www-authenticate": 'Bearer error="invalid_token"'},
    ),
    errors.PermissionDeniedError: (errors.PermissionDeniedError("admins only"), {}),
    errors.RateLimitedError: (
        errors.RateLimitedError(
            [CRUD], 20, quota_policy='"crud";q=3;w=60', quota_state='"crud";r=0;t=20'
        ),
        {
            "ratelimit-policy": '"crud";q=3;w=60',
            "ratelimit": '"crud";r=0;t=20',
            "retry-after": "20",
        },
    ),
    errors.StaleVersionError: (errors.StaleVersionError("stale"), {}),
    errors.VersionRequiredError: (errors.VersionRequiredError("send If-Match"), {}),
    errors.UnavailableError: (
        errors.UnavailableError("down", retry_after=3),
        {"retry-after": "3"},
    ),
}


def test_every_error_class_has_its_own_row_in_the_table() -> None:
    missing = [cls.__name__ for cls in _error_classes() if cls not in ERROR_TABLE]
    assert missing == []


def test_every_error_class_has_an_example_here() -> None:
    assert {cls.__name__ for cls in _error_classes()} == {cls.__name__ for cls in EXAMPLES}


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_an_error_answers_its_row_with_the_fields_of_its_facts(
    cls: type[errors.ItineraError],
) -> None:
    error, fields = EXAMPLES[cls]
    response = error_response(error)
    status, problem_type = ERROR_TABLE[cls]
    problem = msgspec.json.decode(response.body)
    assert (response.status_code, problem["status"], problem["type"]) == (
        status,
        status,
        problem_type,
    )
    assert problem["title"]
    assert problem["detail"] == error.detail
    assert {
        name.decode(): value.decode()
        for name, value in response.raw_headers
        if not name.startswith(b"content-")
    } == fields


def test_a_challenge_names_what_was_wrong_with_the_credentials() -> None:
    challenges = {
        reason: error_response(errors.AuthenticationError("no", reason=reason)).headers[
            "www-authenticate"
        ]
        for reason in (None, "invalid_request", "invalid_token")
    }
    assert challenges == {
        None: "Bearer",
        "invalid_request": 'Bearer error="invalid_request"',
        "invalid_token": 'Bearer error="invalid_token"',
    }


def test_a_415_names_what_the_method_takes() -> None:
    def fields(method: str | None) -> set[str]:
        error = errors.UnsupportedMediaTypeError("application/json", method=method)
        return {name for name in error_response(error).headers if name.startswith("accept")}

    assert fields("POST") == {"accept", "accept-post"}
    assert fields("PATCH") == {"accept", "accept-patch"}
    assert fields("PUT") == fields(None) == {"accept"}


def test_a_rate_limit_refusal_names_every_violated_policy() -> None:
    error = errors.RateLimitedError(
        [CRUD, AUTH], 7, quota_policy='"crud";q=3;w=60', quota_state='"crud";r=0;t=7'
    )
    problem = msgspec.json.decode(error_response(error).body)
    assert problem["violated-policies"] == ["crud", "auth"]
    assert problem["title"] == "Quota exceeded"
    assert problem["detail"] == (
        "the 'crud' limit of 3 requests per 60 s and the 'auth' limit of 5 requests"
        " per 60 s are used up; retry in 7 s"
    )


def test_titles_are_rfc_9110_names() -> None:
    too_large = msgspec.json.decode(error_response(errors.ContentTooLargeError(1)).body)
    invalid = msgspec.json.decode(error_response(errors.InvalidInputError("no")).body)
    assert (too_large["title"], invalid["title"]) == ("Content Too Large", "Unprocessable Content")
