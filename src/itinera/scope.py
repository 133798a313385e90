"""Typed access to what the middleware layers leave in the ASGI scope for the inner ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from starlette.types import Scope

from itinera.round_trips import RoundTrips

if TYPE_CHECKING:
    from itinera.db.unit_of_work import UnitOfWork
    from itinera.resources import Resources
    from itinera.security.principal import Principal

PRINCIPAL = "itinera.principal"
UNIT_OF_WORK = "itinera.unit_of_work"
BODY = "itinera.body"
ROUTE = "itinera.route"
REQUEST_ID = "itinera.request_id"
ROUND_TRIPS = "itinera.round_trips"


def resources(scope: Scope) -> Resources:
    return cast("Resources", scope["state"]["resources"])


def principal(scope: Scope) -> Principal | None:
    return cast("Principal | None", scope.get(PRINCIPAL))


def unit_of_work(scope: Scope) -> UnitOfWork:
    return cast("UnitOfWork", scope[UNIT_OF_WORK])


def round_trips(scope: Scope) -> RoundTrips:
    """This request's count of database and Redis round trips."""
    counted = scope.get(ROUND_TRIPS)
    if counted is None:
        counted = scope[ROUND_TRIPS] = RoundTrips()
    return cast("RoundTrips", counted)


def body(scope: Scope) -> bytes:
    """The request body, read once by the body-size limit middleware."""
    return cast(bytes, scope.get(BODY, b""))


def route_template(scope: Scope) -> str | None:
    return cast("str | None", scope.get(ROUTE))


def header(scope: Scope, name: bytes) -> str | None:
    """The first line of a request header (``name`` in lower case); see ``header_lines``."""
    for key, value in cast("list[tuple[bytes, bytes]]", scope["headers"]):
        if key == name:
            return value.decode("latin-1")
    return None


def header_list(scope: Scope, name: bytes) -> str | None:
    """A list-valued header's lines joined into one list, as RFC 9110 reads them."""
    lines = header_lines(scope, name)
    return ", ".join(lines) if lines else None


def header_lines(scope: Scope, name: bytes) -> list[str]:
    """Every line of a request header, in order (``name`` in lower case).

    A list-valued header may arrive as several lines that mean one list
    (RFC 9110 §5.3); a decision taken on the first line alone can be steered
    by whoever writes the others.
    """
    headers = cast("list[tuple[bytes, bytes]]", scope["headers"])
    return [value.decode("latin-1") for key, value in headers if key == name]
