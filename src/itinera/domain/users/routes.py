from __future__ import annotations

import uuid

from msgspec import UNSET
from starlette.responses import Response

from itinera.domain.orgs.repository import OrgRepository
from itinera.domain.users.repository import UserRepository
from itinera.errors import ConflictError, NotFoundError, PermissionDeniedError
from itinera.http import JSONResponse
from itinera.routing import Api, Context
from itinera_client.schemas.auth import Me, MeOrg, MeUser
from itinera_client.schemas.pagination import Page, PageQuery
from itinera_client.schemas.users import User, UserCreate, UserUpdate

api = Api(tag="users")


def _users(ctx: Context) -> UserRepository:
    return ctx.repository(UserRepository)


@api.get("/v1/me", summary="The caller and their org", response=Me)
async def me(ctx: Context) -> Response:
    principal = ctx.principal
    user = await _users(ctx).get(principal.user_id)
    org = await ctx.repository(OrgRepository).get(principal.org_id)
    if user is None or org is None:  # pragma: no cover - the unit of work checked the user
        raise NotFoundError("the user no longer exists")
    return JSONResponse(
        Me(
            user=MeUser(id=user.id, email=user.email, role=user.role),
            org=MeOrg(id=org.id, slug=org.slug, name=org.name),
        )
    )


async def _confirm_still_admin(ctx: Context, users: UserRepository) -> list[uuid.UUID]:
    """Lock the org's admins and check the caller is still one of them.

    The opening statement checked the caller's role; this re-reads it under
    the admins' row locks, so of two admins demoting each other at the same
    moment the second one finds it is no longer an admin.
    """
    admins = await users.lock_enabled_admins()
    if ctx.principal.user_id not in admins:
        raise PermissionDeniedError("only admins manage users")
    return admins


@api.get(
    "/v1/users",
    summary="List the org's users (admins)",
    response=Page[User],
    statuses=(403,),
    admin_only=True,
)
async def list_users(ctx: Context, query: PageQuery) -> Response:
    users, next_key = await _users(ctx).list(
        limit=query.limit, after=ctx.after(query.cursor, uuid.UUID)
    )
    return JSONResponse(ctx.page(users, next_key))


@api.post(
    "/v1/users",
    summary="Create a user (admins)",
    response=User,
    status=201,
    statuses=(403, 409),
    admin_only=True,
)
async def create_user(ctx: Context, body: UserCreate) -> Response:
    users = _users(ctx)
    password_hash = await ctx.resources.passwords.hash(body.password)
    await _confirm_still_admin(ctx, users)
    user = await users.create(body.email, password_hash, body.role)
    return JSONResponse(user, status_code=201, headers={"Location": f"/v1/users/{user.id}"})


@api.get(
    "/v1/users/{id:uuid}",
    summary="One user (admins)",
    response=User,
    statuses=(403, 404),
    admin_only=True,
)
async def get_user(ctx: Context) -> Response:
    user = await _users(ctx).get(ctx.path_id())
    if user is None:
        raise NotFoundError("no such user")
    return JSONResponse(user)


@api.patch(
    "/v1/users/{id:uuid}",
    summary="Change a user's role or disable them (admins)",
    response=User,
    statuses=(403, 404, 409),
    admin_only=True,
)
async def update_user(ctx: Context, body: UserUpdate) -> Response:
    user_id = ctx.path_id()
    changes = {
        k: v for k, v in (("role", body.role), ("disabled", body.disabled)) if v is not UNSET
    }
    users = _users(ctx)
    admins = await _confirm_still_admin(ctx, users)
    takes_admin_rights = changes.get("role", "admin") != "admin" or changes.get("disabled", False)
    if takes_admin_rights and user_id in admins and len(admins) == 1:
        raise ConflictError("the org needs an enabled admin; promote another user first")
    user = await users.update(user_id, **changes) if changes else await users.get(user_id)
    if user is None:
        raise NotFoundError("no such user")
    return JSONResponse(user)
