"""Auth codes in a browser (docs/auth-codes.md): an integrator creates a code for a contact whose conversation goes
on by SMS; a new browser's page initialises the widget with it and the visitor is signed in with the history, the
conversation continuing on the web (the agent's console says so); a second use of the code is refused with the
error event and a rejected promise, and `init` without a code starts an anonymous visitor."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from chat.models import Channel, Conversation, ConversationStatus, SenderKind
from contactcenter.models import Contact, Membership, Role
from contactcenter.services.apikeys import apikey_create
from tests.browser.conftest import DemoSite, console_login, in_thread, new_person, widget_frame
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
<h1>Your account</h1>
<script>
  window.sbErrors = [];
  window.addEventListener("switchboard:error", (event) => window.sbErrors.push(event.detail.code));
</script>
<script src="/static/widget/loader.js" data-widget="{key}" data-init="manual"></script>
</body></html>"""

INIT = "code => Switchboard.init(code ? {authCode: code} : undefined).then(r => r, e => ({refused: e.code}))"


def seed(site_public_key: str) -> str:
    """Jane, known by SMS: a closed conversation and an open one with the demo agent; an API key's plaintext."""
    contact = Contact.objects.create(tenant_id=_tenant_id(site_public_key), name="Jane Doe")
    agent = Membership.objects.filter(tenant_id=contact.tenant_id, role=Role.AGENT).first().user
    earlier = Conversation.objects.create(
        tenant_id=contact.tenant_id,
        contact=contact,
        channel=Channel.SMS,
        channel_address="+14155550123",
        status=ConversationStatus.CLOSED,
    )
    MessageFactory(tenant=contact.tenant, conversation=earlier, body="Where is my parcel?")
    now = Conversation.objects.create(
        tenant_id=contact.tenant_id,
        contact=contact,
        channel=Channel.SMS,
        channel_address="+14155550123",
        status=ConversationStatus.OPEN,
        assignee=agent,
    )
    MessageFactory(tenant=contact.tenant, conversation=now, body="Can I change the address?")
    MessageFactory(
        tenant=contact.tenant,
        conversation=now,
        body="Sure, tell me the new one.",
        sender_kind=SenderKind.AGENT,
        sender_user=agent,
    )
    return f"{contact.pk}:{apikey_create(tenant=contact.tenant, name='helpdesk').plaintext}"


def _tenant_id(public_key: str) -> int:
    from chat.models import Widget

    return Widget.objects.get(public_key=public_key).tenant_id


async def shop_page(page: Page, demo: DemoSite) -> None:
    """The customer's own page (served here by the test) with the loader waiting for Switchboard.init."""
    html = HOST_PAGE.replace("{key}", demo.public_key)
    await page.route(f"{demo.url}/shop/", lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(f"{demo.url}/shop/")
    await page.wait_for_function("() => window.Switchboard && typeof window.Switchboard.init === 'function'")


async def test_an_auth_code_signs_the_visitor_in_once_then_init_falls_back_to_anonymous(
    browser: Browser, demo: DemoSite
):
    contact_id, key = (await in_thread(seed, site_public_key=demo.public_key)).split(":", 1)
    agent = await console_login(browser, demo)
    await agent.page.get_by_role("tab", name="Jane Doe").click()
    await expect(agent.page.locator(".cc-bubble", has_text="Sure, tell me the new one.")).to_be_visible()

    created = await agent.page.request.post(
        f"{demo.url}/api/v1/contacts/{contact_id}/auth-codes/", headers={"Authorization": f"Bearer {key}"}
    )
    assert created.status == 201, await created.text()
    code = (await created.json())["code"]

    customer = await new_person(browser)
    await shop_page(customer.page, demo)
    signed_in = await customer.page.evaluate(INIT, code)
    assert signed_in["signedIn"] is True, signed_in
    launcher = customer.page.locator("[data-switchboard-widget] button")
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    frame = await widget_frame(customer.page)
    history = frame.locator("#sb-history")
    await expect(history.get_by_text("Where is my parcel?")).to_be_visible()
    await expect(history.get_by_text("Earlier conversation by SMS", exact=False)).to_be_visible()
    log = frame.locator("#sb-log")
    await expect(log.get_by_text("Can I change the address?")).to_be_visible()
    await expect(log.get_by_text("Sure, tell me the new one.")).to_be_visible()
    await expect(frame.locator("#sb-text")).to_be_visible()
    # The agent sees that Jane now writes from the web.
    await expect(
        agent.page.locator(".cc-event, .cc-system, li", has_text="Jane Doe continued on the web.").first
    ).to_be_visible()
    await frame.locator("#sb-text").fill("Here on the website now")
    await frame.locator("#sb-send").click()
    await expect(agent.page.locator(".cc-bubble", has_text="Here on the website now")).to_be_visible()

    second = await new_person(browser)
    await shop_page(second.page, demo)
    refused = await second.page.evaluate(INIT, code)
    assert refused == {"refused": "auth_code_used"}
    assert await second.page.evaluate("window.sbErrors") == ["auth_code_used"]
    second_launcher = second.page.locator("[data-switchboard-widget] button")
    await expect(second_launcher).to_be_hidden()  # uninitialised: no launcher

    anonymous = await second.page.evaluate(INIT, None)
    assert anonymous == {"signedIn": False}
    await expect(second_launcher).to_be_visible()
    await second_launcher.click()
    second_frame = await widget_frame(second.page)
    await expect(second_frame.locator("#sb-submit")).to_be_visible()  # the pre-chat form of a new visitor
    await expect(second_frame.locator("#sb-history")).to_be_hidden()
    assert not customer.errors and not second.errors and not agent.errors
    for person in (agent, customer, second):
        await person.context.close()
