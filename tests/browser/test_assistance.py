"""Ask for assistance as the seed describes it, in real Chromium: the agent asks, the supervisor on duty gets an
alert that opens the chat, reads it live, whispers to the agent (the visitor never sees it) and joins it."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import Browser, expect

from contactcenter.models import Role
from contactcenter.wiring.demo import DEMO_LOGINS
from queueing.models import Queue
from tests.browser.conftest import DemoSite, console_login, in_thread, set_presence
from tests.browser.test_queue_widget import _demo_queue, _start_chat
from tests.browser.test_transfer import _accept_offer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

SAM = next(login for login in DEMO_LOGINS if login.role == Role.SUPERVISOR)


def _patient_queue() -> None:
    Queue.objects.filter(pk=_demo_queue().pk).update(answer_seconds=0)


async def test_a_supervisor_answers_a_call_for_help_whispers_and_joins(browser: Browser, demo: DemoSite):
    await in_thread(_patient_queue)
    alice = await console_login(browser, demo)
    await set_presence(alice.page, "online")
    visitor, widget = await _start_chat(browser, demo, "Hugo Help", "I was charged twice")
    await _accept_offer(alice.page, "Hugo Help")
    pane = alice.page.locator(".cc-chat.is-active")

    sam = await console_login(
        browser,
        dataclasses.replace(demo, agent_email=SAM.email, agent_password=SAM.password, agent_name=SAM.first_name),
    )
    await set_presence(sam.page, "away")  # on duty, taking no offers

    await pane.get_by_role("button", name="Ask for help").click()
    await expect(alice.page.locator(".cc-toast", has_text="Help is on its way")).to_be_visible()
    await expect(pane.locator(".cc-event", has_text="asked a supervisor for assistance")).to_be_visible()

    # The alert opens the chat read-only: the history is there, the composer only whispers.
    alert = sam.page.locator(".cc-toast", has_text="Alice Agent asks for help")
    await expect(alert).to_contain_text("Chat with Hugo Help (Support)")
    await alert.click()
    followed = sam.page.locator(".cc-chat.is-active")
    await expect(followed.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["I was charged twice"])
    await expect(followed.locator('.js-mode[data-mode="reply"]')).to_be_hidden()
    await followed.locator(".js-text").fill("Refund the second charge, it is a known issue.")
    await followed.locator(".js-text").press("Enter")
    await expect(pane.locator(".cc-msg.is-note .cc-bubble").last).to_have_text(
        "Refund the second charge, it is a known issue."
    )

    # Live: the visitor's next words reach the supervisor's tab too.
    await widget.locator("#sb-text").fill("Are you still there?")
    await widget.locator("#sb-text").press("Enter")
    await expect(followed.locator(".cc-msg.is-visitor .cc-bubble").last).to_have_text("Are you still there?")

    # Joining: the visitor sees who joined, and the supervisor now replies.
    await followed.get_by_role("button", name="Join chat").click()
    await expect(widget.locator(".sb-event", has_text="joined the chat").last).to_have_text("Sam joined the chat")
    await expect(followed.locator('.js-mode[data-mode="reply"]')).to_be_visible()
    await followed.locator('.js-mode[data-mode="reply"]').click()
    await followed.locator(".js-text").fill("Hi Hugo, I am refunding it now.")
    await followed.locator(".js-text").press("Enter")
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("Hi Hugo, I am refunding it now.")
    # The whisper never reached the visitor.
    await expect(widget.locator(".sb-bubble", has_text="known issue")).to_have_count(0)

    for person in (alice, sam, visitor):
        assert person.errors == []
        await person.context.close()
