"""Live web chat in real Chromium: a visitor on the demo host page and an agent in the console.

Each scenario asserts what each person sees on screen, against a real daphne process.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Browser, Route, WebSocketRoute, expect

from chat.models import Conversation, ConversationStatus, Message, Widget
from chat.selectors import VisitorActor
from chat.services import message_post, widget_save
from chat.services.starting import conversation_start
from contactcenter.services import contact_create, contact_identity_add
from tests.browser.conftest import (
    DemoSite,
    console_login,
    in_thread,
    new_person,
    open_widget,
    set_presence,
    tiny_png,
    widget_frame,
)
from tests.factories import ConversationFactory, MessageFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="session"),
]

XSS = '<img src=x onerror="window.__xss = 1">'


async def test_visitor_and_agent_chat_from_survey_to_close(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")

    visitor = await new_person(browser)
    site = visitor.page
    widget = await open_widget(site, demo)

    # The survey is checked in the browser first: the required name is missing.
    await widget.get_by_role("button", name="Start chat").click()
    await expect(widget.locator("#sb-field-name-error")).to_have_text("Please fill this in.")
    await widget.get_by_label("Your name").fill("Jane Doe")
    await widget.get_by_label("Email").fill("not-an-email")
    await widget.get_by_role("button", name="Start chat").click()
    await expect(widget.locator("#sb-field-email-error")).to_contain_text("valid email")
    await widget.get_by_label("Email").fill("jane@example.org")
    await widget.get_by_label("How can we help?").fill("Hello, where is my order?")
    await widget.get_by_role("button", name="Start chat").click()
    first = widget.locator(".sb-msg.is-visitor").first
    await expect(first.locator(".sb-bubble")).to_have_text("Hello, where is my order?")
    await expect(widget.locator("#sb-subtitle")).to_have_text("Waiting for an agent…")

    # The agent is offered the chat in the top-right notification, with the queue and live counters.
    offer = console.locator(".cc-offer")
    await expect(offer.locator(".cc-offer-name")).to_have_text("Jane Doe")
    await expect(offer).to_contain_text("Support")
    await expect(offer).to_contain_text("“Hello, where is my order?”")
    await expect(offer.get_by_role("button", name="Open page")).to_have_count(0)  # no external URL set
    await expect(console).to_have_title(re.compile("Incoming chat"))
    await offer.get_by_role("button", name="Accept").click()
    await expect(offer).to_have_count(0)
    tab = console.locator(".cc-tab", has_text="Jane Doe")
    await expect(tab).to_have_class(re.compile("is-active"))
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["Hello, where is my order?"])
    await expect(pane.locator(".cc-chat-side")).to_contain_text("jane@example.org")
    await expect(pane.locator(".cc-chat-side .cc-badge", has_text="Unverified").first).to_be_visible()

    # The visitor is told who joined.
    await expect(widget.locator(".sb-event", has_text="joined the chat")).to_have_text(
        f"{demo.agent_name} joined the chat"
    )
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")

    # Typing shows on the other side, both ways; Enter sends.
    composer = pane.locator(".js-text")
    await composer.press_sequentially("Let me check")
    await expect(widget.locator("#sb-typing")).to_contain_text(f"{demo.agent_name} is typing")
    await composer.press_sequentially(" that for you.")
    await composer.press("Enter")
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble")).to_have_text(["Let me check that for you."])
    await expect(widget.locator("#sb-typing")).to_be_hidden()

    text = widget.locator("#sb-text")
    await text.press_sequentially("Order 1234")
    await expect(pane.locator(".js-typing")).to_have_text("Jane Doe is typing…")
    await text.press("Shift+Enter")
    await text.press_sequentially("Thanks!")
    await text.press("Enter")
    mine = widget.locator(".sb-msg.is-visitor").last
    await expect(mine.locator(".sb-bubble")).to_have_text("Order 1234\nThanks!")
    await expect(mine).to_have_attribute("data-status", re.compile("^(sent|seen)$"))
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble").last).to_have_text("Order 1234\nThanks!")

    # A reload keeps the session and the history (the token is in the iframe's localStorage).
    await site.reload()
    widget = await widget_frame(site)
    await expect(widget.locator(".sb-msg .sb-bubble")).to_have_text(
        ["Hello, where is my order?", "Let me check that for you.", "Order 1234\nThanks!"]
    )
    await expect(widget.locator("#sb-subtitle")).to_have_text(f"Chatting with {demo.agent_name}")

    # A file goes through; both sides show the image.
    await widget.locator("#sb-file").set_input_files(
        files=[{"name": "parcel.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    visitor_image = widget.locator(".sb-msg.is-visitor img").last
    await expect(visitor_image).to_have_attribute("alt", "parcel.png")
    agent_image = pane.locator(".cc-msg.is-visitor img")
    await expect(agent_image).to_have_attribute("src", re.compile(r"^/console/api/attachments/\d+/$"))
    await expect(agent_image).to_have_js_property("naturalWidth", 8)  # the download URL really serves it

    # The visitor minimises the window; a private note stays with the agents, so only the reply that
    # follows counts as unread on the launcher.
    launcher = site.locator("[data-switchboard-widget] button")
    await widget.get_by_role("button", name="Minimize chat").click()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await pane.get_by_role("button", name="Private note").click()
    await composer.fill("VIP customer, refund if late")
    await composer.press("Enter")
    note = pane.locator(".cc-msg.is-note")
    await expect(note.locator(".cc-bubble")).to_have_text("VIP customer, refund if late")
    await pane.get_by_role("button", name="Reply").click()
    await composer.fill("It arrives tomorrow.")
    await composer.press("Enter")
    await expect(launcher.locator("span")).to_have_text("1")
    await launcher.click()
    await expect(launcher.locator("span")).to_be_hidden()
    await expect(widget.locator(".sb-msg.is-agent .sb-bubble").last).to_have_text("It arrives tomorrow.")
    await expect(widget.get_by_text("VIP customer")).to_have_count(0)

    # Close needs a status first; the visitor is then told the chat ended.
    close = pane.get_by_role("button", name="Close chat")
    await expect(close).to_be_disabled()
    await pane.get_by_label("Status (outcome)").select_option(label="Resolved")
    await expect(close).to_be_enabled()
    await close.click()
    await expect(tab).to_have_count(0)
    await expect(widget.locator("#sb-ended")).to_contain_text("This chat has ended.")
    await expect(widget.locator("#sb-composer")).to_be_hidden()

    assert agent.errors == []
    assert visitor.errors == []
    await agent.context.close()
    await visitor.context.close()


@pytest.fixture
def external_url(demo: DemoSite) -> str:
    """The demo widget with an admin-configured page for agents."""
    url = "https://crm.example.com/lookup"
    widget = Widget.objects.get(public_key=demo.public_key)
    widget_save(tenant=widget.tenant, instance=widget, agent_external_url=url)
    return url


async def test_visitor_html_shows_as_text_in_the_console(browser: Browser, demo: DemoSite, external_url: str):
    agent = await console_login(browser, demo)
    console = agent.page
    await set_presence(console, "online")
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)

    await widget.get_by_label("Your name").fill(f"Mallory {XSS}")
    await widget.get_by_label("How can we help?").fill(f"Look: {XSS}")
    await widget.get_by_role("button", name="Start chat").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text(f"Look: {XSS}")

    offer = console.locator(".cc-offer")
    await expect(offer.locator(".cc-offer-name")).to_have_text(f"Mallory {XSS}")
    await expect(offer.get_by_role("button", name="Open page")).to_have_attribute("title", external_url)
    await offer.get_by_role("button", name="Accept").click()
    pane = console.locator(".cc-chat.is-active")
    bubble = pane.locator(".cc-msg.is-visitor .cc-bubble")
    await expect(bubble).to_have_text(f"Look: {XSS}")
    await expect(console.locator(".cc-tab.is-active")).to_have_text(f"Mallory {XSS}")
    # Shown as text: no element was made from it, and its handler never ran on either page.
    await expect(pane.locator(".cc-log img")).to_have_count(0)
    await expect(widget.locator(".sb-log img")).to_have_count(0)
    assert await console.evaluate("() => window.__xss") is None
    assert await widget.evaluate("() => window.__xss") is None

    assert agent.errors == []
    assert visitor.errors == []
    await agent.context.close()
    await visitor.context.close()


async def test_an_offline_message_waits_for_an_agent_and_the_visitor_ends_the_chat(browser: Browser, demo: DemoSite):
    visitor = await new_person(browser)
    widget = await open_widget(visitor.page, demo)

    await expect(widget.locator("#sb-intro")).to_contain_text("No one is available right now")
    await expect(widget.locator("#sb-subtitle")).to_have_text("No one is available right now")
    await widget.get_by_label("Your name").fill("Olive Offline")
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator("#sb-field-message-error")).to_have_text("Please fill this in.")
    await widget.get_by_label("Your message").fill("Please call me back about my refund.")

    # Refused for too many chats from this address (protocol §6, faked here): said plainly, nothing typed is lost.
    async def too_many(route: Route) -> None:
        error = {"code": "rate_limited", "message": "Too many chats", "fields": {}, "retry_after": 42}
        await route.fulfill(status=429, headers={"Retry-After": "42"}, json={"error": error})

    sessions = re.compile(r"/widget/api/[^/]+/sessions$")
    await visitor.page.route(sessions, too_many)
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator("#sb-form-error")).to_have_text(
        "Too many chats started from here; try again in 42 seconds."
    )
    await expect(widget.get_by_label("Your name")).to_have_value("Olive Offline")
    await expect(widget.get_by_label("Your message")).to_have_value("Please call me back about my refund.")
    await visitor.page.unroute(sessions, too_many)

    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text("Please call me back about my refund.")
    await expect(widget.locator("#sb-notice")).to_contain_text("your message was received")

    # An agent who signs in later (still offline) finds it in the Waiting list and picks it up.
    agent = await console_login(browser, demo)
    console = agent.page
    await expect(console.locator("#cc-waiting-count")).to_have_text("1")
    await console.locator("#cc-waiting-btn").click()
    item = console.locator("#cc-waiting-list .cc-waiting-item")
    await expect(item).to_contain_text("Olive Offline")
    await expect(item).to_contain_text("offline message")
    await expect(item).to_contain_text("“Please call me back about my refund.”")
    await item.get_by_role("button", name="Accept").click()
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["Please call me back about my refund."])
    await expect(console.locator("#cc-waiting-count")).to_have_text("0")
    await expect(widget.locator(".sb-event", has_text="joined the chat")).to_be_visible()

    # The visitor ends the chat themselves: a first click only arms the button, the second confirms.
    end = widget.locator("#sb-end")
    await end.click()
    await expect(end).to_have_text("Click again to end the chat")
    await end.click()
    await expect(widget.locator("#sb-ended")).to_contain_text("This chat has ended.")
    await expect(widget.locator("#sb-composer")).to_be_hidden()
    await expect(widget.locator("#sb-subtitle")).to_have_text("This chat has ended")
    await expect(widget.locator(".sb-event").last).to_have_text("The visitor ended the chat.")
    # The agent's tab stays open, closed, with the system notice; the composer is gone.
    await expect(pane.locator(".cc-event").last).to_contain_text("Olive Offline ended the chat")
    await expect(pane.locator(".js-ended")).to_have_text("This chat has ended. Choose a status, then close the tab.")
    await expect(pane.locator(".js-composer")).to_be_hidden()
    closed = await in_thread(lambda: Conversation.objects.get(contact__name="Olive Offline").status)
    assert closed == ConversationStatus.CLOSED

    assert agent.errors == []
    assert visitor.errors == []
    await agent.context.close()
    await visitor.context.close()


@pytest.fixture
def returning_customer(demo: DemoSite) -> dict[str, int]:
    """Two chats waiting: Victor (verified email, one earlier conversation) and Wendy (new)."""
    widget = Widget.objects.get(public_key=demo.public_key)
    victor = contact_create(tenant=widget.tenant, name="Victor Verified")
    contact_identity_add(contact=victor, kind="email", value="victor@example.org", verified=True)
    earlier = ConversationFactory(
        tenant=widget.tenant, contact=victor, widget=widget, status=ConversationStatus.CLOSED, visitor_id="v-victor"
    )
    MessageFactory(tenant=widget.tenant, conversation=earlier, body="My old question about sizes")
    current = ConversationFactory(tenant=widget.tenant, contact=victor, widget=widget, visitor_id="v-victor")
    MessageFactory(tenant=widget.tenant, conversation=current, body="Back again about my tent")
    wendy = conversation_start(
        widget=widget, visitor_id="v-wendy", answers={"name": "Wendy"}, message="Hi there"
    ).conversation
    return {"victor": current.pk, "wendy": wendy.pk, "widget": widget.pk, "tenant": widget.tenant_id}


async def test_agent_console_tools_across_two_chats(browser: Browser, demo: DemoSite, returning_customer):
    agent = await console_login(browser, demo)
    console = agent.page
    await expect(console.locator("#cc-waiting-count")).to_have_text("2")

    # Accepted from the Waiting list (no offer: the agent is offline), each chat gets its own tab.
    waiting = console.locator("#cc-home-waiting .cc-waiting-item")
    await waiting.filter(has_text="Victor Verified").get_by_role("button", name="Accept").click()
    victor_tab = console.locator(".cc-tab", has_text="Victor Verified")
    await expect(victor_tab).to_have_class(re.compile("is-active"))
    await console.locator("#cc-tab-home").click()
    await waiting.filter(has_text="Wendy").get_by_role("button", name="Accept").click()
    wendy_tab = console.locator(".cc-tab", has_text="Wendy")
    await expect(wendy_tab).to_have_class(re.compile("is-active"))
    await victor_tab.click()
    pane = console.locator(".cc-chat.is-active")
    await expect(pane.locator(".cc-msg.is-visitor .cc-bubble")).to_have_text(["Back again about my tent"])

    # A message in the chat the agent is not looking at: its tab flashes and a toast says so.
    visitor = VisitorActor(
        tenant_id=returning_customer["tenant"], widget_id=returning_customer["widget"], visitor_id="v-wendy"
    )
    await in_thread(
        message_post, actor=visitor, conversation_id=returning_customer["wendy"], body="Are you there?", client_id="w-1"
    )
    await expect(wendy_tab).to_have_class(re.compile("is-flashing"))
    toast = console.locator(".cc-toast", has_text="New message from Wendy")
    await expect(toast).to_contain_text("Are you there?")
    await toast.click()
    await expect(wendy_tab).to_have_class(re.compile("is-active"))
    await expect(wendy_tab).not_to_have_class(re.compile("is-flashing"))
    await victor_tab.click()

    # Older messages come from the verified contact's earlier conversation.
    older = pane.get_by_role("button", name="Load older messages")
    await older.click()
    await expect(pane.locator(".cc-divider").first).to_contain_text("Earlier conversation")
    await expect(pane.locator(".cc-msg.is-history .cc-bubble")).to_have_text(["My old question about sizes"])
    await expect(older).to_be_hidden()

    # Templates fill their placeholders; emoji go in at the cursor.
    composer = pane.locator(".js-text")
    await pane.get_by_role("button", name="Templates").click()
    await pane.get_by_role("menuitem", name=re.compile("^Greeting")).click()
    await expect(composer).to_have_value(re.compile(r"^Hi Victor Verified, this is Alice.* from Website\."))
    await pane.get_by_role("button", name="Emoji").click()
    await pane.get_by_role("menuitem", name="👍").click()
    await expect(composer).to_have_value(re.compile("👍$"))

    # Marked as important: the star and the tab say so.
    await pane.get_by_role("button", name="Important").click()
    await expect(pane.locator(".js-important")).to_have_attribute("aria-pressed", "true")
    await expect(victor_tab).to_have_class(re.compile("is-important"))

    assert agent.errors == []
    await agent.context.close()


async def test_widget_resends_an_unacked_message_after_reconnecting(browser: Browser, demo: DemoSite):
    visitor = await new_person(browser)
    site = visitor.page
    lost: list[str] = []

    async def flaky_network(socket: WebSocketRoute) -> None:
        """Forwards the widget's socket, but loses one message in transit and drops the connection."""
        server = socket.connect_to_server()

        async def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message.send" and frame.get("body") == "Lost in transit" and not lost:
                lost.append(frame["client_id"])
                await socket.close(code=1012, reason="network blip")
                return
            server.send(message)

        socket.on_message(from_page)

    await site.route_web_socket(re.compile(r"/ws/visitor/"), flaky_network)
    widget = await open_widget(site, demo)
    await widget.get_by_label("Your name").fill("Nina Network")
    await widget.get_by_label("Your message").fill("Hello?")
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor")).to_have_attribute("data-status", "sent")

    await widget.locator("#sb-text").fill("Lost in transit")
    await widget.locator("#sb-text").press("Enter")
    # Shown at once, never acked: the widget reconnects, resumes and sends it again, same client_id.
    await expect(widget.locator("#sb-banner")).to_have_text("Connection lost. Reconnecting…")
    message = widget.locator(".sb-msg.is-visitor").last
    await expect(message.locator(".sb-bubble")).to_have_text("Lost in transit")
    await expect(message).to_have_attribute("data-status", "sent")
    await expect(widget.locator("#sb-banner")).to_be_hidden()
    await expect(widget.locator(".sb-msg.is-visitor .sb-bubble")).to_have_text(["Hello?", "Lost in transit"])

    stored = await in_thread(lambda: list(Message.objects.filter(body="Lost in transit").values_list("client_id")))
    assert stored == [(lost[0],)]
    assert visitor.errors == []
    await visitor.context.close()


