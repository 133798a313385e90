from __future__ import annotations

import uuid

from starlette.responses import Response

from itinera.domain.changes import changes_of
from itinera.domain.leads.repository import LeadRepository
from itinera.errors import NotFoundError
from itinera.http import JSONResponse
from itinera.routing import Api, Context
from itinera_client.schemas.leads import Lead, LeadCapture, LeadListQuery
from itinera_client.schemas.pagination import Page

api = Api(tag="leads")


def _repository(ctx: Context) -> LeadRepository:
    return ctx.repository(LeadRepository)


@api.get(
    "/v1/leads",
    summary="List leads, newest first; filter by source and email (any case)",
    response=Page[Lead],
)
async def list_leads(ctx: Context, query: LeadListQuery) -> Response:
    leads, next_key = await _repository(ctx).list(
        limit=query.limit,
        after=ctx.after(query.cursor, uuid.UUID),
        source=query.source,
        email=query.email,
    )
    return JSONResponse(ctx.page(leads, next_key))


@api.post(
    "/v1/leads",
    summary="Capture a lead; a repeat (same email in any case, same source) updates it: 200",
    response=Lead,
    status=201,
    statuses=(200,),
)
async def capture_lead(ctx: Context, body: LeadCapture) -> Response:
    lead, created = await _repository(ctx).capture(changes_of(body))
    if not created:
        return JSONResponse(lead)
    return JSONResponse(lead, status_code=201, headers={"Location": f"/v1/leads/{lead.id}"})


@api.get("/v1/leads/{id:uuid}", summary="One lead", response=Lead, statuses=(404,))
async def get_lead(ctx: Context) -> Response:
    lead = await _repository(ctx).get(ctx.path_id())
    if lead is None:
        raise NotFoundError("no such lead")
    return JSONResponse(lead)


@api.delete("/v1/leads/{id:uuid}", summary="Delete a lead", statuses=(404,))
async def delete_lead(ctx: Context) -> Response:
    await _repository(ctx).delete(ctx.path_id())
    return Response(status_code=204)
