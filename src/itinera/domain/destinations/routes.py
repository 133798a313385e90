from __future__ import annotations

import uuid
import zoneinfo

from starlette.responses import Response

from itinera.domain.changes import changes_of
from itinera.domain.destinations.repository import (
    DEPTH_RULE,
    DestinationRepository,
    DiveSiteRepository,
)
from itinera.errors import InvalidInputError, NotFoundError
from itinera.http import JSONResponse
from itinera.routing import Api, Context
from itinera_client.schemas.destinations import (
    Destination,
    DestinationCreate,
    DestinationListQuery,
    DestinationUpdate,
    DiveSite,
    DiveSiteCreate,
    DiveSiteListQuery,
    DiveSiteUpdate,
)
from itinera_client.schemas.pagination import Page

api = Api(tag="destinations")

# Read once: listing the zone database walks the filesystem.
KNOWN_TIMEZONES = frozenset(zoneinfo.available_timezones())


def _destinations(ctx: Context) -> DestinationRepository:
    return ctx.repository(DestinationRepository)


def _dive_sites(ctx: Context) -> DiveSiteRepository:
    return ctx.repository(DiveSiteRepository)


def _check_timezone(timezone: object) -> None:
    if isinstance(timezone, str) and timezone not in KNOWN_TIMEZONES:
        raise InvalidInputError.at("/timezone", f"{timezone!r} is not an IANA time zone")


def _check_depths(minimum: object, maximum: object) -> None:
    # With one depth only, the table's check constraint compares it to the stored other.
    if isinstance(minimum, float) and isinstance(maximum, float) and minimum > maximum:
        raise InvalidInputError.at("/max_depth_m", DEPTH_RULE)


@api.get(
    "/v1/destinations",
    summary="List destinations, newest first; filter by country",
    response=Page[Destination],
)
async def list_destinations(ctx: Context, query: DestinationListQuery) -> Response:
    destinations, next_key = await _destinations(ctx).list(
        limit=query.limit, after=ctx.after(query.cursor, uuid.UUID), country=query.country
    )
    return JSONResponse(ctx.page(destinations, next_key))


@api.post(
    "/v1/destinations",
    summary="Create a destination",
    response=Destination,
    status=201,
    statuses=(409,),
)
async def create_destination(ctx: Context, body: DestinationCreate) -> Response:
    _check_timezone(body.timezone)
    destination = await _destinations(ctx).create(changes_of(body))
    return JSONResponse(
        destination,
        status_code=201,
        headers={"Location": f"/v1/destinations/{destination.id}"},
    )


@api.get(
    "/v1/destinations/{id:uuid}", summary="One destination", response=Destination, statuses=(404,)
)
async def get_destination(ctx: Context) -> Response:
    destination = await _destinations(ctx).get(ctx.path_id())
    if destination is None:
        raise NotFoundError("no such destination")
    return JSONResponse(destination)


@api.patch(
    "/v1/destinations/{id:uuid}",
    summary="Change some fields of a destination",
    response=Destination,
    statuses=(404, 409),
)
async def update_destination(ctx: Context, body: DestinationUpdate) -> Response:
    _check_timezone(body.timezone)
    destination = await _destinations(ctx).update(ctx.path_id(), changes_of(body))
    return JSONResponse(destination)


@api.delete(
    "/v1/destinations/{id:uuid}",
    summary="Delete a destination and its dive sites",
    statuses=(404,),
)
async def delete_destination(ctx: Context) -> Response:
    await _destinations(ctx).delete(ctx.path_id())
    return Response(status_code=204)


@api.get(
    "/v1/destinations/{id:uuid}/dive-sites",
    summary="List a destination's dive sites, newest first; filter by difficulty and depth",
    response=Page[DiveSite],
    statuses=(404,),
)
async def list_dive_sites(ctx: Context, query: DiveSiteListQuery) -> Response:
    dive_sites, next_key = await _dive_sites(ctx).list(
        ctx.path_id(),
        limit=query.limit,
        after=ctx.after(query.cursor, uuid.UUID),
        difficulty=query.difficulty,
        max_depth_m=query.max_depth_m,
    )
    return JSONResponse(ctx.page(dive_sites, next_key))


@api.post(
    "/v1/destinations/{id:uuid}/dive-sites",
    summary="Add a dive site to a destination",
    response=DiveSite,
    status=201,
    statuses=(404,),
)
async def create_dive_site(ctx: Context, body: DiveSiteCreate) -> Response:
    _check_depths(body.min_depth_m, body.max_depth_m)
    dive_site = await _dive_sites(ctx).create(ctx.path_id(), changes_of(body))
    return JSONResponse(
        dive_site, status_code=201, headers={"Location": f"/v1/dive-sites/{dive_site.id}"}
    )


@api.get("/v1/dive-sites/{id:uuid}", summary="One dive site", response=DiveSite, statuses=(404,))
async def get_dive_site(ctx: Context) -> Response:
    dive_site = await _dive_sites(ctx).get(ctx.path_id())
    if dive_site is None:
        raise NotFoundError("no such dive site")
    return JSONResponse(dive_site)


@api.patch(
    "/v1/dive-sites/{id:uuid}",
    summary="Change some fields of a dive site",
    response=DiveSite,
    statuses=(404,),
)
async def update_dive_site(ctx: Context, body: DiveSiteUpdate) -> Response:
    _check_depths(body.min_depth_m, body.max_depth_m)
    dive_site = await _dive_sites(ctx).update(ctx.path_id(), changes_of(body))
    return JSONResponse(dive_site)


@api.delete("/v1/dive-sites/{id:uuid}", summary="Delete a dive site", statuses=(404,))
async def delete_dive_site(ctx: Context) -> Response:
    await _dive_sites(ctx).delete(ctx.path_id())
    return Response(status_code=204)
