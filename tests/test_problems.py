"""Every problem ``type`` of ours resolves to a page that explains it."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urljoin

import httpx
import pytest

from itinera.http import ERROR_TABLE
from itinera.ops.problems import EXPLANATIONS
from tests.support.http import assert_problem
from tests.support.tenants import Tenant

# Every type the error table answers with, but IANA's (explained by IANA's registry)
# and about:blank (explained by the status alone).
OUR_TYPES = sorted({t for _, t in ERROR_TABLE.values() if t.startswith("/problems/")})


def test_every_type_of_ours_is_explained_and_nothing_else() -> None:
    assert OUR_TYPES
    assert sorted(EXPLANATIONS) == OUR_TYPES


@pytest.mark.parametrize("problem_type", OUR_TYPES)
async def test_a_problem_type_resolves_to_a_page_with_its_status_and_advice(
    client: httpx.AsyncClient, problem_type: str
) -> None:
    response = await client.get(problem_type)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    heading = re.search(r"<h1>(.+?)</h1>", page)
    assert heading is not None
    assert heading.group(1) == re.sub(r"<[^>]+>", "", heading.group(1))  # plain text
    for status, table_type in ERROR_TABLE.values():
        if table_type == problem_type:
            assert f"<strong>{status} " in page
    assert "When it happens" in page
    assert "What to do" in page
    assert f"<code>{problem_type}</code>" in page


async def test_a_page_runs_nothing_and_loads_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get(OUR_TYPES[0])
    page = response.text
    assert "<script" not in page
    assert re.search(r"https?://|//[a-z0-9.-]+\.[a-z]", page, re.IGNORECASE) is None
    assert re.search(r"<(link|img|iframe)\b", page) is None
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert "script-src" not in policy
    styles = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert policy["style-src"] == f"'sha256-{digest}'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_type_of_a_real_problem_resolves_against_the_request_url(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    refused = await client.post(
        "/v1/itineraries",
        json={"title": ""},
        headers={**tenant.member.headers, "Idempotency-Key": "problems-1"},
    )
    problem = assert_problem(refused, 422, "/problems/validation")
    page = await client.get(urljoin(str(refused.url), problem["type"]))
    assert page.status_code == 200
    assert "422 Unprocessable Content" in page.text


async def test_an_unknown_problem_type_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/problems/no-such-type"), 404, "/problems/not-found")
