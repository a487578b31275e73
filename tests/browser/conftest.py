"""Browser test harness: one Chromium for the session, the demo tenant seeded per test, page helpers.

Playwright's async API is used on purpose: the sync API keeps an event loop marked as running in the
test thread for as long as Playwright lives, so every later Django ORM call in that thread (fixtures,
pytest-django's flush between tests) would raise SynchronousOnlyOperation. With the async API the loop
only runs while a test coroutine runs; data is seeded by sync fixtures before it starts.

The server under test is a real daphne process (tests.support.servers.daphne_server) on the test
database, so tests use `transactional_db`: the process only sees committed rows.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connections
from playwright.async_api import Browser, BrowserContext, Frame, Page, async_playwright, expect

from chat.models import Widget
from contactcenter.models import Role
from contactcenter.wiring.demo import DEMO_LOGINS, demo_seed
from tests.support.servers import DaphneServer, servers_quiesce

T = TypeVar("T")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Generous: the first page of a fresh daphne process imports a lot; nothing here measures speed.
expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class DemoSite:
    url: str
    public_key: str
    agent_email: str
    agent_password: str
    agent_name: str


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def demo(transactional_db: None, daphne_server: DaphneServer) -> Iterator[DemoSite]:
    """The demo tenant (as `make run` seeds it), its widget open to the server under test. Torn down only
    once the server has finished what the test's last socket closes made it write (before the flush)."""
    demo_seed(host="127.0.0.1", port=daphne_server.port)
    widget = Widget.objects.get(tenant__slug="demo")
    agent = next(login for login in DEMO_LOGINS if login.role == Role.AGENT)
    yield DemoSite(
        url=daphne_server.url,
        public_key=widget.public_key,
        agent_email=agent.email,
        agent_password=agent.password,
        agent_name=agent.first_name,
    )
    servers_quiesce()


async def in_thread(function: Callable[..., T], **kwargs: Any) -> T:
    """Runs ORM code from a test coroutine, in a worker thread whose connection is closed afterwards
    (a connection left open would keep pytest-django from dropping the test database)."""

    def call() -> T:
        try:
            return function(**kwargs)
        finally:
            connections.close_all()

    return await sync_to_async(call, thread_sensitive=False)()


def tiny_png() -> bytes:
    """A valid 8x8 PNG (red), built here so the test needs no asset file."""
    width = height = 8
    raw = b"".join(b"\x00" + b"\xdc\x26\x26" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@dataclass
class Person:
    """One person's browser: their own context (cookies, storage), page, and the page's script errors."""

    context: BrowserContext
    page: Page
    errors: list[str]


async def new_person(browser: Browser) -> Person:
    context = await browser.new_context(viewport={"width": 1366, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return Person(context=context, page=page, errors=errors)


async def console_login(browser: Browser, site: DemoSite) -> Person:
    """An agent signed in through the login page, on the console."""
    agent = await new_person(browser)
    page = agent.page
    await page.goto(f"{site.url}/console/")
    await expect(page).to_have_url(f"{site.url}/accounts/login/?next=/console/")
    await page.get_by_label("Email").fill(site.agent_email)
    await page.get_by_label("Password").fill(site.agent_password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site.url}/console/")
    await expect(page.locator("#cc-presence")).to_be_enabled()
    return agent


async def set_presence(page: Page, presence: str) -> None:
    await page.locator("#cc-presence").select_option(presence)
    await expect(page.locator("#cc-presence-wrap")).to_have_attribute("data-presence", presence)


async def widget_frame(page: Page) -> Frame:
    """The chat iframe loader.js added to the page (it lives in a shadow root: found by URL)."""
    for _ in range(150):
        for frame in page.frames:
            if "/widget/" in frame.url:
                await frame.wait_for_load_state()
                return frame
        await asyncio.sleep(0.1)
    raise AssertionError("loader.js added no widget iframe")


CUSTOMER_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
<h1>Your account</h1>
<script>
  window.sbErrors = [];
  window.addEventListener("switchboard:error", (event) => window.sbErrors.push(event.detail.code));
</script>
<script src="/static/widget/loader.js" data-widget="{key}" {attributes}></script>
</body></html>"""


async def customer_page(page: Page, site: DemoSite, *, attributes: str) -> None:
    """The customer's own page (served here by the test at /shop/): loader.js with the demo widget and `attributes`
    (already HTML-escaped), and `window.sbErrors`, the codes of the `switchboard:error` events it fired."""
    html = CUSTOMER_PAGE.replace("{key}", site.public_key).replace("{attributes}", attributes)
    await page.route(f"{site.url}/shop/", lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(f"{site.url}/shop/")


async def open_widget(page: Page, site: DemoSite) -> Frame:
    """The demo host page with the chat window opened through the launcher button."""
    await page.goto(f"{site.url}/demo/")
    launcher = page.locator("[data-switchboard-widget] button")
    await expect(launcher).to_be_visible()
    await launcher.click()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    return await widget_frame(page)
