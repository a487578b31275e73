"""The supervision page in real Chromium: its counts follow visitors as they come and are taken, and a supervisor's
change of an agent's presence reaches that agent's console."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.async_api import Browser, expect

from agents.models import AgentProfile
from contactcenter.models import Role
from contactcenter.wiring.demo import DEMO_LOGINS
from queueing.models import Queue
from tests.browser.conftest import DemoSite, Person, console_login, in_thread, new_person, open_widget, set_presence

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

SUPERVISOR = next(login for login in DEMO_LOGINS if login.role == Role.SUPERVISOR)


@pytest.fixture
def one_chat_at_a_time(demo: DemoSite) -> int:
    """The demo agent takes one chat at a time, and offers wait for her as long as it takes; her user id."""
    AgentProfile.objects.filter(user__email=demo.agent_email).update(max_chats=1)
    Queue.objects.filter(tenant__slug="demo").update(answer_seconds=0)
    return get_user_model().objects.get(email=demo.agent_email).pk


async def _supervisor(browser: Browser, site: DemoSite) -> Person:
    person = await new_person(browser)
    page = person.page
    await page.goto(f"{site.url}/supervision/")
    await expect(page).to_have_url(f"{site.url}/accounts/login/?next=/supervision/")
    await page.get_by_label("Email").fill(SUPERVISOR.email)
    await page.get_by_label("Password").fill(SUPERVISOR.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{site.url}/supervision/")
    await expect(page.locator("#sv-conn")).to_have_text("Live")
    return person


async def test_the_supervision_page_follows_visitors_and_sets_an_agent_s_presence(
    browser: Browser, demo: DemoSite, one_chat_at_a_time: int
):
    agent = await console_login(browser, demo)
    await set_presence(agent.page, "online")
    supervisor = await _supervisor(browser, demo)
    page = supervisor.page
    queue = page.locator("#sv-queue-rows tr")
    alice = page.locator(f'#sv-agent-rows tr[data-user-id="{one_chat_at_a_time}"]')
    await expect(queue).to_have_count(1)
    await expect(queue.locator(".sv-waiting")).to_have_text("0")
    await expect(alice).to_have_attribute("data-state", "online")
    await expect(alice.locator(".sv-chats")).to_have_text("0 / 1")
    await expect(page.locator("#sv-count-online")).to_have_text("1")
    # The page links itself in the top bar, for supervisors.
    await expect(page.get_by_role("link", name="Supervision")).to_be_visible()

    # A visitor comes: they wait (offered to the demo agent, who holds the offer: no room for another).
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)
    await widget.get_by_label("Your name").fill("Wanda Watcher")
    await widget.get_by_label("How can we help?").fill("Is anyone watching?")
    await widget.get_by_role("button", name="Start chat").click()
    await expect(queue.locator(".sv-waiting")).to_have_text("1")
    await expect(queue.locator(".sv-in-line")).to_have_text("1")
    await expect(alice.locator(".sv-offers")).to_have_text("1")
    await expect(alice).to_have_attribute("data-state", "busy")
    await expect(page.locator("#sv-today-offered")).to_have_text("1")

    # The agent takes the chat: nobody waits any more, and her one chat shows.
    offer = agent.page.locator(".cc-offer")
    await offer.get_by_role("button", name="Accept").click()
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")
    await expect(queue.locator(".sv-waiting")).to_have_text("0")
    await expect(queue.locator(".sv-in-line")).to_have_text("0")
    await expect(alice.locator(".sv-chats")).to_have_text("1 / 1")
    await expect(alice.locator(".sv-offers")).to_have_text("0")
    await expect(page.locator("#sv-today-answered")).to_have_text("1")
    await expect(page.locator("#sv-count-busy")).to_have_text("1")

    # The supervisor takes her offline from the page: her console says so at once.
    await alice.get_by_label("Presence of Alice Agent").select_option("offline")
    await expect(agent.page.locator("#cc-presence-wrap")).to_have_attribute("data-presence", "offline")
    await expect(alice).to_have_attribute("data-state", "offline")
    await expect(page.locator("#sv-count-busy")).to_have_text("0")
    await expect(page.locator("#sv-error")).to_be_hidden()
    profile = await in_thread(lambda: AgentProfile.objects.get(user_id=one_chat_at_a_time).presence)
    assert profile == "offline"

    assert agent.errors == []
    assert supervisor.errors == []
    assert visitor.errors == []
    for person in (agent, supervisor, visitor):
        await person.context.close()


async def test_an_agent_is_not_shown_the_supervision_page(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    response = await agent.page.goto(f"{demo.url}/supervision/")
    assert response is not None and response.status == 403
    await expect(agent.page.get_by_role("heading")).to_have_text("Only supervisors and admins can supervise")
    await expect(agent.page.get_by_role("link", name="Supervision")).to_have_count(0)
    await agent.context.close()
