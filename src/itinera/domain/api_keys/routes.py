"""API keys for machine clients: admins create, list and revoke them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
from starlette.responses import Response

from itinera.domain.api_keys.repository import ApiKeyRepository
from itinera.errors import InvalidInputError, NotFoundError
from itinera.http import JSONResponse
from itinera.routing import Api, Context, Idempotency
from itinera.security.tokens import new_api_key, token_hash
from itinera_client.schemas.api_keys import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyListQuery
from itinera_client.schemas.pagination import Page

api = Api(tag="api-keys")


def _keys(ctx: Context) -> ApiKeyRepository:
    return ctx.repository(ApiKeyRepository)


@api.get(
    "/v1/api-keys",
    summary="List the org's API keys, newest first (admins; never their secrets)",
    response=Page[ApiKey],
    statuses=(403,),
    admin_only=True,
)
async def list_api_keys(ctx: Context, query: ApiKeyListQuery) -> Response:
    keys, next_key = await _keys(ctx).list(
        limit=query.limit, after=ctx.after(query.cursor, uuid.UUID), user_id=query.user_id
    )
    return JSONResponse(ctx.page(keys, next_key))


@api.post(
    "/v1/api-keys",
    summary="Create an API key for a user of the org (admins); its secret is shown once",
    response=ApiKeyCreated,
    status=201,
    statuses=(403,),
    admin_only=True,
    # An idempotency record stores the response body: the secret would be kept in
    # the database in clear text. A client that lost the answer revokes and creates again.
    idempotency=Idempotency.NONE,
)
async def create_api_key(ctx: Context, body: ApiKeyCreate) -> Response:
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise InvalidInputError.at("/expires_at", "expires_at must be in the future")
    secret = new_api_key(ctx.principal.org_id)
    key = await _keys(ctx).create(body.user_id, body.name, token_hash(secret), body.expires_at)
    created = ApiKeyCreated(**msgspec.structs.asdict(key), secret=secret)
    return JSONResponse(created, status_code=201, headers={"Cache-Control": "no-store"})


@api.delete(
    "/v1/api-keys/{id:uuid}",
    summary="Revoke an API key (admins): refused from the next request on",
    statuses=(403, 404),
    admin_only=True,
)
async def revoke_api_key(ctx: Context) -> Response:
    if not await _keys(ctx).revoke(ctx.path_id()):
        raise NotFoundError("no such API key")
    return Response(status_code=204)
