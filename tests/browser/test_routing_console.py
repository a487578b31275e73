"""Routing in the console, in real Chromium (protocol 1.9): the status control with the tenant's pause reasons,
an offer's answer countdown and desktop notification, and the pause the server puts an agent in for an offer
they did not answer in time."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from agents.models import AgentProfile, PauseReason
from chat.models import Widget
from queueing.models import Offer, OfferStatus, Queue
from tests.browser.conftest import DemoSite, console_login, in_thread, set_presence

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

MISSED_NOTICE = (
    "You did not answer a chat offer in time, so you were paused (Missed offer). "
    "Set yourself Online to receive chats again."
)
COUNTDOWN = re.compile(r"^Answer within \d+:[0-5]\d$")

# Runs before the console's scripts: a Notification the test can read, a browser that has not been asked yet and
# grants when asked, and a tab the test hides and shows (Chromium's own prompt and visibility are not scriptable).
FAKE_NOTIFICATIONS = """
window.__notifications = [];
window.__permissionRequests = 0;
window.__focused = 0;
window.__hidden = false;
class FakeNotification {
  constructor(title, options) {
    this.title = title;
    this.body = options.body;
    this.tag = options.tag;
    this.closed = false;
    this.onclick = null;
    window.__notifications.push(this);
  }
  close() { this.closed = true; }
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = () => {
  window.__permissionRequests += 1;
  FakeNotification.permission = "granted";
  return Promise.resolve("granted");
};
window.Notification = FakeNotification;
window.focus = () => { window.__focused += 1; };
Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
"""


def _demo_widget() -> Widget:
    return Widget.objects.select_related("tenant").get(tenant__slug="demo")


def _start(visitor_id: str, name: str) -> int:
    """A visitor starts a chat from the survey: routed to the demo queue and offered to the online agent."""
    from queueing.services import conversation_request

    return conversation_request(widget=_demo_widget(), visitor_id=visitor_id, answers={"name": name}).conversation.pk


def _queue_answer_seconds(seconds: int) -> str:
    """Sets the demo widget's queue's answer time limit (0: none); returns the queue's name."""
    queue = Queue.objects.get(routes__widget=_demo_widget())
    queue.answer_seconds = seconds
    queue.save(update_fields=["answer_seconds"])
    return queue.name


def _pending_offer(conversation_id: int) -> dict[str, Any]:
    return Offer.objects.filter(conversation_id=conversation_id, status=OfferStatus.PENDING).values().get()


def _profile(email: str) -> tuple[str, str | None, str | None]:
    """The agent's presence as the server has it: (presence, pause reason's name, its `system` marker)."""
    profile = AgentProfile.objects.select_related("pause_reason").get(user__email=email)
    reason = profile.pause_reason
    return profile.presence, reason.name if reason else None, reason.system if reason else None


def _retired_pause_reason() -> None:
    from agents.services import pause_reason_save

    pause_reason_save(tenant=_demo_widget().tenant, name="Retired reason", paid=True, is_active=False)


def _offer_expires(conversation_id: int) -> None:
    """The offer's answer time is up, and the sweep (the beat task's one pass) finds it."""
    from django.utils import timezone

    from contactcenter.wiring.tasks import sweep_once

    expired = timezone.now() - timedelta(seconds=1)
    updated = Offer.objects.filter(conversation_id=conversation_id, status=OfferStatus.PENDING).update(
        expires_at=expired
    )
    assert updated == 1
    sweep_once()


def status(page: Page) -> Locator:
    """The status control's shown value."""
    return page.locator("#cc-presence option:checked")


async def test_the_status_control_offers_the_tenants_pause_reasons_and_the_server_keeps_the_one_picked(
    browser: Browser, demo: DemoSite
):
    await in_thread(_retired_pause_reason)  # inactive: not offered
    agent = await console_login(browser, demo)
    console = agent.page
    options = console.locator("#cc-presence option")
    await expect(options).to_have_text(
        ["Online", "Away", "Paused: Lunch", "Paused: Meeting", "Paused: Training", "Offline"]
    )
    # A second console tab of the same agent follows the first through `agent.presence`.
    other = await agent.context.new_page()
    await other.goto(f"{demo.url}/console/")
    await expect(other.locator("#cc-presence")).to_be_enabled()

    await console.locator("#cc-presence").select_option(label="Paused: Lunch")
    await expect(status(console)).to_have_text("Paused: Lunch")
    await expect(console.locator("#cc-presence-wrap")).to_have_attribute("data-presence", "paused")
    await expect(console.locator("#cc-home-status")).to_contain_text("You are paused (Lunch)")
    assert await in_thread(_profile, email=demo.agent_email) == ("paused", "Lunch", "")
    await expect(status(other)).to_have_text("Paused: Lunch")
    await expect(other.locator("#cc-presence-wrap")).to_have_attribute("data-presence", "paused")

    # Another reason, then a reload: the hello brings the reason back.
    await console.locator("#cc-presence").select_option(label="Paused: Training")
    await expect(status(console)).to_have_text("Paused: Training")
    await expect(status(other)).to_have_text("Paused: Training")
    assert await in_thread(_profile, email=demo.agent_email) == ("paused", "Training", "")
    await console.reload()
    await expect(console.locator("#cc-presence")).to_be_enabled()
    await expect(status(console)).to_have_text("Paused: Training")

