from __future__ import annotations

import uuid
from datetime import date

from starlette.responses import Response

from itinera.domain.changes import changes_of
from itinera.domain.itineraries.repository import DATE_RULE, ItineraryRepository
from itinera.errors import InvalidInputError, NotFoundError
from itinera.etags import etag, none_match, versions_allowed, versions_required
from itinera.http import JSONResponse
from itinera.routing import Api, Context, Idempotency
from itinera_client.schemas.itineraries import (
    Itinerary,
    ItineraryCreate,
    ItineraryListQuery,
    ItineraryUpdate,
)
from itinera_client.schemas.pagination import Page

api = Api(tag="itineraries")


def _repository(ctx: Context) -> ItineraryRepository:
    return ctx.repository(ItineraryRepository)


def _answer(itinerary: Itinerary, status: int = 200) -> Response:
    headers = {"ETag": etag(itinerary.version)}
    if status == 201:
        headers["Location"] = f"/v1/itineraries/{itinerary.id}"
    return JSONResponse(itinerary, status_code=status, headers=headers)


def _check_dates(body: ItineraryCreate) -> None:
    if body.start_date > body.end_date:
        raise InvalidInputError.at("/end_date", DATE_RULE)


@api.get("/v1/itineraries", summary="List itineraries, newest first", response=Page[Itinerary])
async def list_itineraries(ctx: Context, query: ItineraryListQuery) -> Response:
    items, next_key = await _repository(ctx).list(
        limit=query.limit,
        after=ctx.after(query.cursor, uuid.UUID),
        created_by=query.user_id,
        status=query.status,
        destination_id=query.destination_id,
        agent_run_id=query.agent_run_id,
    )
    return JSONResponse(ctx.page(items, next_key))


@api.post(
    "/v1/itineraries",
    summary="Create an itinerary",
    response=Itinerary,
    status=201,
    idempotency=Idempotency.REQUIRED,
)
async def create_itinerary(ctx: Context, body: ItineraryCreate) -> Response:
    _check_dates(body)
    itinerary = await _repository(ctx).create(ctx.principal.user_id, body)
    return _answer(itinerary, 201)


@api.get(
    "/v1/itineraries/{id:uuid}",
    summary="One itinerary; If-None-Match answers 304 when unchanged",
    response=Itinerary,
    statuses=(304, 404),
)
async def get_itinerary(ctx: Context) -> Response:
    itinerary = await _repository(ctx).get(ctx.path_id())
    if itinerary is None:
        raise NotFoundError("no such itinerary")
    if none_match(ctx.header_list(b"if-none-match"), itinerary.version):
        return Response(status_code=304, headers={"ETag": etag(itinerary.version)})
    return _answer(itinerary)


@api.put(
    "/v1/itineraries/{id:uuid}",
    summary="Replace an itinerary (If-Match required)",
    response=Itinerary,
    statuses=(404, 412, 428),
)
async def replace_itinerary(ctx: Context, body: ItineraryCreate) -> Response:
    versions = versions_required(ctx.header_list(b"if-match"))
    _check_dates(body)
    values = {name: getattr(body, name) for name in body.__struct_fields__}
    itinerary = await _repository(ctx).update(ctx.path_id(), versions, values)
    return _answer(itinerary)


@api.patch(
    "/v1/itineraries/{id:uuid}",
    summary="Change some fields of an itinerary (If-Match required)",
    response=Itinerary,
    statuses=(404, 412, 428),
)
async def update_itinerary(ctx: Context, body: ItineraryUpdate) -> Response:
    versions = versions_required(ctx.header_list(b"if-match"))
    start, end = body.start_date, body.end_date
    # With one date only, the table's check constraint compares it to the stored other.
    if isinstance(start, date) and isinstance(end, date) and start > end:
        raise InvalidInputError.at("/end_date", DATE_RULE)
    itinerary = await _repository(ctx).update(ctx.path_id(), versions, changes_of(body))
    return _answer(itinerary)


@api.delete(
    "/v1/itineraries/{id:uuid}",
    summary="Delete an itinerary (If-Match honoured when sent)",
    statuses=(404, 412),
)
async def delete_itinerary(ctx: Context) -> Response:
    versions = versions_allowed(ctx.header_list(b"if-match"))
    await _repository(ctx).delete(ctx.path_id(), versions)
    return Response(status_code=204)
