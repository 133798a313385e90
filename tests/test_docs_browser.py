"""/docs in a real browser: authorize with a token, try GET /v1/me, see the answer.

Headless Chromium from Debian's package (``apt-get install chromium``), driven
by Playwright for Python through ``executable_path``: Playwright's own browser
builds are never downloaded. The page comes from the real app on uvicorn, and
the browser is allowed to reach that server only.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Route, async_playwright
from playwright.async_api import Request as BrowserRequest

from itinera.settings import Settings
from tests.support.fuzz_server import serving
from tests.support.tenants import Tenant

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous: the first load reads and gzips the 1.5 MB bundle, and CI shares two cores.
TIMEOUT_MS = 30_000

# Collected by the page itself: the browser reports each blocked load or script here.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install chromium` (Debian's package; "
            "Playwright's own browser download is not used)",
            pytrace=False,
        )
    return found


@dataclass
class Browsing:
    """A fresh browser profile on one server, and what the page did there."""

    base_url: str
    page: Page
    console_errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    requests: list[BrowserRequest] = field(default_factory=list)

    async def csp_violations(self) -> list[str]:
        return await self.page.evaluate("() => window.cspViolations")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with serving(settings) as url:
        yield url


@pytest.fixture
async def browsing(base_url: str, tmp_path: Path) -> AsyncIterator[Browsing]:
    executable = chromium()
    async with async_playwright() as playwright:
        context: BrowserContext = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            browsing = Browsing(base_url, page)

            async def only_our_server(route: Route) -> None:
                if route.request.url.startswith(f"{base_url}/"):
                    await route.continue_()
                else:
                    browsing.elsewhere.append(route.request.url)
                    await route.abort()

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    browsing.console_errors.append(message.text)

            await context.route("**/*", only_our_server)
            await context.add_init_script(RECORD_VIOLATIONS)
            page.on("console", on_console)
            page.on("pageerror", lambda error: browsing.console_errors.append(str(error)))
            page.on("request", lambda request: browsing.requests.append(request))
            yield browsing
        finally:
            await context.close()


async def test_docs_authorizes_with_a_token_and_tries_get_me_in_a_real_browser(
    browsing: Browsing, tenant: Tenant
) -> None:
    page = browsing.page
    member = tenant.member
    await page.goto(f"{browsing.base_url}/docs")
    await page.locator(".swagger-ui .info .title").filter(has_text="Itinera").wait_for()

    # The description's Markdown is rendered, not shown raw.
    description = page.locator(".swagger-ui .info .description")
    await description.locator("code", has_text="Authorization: Bearer <access token>").wait_for()
    assert "`" not in await description.inner_text()

    await page.locator(".swagger-ui .auth-wrapper button.authorize").click()
    dialog = page.locator(".swagger-ui .dialog-ux .modal-ux")
    await dialog.locator("h4", has_text="bearerAuth").wait_for()
    await dialog.locator("input").fill(member.token)
    await dialog.locator("button.authorize").click()
    await dialog.locator("h6", has_text="Authorized").wait_for()
    await dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-users-me")
    await operation.locator(".opblock-summary").click()
    await operation.locator("button.execute").click()

    response = operation.locator(".live-responses-table .response")
    await response.locator(".response-col_status", has_text="200").wait_for()
    body = response.locator(".response-col_description pre").filter(has_text='"user"')
    shown = json.loads(await body.inner_text())
    assert shown["user"] == {"id": str(member.user_id), "email": member.email, "role": "member"}

    me = [r for r in browsing.requests if r.url == f"{browsing.base_url}/v1/me"]
    assert len(me) == 1
    assert (await me[0].all_headers())["authorization"] == f"Bearer {member.token}"
    assert await browsing.csp_violations() == []
    assert browsing.console_errors == []
    assert browsing.elsewhere == []


async def test_docs_offers_the_documented_example_as_the_login_body(browsing: Browsing) -> None:
    page = browsing.page
    await page.goto(f"{browsing.base_url}/docs#/auth/login")
    operation = page.locator("#operations-auth-login")
    await operation.locator("textarea.body-param__text").wait_for()
    body = json.loads(await operation.locator("textarea.body-param__text").input_value())
    assert body == {"org": "demo", "email": "admin@demo.example", "password": "itinera-demo"}
    assert browsing.console_errors == []


# As an HTML injection would add them: markup in the page, beside the hashed script.
INJECTED = (
    b'<script>window.injected = true</script><p style="color: red">styled</p>'
    b'<img src="https://example.com/pixel.png">'
)


async def test_the_docs_policy_refuses_injected_markup_and_other_hosts(
    browsing: Browsing,
) -> None:
    """What the other tests count on: a breach of the policy is refused, and seen."""
    page = browsing.page

    async def inject(route: Route) -> None:
        response = await route.fetch()
        body = (await response.body()).replace(b"</body>", INJECTED + b"</body>")
        await route.fulfill(response=response, body=body)

    await page.route(f"{browsing.base_url}/docs", inject)
    await page.goto(f"{browsing.base_url}/docs")
    await page.locator(".swagger-ui .info .title").wait_for()
    await page.wait_for_function("() => window.cspViolations.length >= 3")
    assert await page.evaluate("() => window.injected") is None
    assert sorted(await browsing.csp_violations()) == [
        "img-src blocked https://example.com/pixel.png",
        "script-src-elem blocked inline",
        "style-src-attr blocked inline",
    ]
    assert len(browsing.console_errors) == 3
    assert browsing.elsewhere == []  # refused by the policy before any request
