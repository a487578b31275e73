"""Auth codes in a browser (docs/auth-codes.md): an integrator creates a code for a contact whose conversation goes
on by SMS; a new browser's page initialises the widget with it and the visitor is signed in with the history, the
conversation continuing on the web (the agent's console says so); a second use of the code is refused with the
error event and a rejected promise, and `init` without a code starts an anonymous visitor. The agent's way: "Send a
link to continue on the web" in an SMS conversation texts the customer a link to the hosted chat page; it signs the
first browser in and, a second time, says so on the page and leaves a new chat possible."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from channels_switch.models import ChannelConnector, SandboxMessage
from channels_switch.services import inbound_receive
from chat.models import Channel, Conversation, ConversationStatus, SenderKind
from contactcenter.models import Contact, Membership, Role
from contactcenter.services.apikeys import apikey_create
from tests.browser.conftest import DemoSite, console_login, customer_page, in_thread, new_person, widget_frame
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

SMS_CUSTOMER = "+447911123987"

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
    await customer_page(page, demo, attributes='data-init="manual"')
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


def sms_customer(agent_email: str) -> None:
    """Pat writes in by SMS (the demo's sandbox connector) and the demo agent has the conversation."""
    connector = ChannelConnector.objects.get(tenant__slug="demo", kind="sms")
    conversation_id = inbound_receive(
        connector=connector, provider_id="SMweb1", sender=SMS_CUSTOMER, body="Can I send you a photo of the damage?"
    ).conversation_id
    conversation = Conversation.objects.get(pk=conversation_id)
    conversation.contact.name = "Pat Photo"
    conversation.contact.save(update_fields=["name"])
    agent = Membership.objects.get(tenant_id=conversation.tenant_id, user__email=agent_email).user
    Conversation.objects.filter(pk=conversation_id).update(status=ConversationStatus.OPEN, assignee=agent)


def sent_to_customer() -> str:
    return SandboxMessage.objects.filter(to_address=SMS_CUSTOMER).values_list("body", flat=True).first() or ""


async def test_an_agent_sends_a_web_link_by_sms_and_it_signs_the_customer_in_once(
    browser: Browser, demo: DemoSite, celery_worker
):
    await in_thread(sms_customer, agent_email=demo.agent_email)
    agent = await console_login(browser, demo)
    await agent.page.get_by_role("tab", name="Pat Photo").click()
    pane = agent.page.locator(".cc-chat.is-active")
    await expect(pane.locator(".js-channel")).to_have_text("SMS")

    # The agent sends the link: it goes as their own SMS, delivered by the sandbox provider.
    await pane.get_by_role("button", name="Send a link to continue on the web").click()
    sent = pane.locator(".cc-msg.is-agent", has_text="in our web chat")
    await expect(sent.locator(".cc-msg-meta")).to_have_text(re.compile(r"· Delivered$"), timeout=30_000)
    text = await in_thread(sent_to_customer)
    found = re.search(r"https?://\S+/chat/(\S+)/#code=(\S+)", text)
    assert found is not None, text
    link = f"{demo.url}/chat/{found[1]}/#code={found[2]}"

    # The customer opens it on their phone's browser: signed in, the conversation and its history in the chat.
    customer = await new_person(browser)
    await customer.page.goto(link)
    await expect(customer.page.locator("[data-switchboard-widget] button")).to_have_attribute("aria-expanded", "true")
    assert "#code=" not in customer.page.url  # taken out of the address bar at once
    frame = await widget_frame(customer.page)
    log = frame.locator("#sb-log")
    await expect(log.get_by_text("Can I send you a photo of the damage?")).to_be_visible()
    await expect(frame.locator("#sb-text")).to_be_visible()
    await expect(pane.locator(".js-channel")).to_have_text("Web chat")
    await expect(pane.get_by_text("Pat Photo continued on the web.")).to_be_visible()
    await frame.locator("#sb-text").fill("Here it is, from the website")
    await frame.locator("#sb-send").click()
    await expect(pane.locator(".cc-bubble", has_text="Here it is, from the website")).to_be_visible()

    # The same link a second time: said in words on the page, and a new chat can still start.
    second = await new_person(browser)
    await second.page.goto(link)
    await expect(second.page.locator("#hosted-status")).to_have_text(
        "This sign-in code has already been used. Ask us for a new link, or start a new chat with the button below."
    )
    launcher = second.page.locator("[data-switchboard-widget] button")
    await expect(launcher).to_be_visible()
    await launcher.click()
    second_frame = await widget_frame(second.page)
    await expect(second_frame.locator("#sb-submit")).to_be_visible()  # the start form of a new visitor
    assert not customer.errors and not second.errors and not agent.errors
    for person in (agent, customer, second):
        await person.context.close()
