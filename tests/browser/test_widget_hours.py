"""Business hours and display rules as a visitor meets them, in real Chromium (protocol 1.11): outside the hours the
widget offers the message form and says when the team is back; the launcher appears only on the pages the display
rules name, only after the visitor has been on the page for the delay, and always for a chat in progress."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Browser, Frame, Page, expect

from chat.models import Conversation, Widget
from chat.services import widget_save
from tests.browser.conftest import DemoSite, in_thread, new_person, open_widget, widget_frame

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

LAUNCHER = "[data-switchboard-widget] button"
BACK = re.compile(
    r"^We are closed right now and back (today|tomorrow|on .+) at .+\. Leave a message and we will reply then\.$"
)


def _demo_widget() -> Widget:
    return Widget.objects.select_related("tenant").get(tenant__slug="demo")


def _set(**fields: Any) -> None:
    widget = _demo_widget()
    widget_save(tenant=widget.tenant, instance=widget, **fields)


@pytest.fixture
def closed_today(demo: DemoSite) -> None:
    """The demo widget keeps business hours: open all week in UTC, but today is a closed date."""
    _set(
        hours_enabled=True,
        time_zone="UTC",
        weekly_hours=[[["00:00", "24:00"]]] * 7,
        closed_dates=[datetime.now(tz=UTC).date().isoformat()],
    )


async def _frame_settled(page: Page) -> Frame:
    """The widget iframe once it has shown its start form or chat: it has told the loader `ready` by then."""
    frame = await widget_frame(page)
    await expect(frame.locator("#sb-view-form:not([hidden]), #sb-view-chat:not([hidden])")).to_have_count(1)
    return frame


async def test_outside_the_hours_the_widget_takes_a_message_and_says_when_the_team_is_back(
    browser: Browser, demo: DemoSite, closed_today: None
):
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await expect(widget.locator("#sb-intro")).to_have_text(BACK)
    await expect(widget.locator("#sb-intro")).to_have_attribute("data-reason", "closed")
    await expect(widget.locator("#sb-subtitle")).to_have_text("We are closed right now")
    await expect(widget.get_by_role("button", name="Leave a message")).to_be_visible()

    await widget.get_by_label("Your name").fill("Otto Late")
    await widget.get_by_label("Your message").fill("Do you ship to Norway?")
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text("Do you ship to Norway?")
    await expect(widget.locator("#sb-notice")).to_contain_text("your message was received")
    await expect(widget.locator("#sb-notice")).to_contain_text("We are back")

    otto = await in_thread(
        lambda: Conversation.objects.values("started_offline").get(tenant__slug="demo", contact__name="Otto Late")
    )
    assert otto["started_offline"] is True
    assert visitor.errors == []
    await visitor.context.close()


async def test_the_launcher_appears_only_where_the_display_rules_allow_and_always_for_a_chat_in_progress(
    browser: Browser, demo: DemoSite
):
    await in_thread(_set, display_url_contains=["pricing"], display_url_excludes=["checkout"])
    visitor = await new_person(browser)
    page = visitor.page
    launcher = page.locator(LAUNCHER)

    # Not a page the rules name: the widget loads, tells the loader it is ready, and the launcher stays away.
    for path in ("/demo/", "/demo/?page=pricing&step=checkout"):
        await page.goto(f"{demo.url}{path}")
        await _frame_settled(page)
        await asyncio.sleep(1)
        await expect(launcher).to_be_hidden()

    # A page the rules name (ignoring case).
    await page.goto(f"{demo.url}/demo/?page=Pricing")
    await expect(launcher).to_be_visible()

    # A chat started there follows the visitor to pages the rules do not name.
    await launcher.click()
    widget = await widget_frame(page)
    await widget.get_by_label("Your name").fill("Petra Pages")
    await widget.get_by_label("Your message").fill("Which tent is lightest?")
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text("Which tent is lightest?")
    await page.goto(f"{demo.url}/demo/?step=checkout")
    await expect(launcher).to_be_visible()
    assert visitor.errors == []
    await visitor.context.close()


async def test_with_a_delay_the_launcher_appears_only_after_that_long_on_the_page(browser: Browser, demo: DemoSite):
    await in_thread(_set, display_delay_seconds=10)
    visitor = await new_person(browser)
    page = visitor.page
    launcher = page.locator(LAUNCHER)
    await page.goto(f"{demo.url}/demo/")
    await expect(launcher).to_be_hidden()
    await _frame_settled(page)
    await expect(launcher).to_be_hidden()
    # Shown once the page has been open 10 seconds (the wait allows for a slow machine).
    await expect(launcher).to_be_visible(timeout=40_000)
    assert await page.evaluate("performance.now()") >= 10_000
    assert visitor.errors == []
    await visitor.context.close()
