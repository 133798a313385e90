from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from itinera.buckets import login_buckets, refresh_bucket
from itinera.domain.auth.service import AuthService
from itinera.http import JSONResponse
from itinera.routing import Api, Context, Idempotency
from itinera_client.schemas.auth import LoginRequest, RefreshRequest, TokenPair

api = Api(tag="auth")


def _service(ctx: Context) -> AuthService:
    resources = ctx.resources
    return AuthService(
        ctx.uow,
        resources.passwords,
        resources.tokens,
        timedelta(seconds=resources.settings.refresh_token_ttl_seconds),
    )


@api.post(
    "/v1/auth/login",
    summary="Exchange org, email and password for an access and a refresh token",
    response=TokenPair,
    public=True,
    bucket=login_buckets,
    idempotency=Idempotency.NONE,
    statuses=(401,),
)
async def login(ctx: Context, body: LoginRequest) -> Response:
    pair = await _service(ctx).login(body.org, body.email, body.password)
    return JSONResponse(pair, headers={"Cache-Control": "no-store"})


@api.post(
    "/v1/auth/refresh",
    summary="Rotate a refresh token; a reused one revokes its whole family",
    response=TokenPair,
    public=True,
    bucket=refresh_bucket,
    idempotency=Idempotency.NONE,
    statuses=(401,),
)
async def refresh(ctx: Context, body: RefreshRequest) -> Response:
    pair = await _service(ctx).refresh(body.refresh_token)
    return JSONResponse(pair, headers={"Cache-Control": "no-store"})


@api.post(
    "/v1/auth/logout",
    summary="Revoke the refresh token's family",
    status=204,
)
async def logout(ctx: Context, body: RefreshRequest) -> Response:
    await _service(ctx).logout(ctx.principal, body.refresh_token)
    return Response(status_code=204)
