"""The default Content-Security-Policy in real Chromium: the pages render and report no violation.

/api/docs/ is the page most at risk (Swagger UI, served from this server by drf-spectacular's sidecar).
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import conftest as harness
from tests.browser.conftest import DemoSite, new_person

# The browser harness's fixtures (one Chromium, the demo tenant on a real daphne), used from this folder.
browser = harness.browser
demo = harness.demo

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

# Runs before any script of the page: every violation the browser reports is kept for the test to read.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


async def violations(page: Page, console: list[str]) -> list[str]:
    reported = await page.evaluate("window.__cspViolations")
    return [*reported, *(line for line in console if "Content Security Policy" in line)]


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    person = await new_person(browser)
    console: list[str] = []
    person.page.on("console", lambda message: console.append(message.text))
    await person.page.add_init_script(RECORD_VIOLATIONS)
    response = await person.page.goto(url)
    assert response is not None and response.status == 200
    assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]
    return person.page, console


async def test_api_docs_render_under_the_policy(browser: Browser, demo: DemoSite):
    page, console = await open_page(browser, f"{demo.url}/api/docs/")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Switchboard API")
    await expect(page.locator(".opblock").first).to_be_visible()  # the operations, from the schema
    await page.locator(".opblock-summary").first.click()  # expanding one runs more of Swagger's code
    await expect(page.locator(".opblock-body").first).to_be_visible()
    assert await violations(page, console) == []


async def test_sign_in_and_demo_pages_render_under_the_policy(browser: Browser, demo: DemoSite):
    page, console = await open_page(browser, f"{demo.url}/accounts/login/")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert await page.evaluate("getComputedStyle(document.body).margin") == "0px"  # app.css applied
    assert await violations(page, console) == []

    page, console = await open_page(browser, f"{demo.url}/demo/")
    await expect(page.locator("[data-switchboard-widget] button")).to_be_visible()  # loader.js ran
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(247, 245, 240)"
    assert await violations(page, console) == []
