"""Users of an org: /v1/me, and user management by admins."""

from __future__ import annotations

import httpx
import pytest

from tests.support.tenants import PASSWORD, Tenant


async def test_me(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/me", headers=tenant.admin.headers)
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": str(tenant.admin.user_id), "email": tenant.admin.email, "role": "admin"},
        "org": {"id": str(tenant.org_id), "slug": tenant.slug, "name": f"Org {tenant.slug}"},
    }


async def test_admin_creates_a_user_who_can_log_in(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        "/v1/users",
        json={"email": "Diver@Example.com", "password": "a long password", "role": "member"},
        headers=tenant.admin.headers,
    )
    assert created.status_code == 201
    user = created.json()
    assert created.headers["location"] == f"/v1/users/{user['id']}"
    assert (user["email"], user["role"], user["disabled"]) == ("Diver@Example.com", "member", False)
    assert "password" not in user
    assert "password_hash" not in user
    fetched = await client.get(created.headers["location"], headers=tenant.admin.headers)
    assert fetched.json() == user
    login = await client.post(
        "/v1/auth/login",
        json={"org": tenant.slug, "email": "diver@example.com", "password": "a long password"},
    )
    assert login.status_code == 200


async def test_duplicate_email_in_any_case_is_409(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = {"email": tenant.member.email.upper(), "password": PASSWORD, "role": "member"}
    response = await client.post("/v1/users", json=body, headers=tenant.admin.headers)
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/duplicate"


async def test_same_email_in_another_org_is_fine(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    body = {"email": tenant.member.email, "password": PASSWORD, "role": "member"}
    response = await client.post("/v1/users", json=body, headers=other_tenant.admin.headers)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"email": "x@example.com", "password": PASSWORD}),
        ("PATCH", "/v1/users/{id}", {"role": "admin"}),
        ("GET", "/v1/users/{id}", None),
    ],
)
async def test_members_cannot_manage_users(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, body: object
) -> None:
    url = path.format(id=tenant.member.user_id)
    response = await client.request(method, url, json=body, headers=tenant.member.headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_admin_changes_role_and_disables(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/v1/users/{tenant.member.user_id}"
    promoted = await client.patch(url, json={"role": "admin"}, headers=tenant.admin.headers)
    assert promoted.status_code == 200
    assert (promoted.json()["role"], promoted.json()["disabled"]) == ("admin", False)
    disabled = await client.patch(url, json={"disabled": True}, headers=tenant.admin.headers)
    assert (disabled.json()["role"], disabled.json()["disabled"]) == ("admin", True)
    assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 401


async def test_the_last_admin_cannot_demote_or_disable_themselves(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/users/{tenant.admin.user_id}"
    for change in ({"role": "member"}, {"disabled": True}):
        response = await client.patch(url, json=change, headers=tenant.admin.headers)
        assert response.status_code == 409
    assert (await client.get("/v1/me", headers=tenant.admin.headers)).json()["user"][
        "role"
    ] == "admin"


async def test_users_of_another_org_are_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = f"/v1/users/{other_tenant.member.user_id}"
    assert (await client.get(url, headers=tenant.admin.headers)).status_code == 404
    patched = await client.patch(url, json={"disabled": True}, headers=tenant.admin.headers)
    assert patched.status_code == 404
    assert (await client.get("/v1/me", headers=other_tenant.member.headers)).status_code == 200


async def test_patch_rejects_unknown_fields_and_bad_roles(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/v1/users/{tenant.member.user_id}"
    for body, pointer in (({"role": "owner"}, "/role"), ({"email": "x@example.com"}, "/email")):
        response = await client.patch(url, json=body, headers=tenant.admin.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == pointer


async def test_user_list_pages_newest_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = []
    for n in range(3):
        response = await client.post(
            "/v1/users",
            json={"email": f"page{n}@example.com", "password": PASSWORD},
            headers=tenant.admin.headers,
        )
        created.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/users", params=params, headers=tenant.admin.headers)).json()
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [*reversed(created), str(tenant.member.user_id), str(tenant.admin.user_id)]
    assert seen == expected


async def test_cursor_is_bound_to_its_org(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    page = await client.get("/v1/users", params={"limit": "1"}, headers=tenant.admin.headers)
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    elsewhere = await client.get(
        "/v1/users", params={"cursor": cursor}, headers=other_tenant.admin.headers
    )
    assert elsewhere.status_code == 400
    garbage = await client.get(
        "/v1/users", params={"cursor": "!!not-base64!!"}, headers=tenant.admin.headers
    )
    assert garbage.status_code == 400


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
async def test_limit_out_of_range_is_422_not_clamped(
    client: httpx.AsyncClient, tenant: Tenant, limit: str
) -> None:
    response = await client.get("/v1/users", params={"limit": limit}, headers=tenant.admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "limit"