def _demo_agent(agent_email: str):
    from django.contrib.auth import get_user_model

    from chat.selectors import agent_actor_for

    actor = agent_actor_for(get_user_model().objects.get(email=agent_email))
    assert actor is not None
    return actor


def _accept_as_demo_agent(agent_email: str, conversation_id: int) -> None:
    """Accepted as if from another tab or server process."""
    from queueing.services import conversation_accept

    conversation_accept(actor=_demo_agent(agent_email), conversation_id=conversation_id)


def _accepted_demo_chat(agent_email: str, visitor_id: str, name: str) -> dict:
    """A demo-widget conversation the demo agent has accepted."""
    widget = Widget.objects.get(tenant__slug="demo")
    conversation = conversation_start(widget=widget, visitor_id=visitor_id, answers={"name": name}).conversation
    _accept_as_demo_agent(agent_email, conversation.pk)
    return {"id": conversation.pk, "tenant": conversation.tenant_id, "widget": widget.pk}


def _state_of(conversation_id: int) -> tuple[dict, dict]:
    """(conversation state, visitor conversation) as the server announces them now."""
    from chat import events

    conversation = Conversation.objects.get(pk=conversation_id)
    return dict(events.conversation_state(conversation)), dict(events.visitor_conversation(conversation))


def _mark_important(agent_email: str, conversation_id: int) -> None:
    from chat.services import conversation_mark_important

    conversation_mark_important(actor=_demo_agent(agent_email), conversation_id=conversation_id, important=True)


