from __future__ import annotations

import uuid
from urllib.parse import urlencode

from starlette.responses import Response

from itinera.domain.leads.repository import LeadRepository
from itinera.domain.leads.schemas import Lead, LeadCapture, LeadListQuery
from itinera.domain.types import changes_of
from itinera.http import JSONResponse
from itinera.pagination import Page
from itinera.routing import Api, Context

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
    # Leads have no URL of their own: this list answers exactly the new lead.
    location = "/v1/leads?" + urlencode({"email": lead.email, "source": lead.source})
    return JSONResponse(lead, status_code=201, headers={"Location": location})