    # A reason the server does not know is refused: the status stays as it was.
    await console.locator('#cc-presence option[value^="paused:"]').first.evaluate("(o) => { o.value = 'paused:0'; }")
    await console.locator("#cc-presence").select_option("paused:0")
    await expect(console.locator(".cc-toast.is-error")).to_be_visible()
    await expect(status(console)).to_have_text("Paused: Training")
    assert await in_thread(_profile, email=demo.agent_email) == ("paused", "Training", "")

    await set_presence(console, "online")
    await expect(status(console)).to_have_text("Online")
    await expect(status(other)).to_have_text("Online")
    assert await in_thread(_profile, email=demo.agent_email) == ("online", None, None)
    assert agent.errors == []
    await agent.context.close()


async def test_an_offer_counts_down_its_answer_time_and_raises_a_desktop_notification_in_a_hidden_tab(
    browser: Browser, demo: DemoSite
):
    agent = await console_login(browser, demo)
    console = agent.page
    await console.add_init_script(FAKE_NOTIFICATIONS)
    await console.reload()
    await expect(console.locator("#cc-presence")).to_be_enabled()

    # The browser has not been asked yet: the console offers to ask, once, and the control goes.
    enable = console.get_by_role("button", name="Enable desktop notifications")
    await expect(enable).to_be_visible()
    await enable.click()
    await expect(enable).to_be_hidden()
    assert await console.evaluate("window.__permissionRequests") == 1
    await set_presence(console, "online")

    # A queue without an answer time limit: no countdown. The tab is hidden: a desktop notification.
    queue_name = await in_thread(_queue_answer_seconds, seconds=0)
    await console.evaluate("window.__hidden = true")
    nora = await in_thread(_start, visitor_id="v-nora", name="Nora Nolimit")
    offer = console.locator(".cc-offer", has_text="Nora Nolimit")
    await expect(offer).to_be_visible()
    await expect(offer.locator(".cc-offer-countdown")).to_have_count(0)
    nora_offer = await in_thread(_pending_offer, conversation_id=nora)
    assert nora_offer["expires_at"] is None
    await console.wait_for_function("window.__notifications.length === 1")
    shown = await console.evaluate("window.__notifications.map((n) => [n.title, n.body, n.tag, n.closed])")
    assert shown == [["New chat offer", f"Nora Nolimit · {queue_name}", f"offer-{nora_offer['id']}", False]]
    # Clicking it brings the console's window forward.
    await console.evaluate("window.__notifications[0].onclick()")
    assert await console.evaluate("[window.__focused, window.__notifications[0].closed]") == [1, True]
    await offer.get_by_role("button", name="Accept").click()
    await expect(offer).to_have_count(0)

    # The queue's limit (the default 30 s): the card counts down to the offer's expires_at, every second.
    await in_thread(_queue_answer_seconds, seconds=30)
    await console.evaluate("window.__hidden = false")
    tim = await in_thread(_start, visitor_id="v-tim", name="Tim Timer")
    offer = console.locator(".cc-offer", has_text="Tim Timer")
    countdown = offer.locator(".cc-offer-countdown")
    await expect(countdown).to_have_text(COUNTDOWN)
    tim_offer = await in_thread(_pending_offer, conversation_id=tim)
    assert tim_offer["expires_at"] is not None
    first = await countdown.text_content()
    assert first is not None
    await expect(countdown).not_to_have_text(first)  # it ticks
    await expect(countdown).to_have_text(COUNTDOWN)
    # The tab was visible: no notification this time.
    assert await console.evaluate("window.__notifications.length") == 1
    assert agent.errors == []
    await agent.context.close()


async def test_a_missed_offer_pauses_the_agent_and_the_console_says_why(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")
    milo = await in_thread(_start, visitor_id="v-milo", name="Milo Missed")
    offer = console.locator(".cc-offer", has_text="Milo Missed")
    await expect(offer.locator(".cc-offer-countdown")).to_have_text(COUNTDOWN)
    notice = console.locator("#cc-missed")
    await expect(notice).to_be_hidden()

    await in_thread(_offer_expires, conversation_id=milo)
    await expect(offer).to_have_count(0)
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text(MISSED_NOTICE)
    await expect(status(console)).to_have_text("Paused: Missed offer")
    await expect(console.locator("#cc-presence-wrap")).to_have_attribute("data-presence", "paused")
    await expect(console.locator("#cc-home-status")).to_contain_text("You are paused (Missed offer)")
    assert await in_thread(_profile, email=demo.agent_email) == ("paused", "Missed offer", PauseReason.MISSED_OFFER)
    # The server's own pause is shown, never offered to pick.
    await expect(status(console)).to_be_disabled()
    await expect(console.locator("#cc-presence option")).to_have_text(
        ["Online", "Away", "Paused: Lunch", "Paused: Meeting", "Paused: Training", "Paused: Missed offer", "Offline"]
    )

    await notice.get_by_role("button", name="Dismiss").click()
    await expect(notice).to_be_hidden()
    await console.reload()
    await expect(console.locator("#cc-presence")).to_be_enabled()
    await expect(status(console)).to_have_text("Paused: Missed offer")
    await expect(notice).to_be_hidden()

    await set_presence(console, "online")
    await expect(status(console)).to_have_text("Online")
    await expect(console.locator("#cc-presence option", has_text="Missed offer")).to_have_count(0)
    assert await in_thread(_profile, email=demo.agent_email) == ("online", None, None)
    assert agent.errors == []
    await agent.context.close()
