"""The console in real Chromium, as a new agent meets it: an offer never covers a control, an offer made
before the visitor wrote shows the first message when it comes, a template never sends broken text, and
templates and statuses changed in the settings reach an open console without a reload.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from chat.models import Widget
from chat.selectors import VisitorActor
from chat.services import message_post
from tests.browser.conftest import DemoSite, console_login, in_thread, set_presence
from tests.support.events import events_lost

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _demo_widget() -> Widget:
    return Widget.objects.select_related("tenant").get(tenant__slug="demo")


def _start(visitor_id: str, name: str) -> int:
    """A visitor starts a chat from the survey alone (no first message): offered to the online agents."""
    from queueing.services import conversation_request

    return conversation_request(widget=_demo_widget(), visitor_id=visitor_id, answers={"name": name}).conversation.pk


def _accepted(agent_email: str, visitor_id: str, name: str) -> int:
    from django.contrib.auth import get_user_model

    from chat.selectors import agent_actor_for
    from chat.services.starting import conversation_start
    from queueing.services import conversation_accept

    started = conversation_start(widget=_demo_widget(), visitor_id=visitor_id, answers={"name": name})
    conversation_id = started.conversation.pk
    actor = agent_actor_for(get_user_model().objects.get(email=agent_email))
    assert actor is not None
    conversation_accept(actor=actor, conversation_id=conversation_id)
    return conversation_id


def _visitor_writes(visitor_id: str, conversation_id: int, body: str) -> None:
    widget = _demo_widget()
    actor = VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id=visitor_id)
    message_post(actor=actor, conversation_id=conversation_id, body=body, client_id=f"{visitor_id}-1")


def _template_save(name: str, body: str) -> int:
    from agents.services import template_save

    return template_save(tenant=_demo_widget().tenant, name=name, body=body).pk


def _template_delete(template_id: int) -> None:
    from agents.models import CannedTemplate
    from agents.services import template_delete

    template_delete(template=CannedTemplate.objects.get(pk=template_id))


def _disposition_save(name: str) -> None:
    from agents.services import disposition_save

    disposition_save(tenant=_demo_widget().tenant, name=name, position=0)


async def assert_uncovered(page: Page, control: Locator, what: str) -> None:
    """The control is on top at its centre and near each corner (nothing drawn over any part of it), and
    a click would reach it."""
    await expect(control).to_be_visible()
    on_top = await control.evaluate(
        """(el) => {
            const r = el.getBoundingClientRect();
            const points = [[0.5, 0.5], [0.1, 0.15], [0.9, 0.15], [0.1, 0.85], [0.9, 0.85]];
            for (const [fx, fy] of points) {
                const hit = document.elementFromPoint(r.left + r.width * fx, r.top + r.height * fy);
                if (hit !== el && !el.contains(hit)) return hit ? hit.outerHTML.slice(0, 120) : "nothing";
            }
            return "";
        }"""
    )
    assert on_top == "", f"{what} is covered by {on_top}"
    await control.click(trial=True, timeout=5_000)  # Playwright's own hit-target check


async def test_offers_cover_nothing_get_their_preview_and_templates_and_settings_stay_live(
    browser: Browser, demo: DemoSite
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await in_thread(_accepted, agent_email=demo.agent_email, visitor_id="v-cora", name="Cora Covered")
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")
    await console.locator(".cc-tab", has_text="Cora Covered").click()
    pane = console.locator(".cc-chat.is-active")
    await pane.locator(".js-disposition").select_option(label="Resolved")
    await expect(pane.locator(".js-close")).to_be_enabled()

    # An offer arrives while a chat is open, before its visitor wrote anything.
    quiet = await in_thread(_start, visitor_id="v-quentin", name="Quentin Quiet")
    offer = console.locator(".cc-offer", has_text="Quentin Quiet")
    await expect(offer).to_be_visible()
    await expect(offer.locator(".cc-offer-preview")).to_be_hidden()
    await console.screenshot(path=str(SCREENSHOTS / "console-offer-over-chat.png"))
    await assert_uncovered(console, pane.locator(".js-close"), "the chat's Close button")
    await assert_uncovered(console, pane.locator(".js-disposition"), "the chat's status picker")
    await assert_uncovered(console, pane.locator(".js-important"), "the chat's star")
    await assert_uncovered(console, console.locator("#cc-presence"), "the presence picker")
    await assert_uncovered(console, offer.get_by_role("button", name="Accept"), "the offer's Accept button")

    # Home's Accept buttons too.
    await console.locator("#cc-tab-home").click()
    waiting = console.locator("#cc-home-waiting .cc-waiting-item", has_text="Quentin Quiet")
    await assert_uncovered(console, waiting.get_by_role("button", name="Accept"), "Home's Accept button")
    await console.screenshot(path=str(SCREENSHOTS / "console-offer-over-home.png"))

    # The visitor's first message reaches the offer card and the waiting item that were shown without it.
    await in_thread(_visitor_writes, visitor_id="v-quentin", conversation_id=quiet, body="Where is my parcel?")
    await expect(offer.locator(".cc-offer-preview")).to_have_text("“Where is my parcel?”")
    await expect(waiting).to_contain_text("“Where is my parcel?”")

    # A template whose value the chat lacks: the agent sees the text, the gap is marked, nothing broken is sent.
    await console.locator(".cc-tab", has_text="Cora Covered").click()
    composer = pane.locator(".js-text")
    await pane.get_by_role("button", name="Templates").click()
    item = pane.get_by_role("menuitem", name=re.compile("^Follow-up by email"))
    await expect(item).to_contain_text("No value for {visitor_email}")
    await item.click()
    expected = "Thanks Cora Covered! We will follow up at {visitor_email} within one business day."
    await expect(composer).to_have_value(expected)
    hint = pane.locator(".js-hint")
    await expect(hint).to_contain_text("no value for {visitor_email}")
    await composer.press("Enter")
    await expect(hint).to_have_class(re.compile("is-error"))
    await expect(composer).to_have_value(expected)
    await expect(pane.locator(".cc-msg.is-agent")).to_have_count(0)
    await console.screenshot(path=str(SCREENSHOTS / "console-template-unfilled.png"))
    # The placeholder is selected: typing replaces it, and the reply goes.
    await composer.press_sequentially("cora@example.org")
    await expect(hint).to_be_hidden()
    await composer.press("Enter")
    await expect(pane.locator(".cc-msg.is-agent .cc-bubble")).to_have_text(
        ["Thanks Cora Covered! We will follow up at cora@example.org within one business day."]
    )

    # Settings changed while the console is open reach it without a reload.
    template_id = await in_thread(_template_save, name="Holiday hours", body="{widget_name|We} open again on Monday.")
    await pane.get_by_role("button", name="Templates").click()
    holiday = pane.get_by_role("menuitem", name=re.compile("^Holiday hours"))
    await expect(holiday).to_contain_text("Website open again on Monday.")
    await in_thread(_template_delete, template_id=template_id)
    await expect(holiday).to_have_count(0)  # gone from the open menu
    await console.keyboard.press("Escape")
    await in_thread(_disposition_save, name="Escalated")
    await expect(pane.locator(".js-disposition option")).to_have_text(
        ["Choose a status…", "Escalated", "Resolved", "Follow-up needed", "Spam"]
    )
    await expect(pane.locator(".js-disposition option:checked")).to_have_text("Resolved")

    assert agent.errors == []
    await agent.context.close()


def _start_with_events_lost(visitor_id: str, name: str) -> int:
    """A chat started while every event it publishes is lost on the way (a failed publish)."""
    with events_lost():
        return _start(visitor_id=visitor_id, name=name)


async def test_an_offer_whose_event_was_lost_shows_when_the_console_tab_is_visible_again(
    browser: Browser, demo: DemoSite
):
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")

    await in_thread(_start_with_events_lost, visitor_id="v-lorna", name="Lorna Lost")
    offer = console.locator(".cc-offer", has_text="Lorna Lost")
    await console.wait_for_timeout(300)
    await expect(offer).to_have_count(0)  # its offer.new never came

    # The agent comes back to the tab: the console pings at once and the server sends what it missed.
    await console.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    await expect(offer).to_be_visible()
    await expect(console.locator("#cc-waiting-count")).to_have_text("1")
    await offer.get_by_role("button", name="Accept").click()
    await expect(console.locator(".cc-tab", has_text="Lorna Lost")).to_be_visible()
    assert agent.errors == []