def _pass_through(sockets: list[WebSocketRoute]):
    """A websocket route that forwards everything both ways and keeps the route, so a test can add frames."""

    async def route(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    return route


async def test_the_console_keeps_the_newest_conversation_state_when_an_older_update_arrives_late(
    browser: Browser, demo: DemoSite
):
    """With two server processes an update can overtake an earlier one; the version decides (protocol §5)."""
    chat = await in_thread(_accepted_demo_chat, agent_email=demo.agent_email, visitor_id="v-stale", name="Stella")
    agent = await console_login(browser, demo)
    console = agent.page
    sockets: list[WebSocketRoute] = []
    await console.route_web_socket(re.compile(r"/ws/agent/"), _pass_through(sockets))
    await console.reload()
    tab = console.locator(".cc-tab", has_text="Stella")
    await tab.click()
    pane = console.locator(".cc-chat.is-active")
    star = pane.locator(".js-important")
    await expect(star).to_have_attribute("aria-pressed", "false")

    before, _ = await in_thread(_state_of, conversation_id=chat["id"])
    await in_thread(_mark_important, agent_email=demo.agent_email, conversation_id=chat["id"])
    await expect(star).to_have_attribute("aria-pressed", "true")

    # The update before that one (not important) arrives late, then a visitor typing frame: once the
    # typing shows, the late update was handled, and the star must still be on.
    socket = sockets[-1]
    socket.send(json.dumps({"type": "conversation.updated", "conversation": before}))
    socket.send(json.dumps({"type": "typing", "conversation_id": chat["id"], "side": "visitor", "is_typing": True}))
    await expect(pane.locator(".js-typing")).to_have_text("Stella is typing…")
    await expect(star).to_have_attribute("aria-pressed", "true")
    await expect(tab).to_have_class(re.compile("is-important"))

    # A newer one is applied.
    newest, _ = await in_thread(_state_of, conversation_id=chat["id"])
    socket.send(
        json.dumps(
            {
                "type": "conversation.updated",
                "conversation": {**newest, "important": False, "version": newest["version"] + 1},
            }
        )
    )
    await expect(star).to_have_attribute("aria-pressed", "false")
    assert agent.errors == []
    await agent.context.close()


async def test_the_widget_keeps_the_newest_conversation_when_an_older_update_arrives_late(
    browser: Browser, demo: DemoSite
):
    visitor = await new_person(browser)
    site = visitor.page
    sockets: list[WebSocketRoute] = []
    await site.route_web_socket(re.compile(r"/ws/visitor/"), _pass_through(sockets))
    widget = await open_widget(site, demo)
    await widget.get_by_label("Your name").fill("Vera Version")
    await widget.get_by_label("Your message").fill("Anyone there?")
    await widget.get_by_role("button", name="Leave a message").click()
    await expect(widget.locator(".sb-msg.is-visitor")).to_have_attribute("data-status", "sent")
    conversation_id = await in_thread(
        lambda: Conversation.objects.get(tenant__slug="demo", contact__name="Vera Version").pk
    )

    # Accepted (the update the widget gets), then a second change the visitor is told about.
    await in_thread(_accept_as_demo_agent, agent_email=demo.agent_email, conversation_id=conversation_id)
    subtitle = widget.locator("#sb-subtitle")
    await expect(subtitle).to_have_text(f"Chatting with {demo.agent_name}")
    _, current = await in_thread(_state_of, conversation_id=conversation_id)

    socket = sockets[-1]
    stale = {**current, "agent_name": "Someone Earlier", "version": current["version"] - 1}
    socket.send(json.dumps({"type": "conversation.updated", "conversation": stale}))
    socket.send(
        json.dumps(
            {"type": "typing", "conversation_id": conversation_id, "side": "agent", "name": "Ann", "is_typing": True}
        )
    )
    await expect(widget.locator("#sb-typing")).to_contain_text("Ann is typing…")
    await expect(subtitle).to_have_text(f"Chatting with {demo.agent_name}")

    newer = {**current, "agent_name": "Someone Later", "version": current["version"] + 1}
    socket.send(json.dumps({"type": "conversation.updated", "conversation": newer}))
    await expect(subtitle).to_have_text("Chatting with Someone Later")
    assert visitor.errors == []
    await visitor.context.close()
