"""The front end's native ES modules: the console and the widget load them under the page's CSP, both
through the one shared protocol client (static/js/protocol.js), and every module stays small and safe.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Frame, Page, Request, WebSocketRoute, expect

from chat.models import Message
from tests.browser.conftest import DemoSite, console_login, in_thread, new_person, open_widget

STATIC = Path(__file__).resolve().parents[2] / "static"
SHARED = ["js/protocol.js", "js/http.js", "js/dom.js"]
MAX_CONSOLE_MODULE_LINES = 350

# Runs before any script of every frame: the violations each one reports are kept for the test to read.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


class Loads:
    """The scripts a page asked for (by frame URL), and every console error and failed response."""

    def __init__(self, page: Page) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.problems: list[str] = []
        page.on("request", self.on_request)
        page.on("requestfailed", lambda request: self.problems.append(f"failed: {request.url}"))
        page.on("response", self.on_response)
        page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))

    def on_request(self, request: Request) -> None:
        if request.resource_type == "script":
            self.scripts.setdefault(request.frame.url.split("?")[0], []).append(request.url.split("?")[0])

    async def on_response(self, response) -> None:
        request = response.request
        if request.resource_type != "script":
            return
        content_type = (await response.all_headers()).get("content-type", "")
        # A module is refused by the browser unless it is served as JavaScript (304: the cached copy was).
        if response.status == 304:
            return
        if response.status != 200 or "javascript" not in content_type:
            self.problems.append(f"{request.url}: {response.status} {content_type}")

    def of(self, frame_url: str) -> list[str]:
        return [path for url, paths in self.scripts.items() if url.startswith(frame_url) for path in paths]


def static_paths(urls: list[str]) -> set[str]:
    return {re.sub(r"^https?://[^/]+/static/", "", url) for url in urls if "/static/" in url}


async def csp_violations(frame: Page | Frame) -> list[str]:
    return await frame.evaluate("window.__cspViolations || []")


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.asyncio(loop_scope="session")
async def test_console_and_widget_load_the_shared_modules_cleanly(browser: Browser, demo: DemoSite):
    agent = await console_login(browser, demo)
    console = agent.page
    await console.add_init_script(RECORD_VIOLATIONS)
    console_loads = Loads(console)
    await console.reload()
    await expect(console.locator("#cc-presence")).to_be_enabled()  # the entry ran and the socket said hello
    loaded = static_paths(console_loads.of(f"{demo.url}/console/"))
    assert {"console/main.js", *SHARED} <= loaded, loaded
    assert console_loads.problems == []
    assert await csp_violations(console) == []
    assert agent.errors == []

    visitor = await new_person(browser)
    await visitor.page.add_init_script(RECORD_VIOLATIONS)
    widget_loads = Loads(visitor.page)
    widget = await open_widget(visitor.page, demo)
    await expect(widget.locator("#sb-submit")).to_be_visible()  # the entry built the start form
    loaded = static_paths(widget_loads.of(f"{demo.url}/widget/"))
    assert {"widget/widget.js", *SHARED} <= loaded, loaded
    assert widget_loads.problems == []
    assert await csp_violations(widget) == []
    assert await csp_violations(visitor.page) == []
    assert visitor.errors == []
    await agent.context.close()
    await visitor.context.close()


def _accepted_chat(agent_email: str, visitor_id: str, name: str) -> int:
    """A demo-widget conversation the demo agent has accepted (as if on another tab)."""
    from django.contrib.auth import get_user_model

    from chat.models import Widget
    from chat.selectors import agent_actor_for
    from chat.services.starting import conversation_start
    from queueing.services import conversation_accept

    widget = Widget.objects.get(tenant__slug="demo")
    conversation = conversation_start(widget=widget, visitor_id=visitor_id, answers={"name": name}).conversation
    actor = agent_actor_for(get_user_model().objects.get(email=agent_email))
    assert actor is not None
    conversation_accept(actor=actor, conversation_id=conversation.pk)
    return conversation.pk


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.asyncio(loop_scope="session")
async def test_the_console_resends_an_unacked_reply_after_reconnecting(browser: Browser, demo: DemoSite):
    """The console's sends go through the shared Thread too: a reply lost with the connection is shown at
    once, sent again with the same client_id after the resume, and stored once."""
    await in_thread(_accepted_chat, agent_email=demo.agent_email, visitor_id="v-resend", name="Rita Resend")
    agent = await console_login(browser, demo)
    console = agent.page
    lost: list[str] = []

    async def flaky_network(socket: WebSocketRoute) -> None:
        server = socket.connect_to_server()

        async def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message.send" and frame.get("body") == "Lost in transit" and not lost:
                lost.append(frame["client_id"])
                await socket.close(code=1012, reason="network blip")
                return
            server.send(message)

        socket.on_message(from_page)

    await console.route_web_socket(re.compile(r"/ws/agent/"), flaky_network)
    await console.reload()
    await console.locator(".cc-tab", has_text="Rita Resend").click()
    pane = console.locator(".cc-chat.is-active")
    composer = pane.locator(".js-text")
    await composer.fill("Lost in transit")
    await composer.press("Enter")
    await expect(console.locator("#cc-conn")).to_have_text("Connection lost. Reconnecting…")
    mine = pane.locator(".cc-msg.is-agent").last
    await expect(mine.locator(".cc-bubble")).to_have_text("Lost in transit")
    await expect(mine).to_have_attribute("data-status", "sent")
    await expect(console.locator("#cc-conn")).to_be_hidden()
    await expect(pane.locator(".cc-msg.is-agent .cc-bubble")).to_have_text(["Lost in transit"])

    stored = await in_thread(lambda: list(Message.objects.filter(body="Lost in transit").values_list("client_id")))
    assert stored == [(lost[0],)]
    assert agent.errors == []
    await agent.context.close()


async def console_on_a_paused_clock(browser: Browser, demo: DemoSite):
    """A logged-in console whose agent sockets pass through the test (`opened`, in order) and whose timers
    fire only when the test runs the page's clock: nothing depends on how fast the machine is."""
    agent = await console_login(browser, demo)
    console = agent.page
    opened: list[WebSocketRoute] = []

    async def proxied(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        opened.append(socket)

    await console.clock.install()
    await console.route_web_socket(re.compile(r"/ws/agent/"), proxied)
    await console.reload()
    await expect(console.locator("#cc-presence")).to_be_enabled()
    assert len(opened) == 1
    await console.clock.pause_at(await console.evaluate("Date.now()"))  # from here timers fire only when told
    return agent, console, opened


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.asyncio(loop_scope="session")
async def test_the_console_reconnects_at_once_after_a_role_change_and_after_a_jittered_wait_otherwise(
    browser: Browser, demo: DemoSite
):
    """docs/protocol.md §1: after 4000 (role changed) the client reconnects at once; after any other drop it
    waits its backoff, between half and all of the 1 s first step. The page's clock is Playwright's, so
    nothing here depends on how fast the machine is."""
    agent, console, opened = await console_on_a_paused_clock(browser, demo)
    await opened[-1].close(code=4000, reason="role changed")
    await expect(console.locator("#cc-presence")).to_be_disabled()  # the console saw the close
    await console.clock.run_for(1)  # a reconnect scheduled at once is due; one after a backoff is not
    await expect(console.locator("#cc-presence")).to_be_enabled()  # back, with a new hello
    assert len(opened) == 2

    await opened[-1].close(code=1012, reason="network blip")
    await expect(console.locator("#cc-conn")).to_have_text("Connection lost. Reconnecting…")
    await console.clock.run_for(490)  # under half the first step: no attempt yet
    assert len(opened) == 2
    await console.clock.run_for(520)  # past the whole first step: it has tried again
    await expect(console.locator("#cc-conn")).to_be_hidden()
    assert len(opened) == 3
    assert agent.errors == []
    await agent.context.close()


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.asyncio(loop_scope="session")
async def test_the_console_comes_back_when_a_busy_server_said_and_backs_off_as_before_otherwise(
    browser: Browser, demo: DemoSite
):
    """docs/protocol.md §1: a 4503 whose `unavailable` frame carries `retry_after` (the server was busy) is
    retried then, not after the backoff; a 4503 without it (a service down) backs off as after a drop."""
    agent, console, opened = await console_on_a_paused_clock(browser, demo)

    async def refuse(socket: WebSocketRoute, retry_after: float | None) -> None:
        frame = {"type": "error", "code": "unavailable", "message": "busy", "fields": {}}
        if retry_after is not None:
            frame["retry_after"] = retry_after
        socket.send(json.dumps(frame))
        await socket.close(code=4503, reason="busy")

    await refuse(opened[-1], 7.5)
    await expect(console.locator("#cc-conn")).to_have_text("Connection lost. Reconnecting…")
    await console.clock.run_for(7_400)  # the backoff's 1 s is long past: the server's time is what counts
    assert len(opened) == 1
    await console.clock.run_for(400)  # its time, plus at most 250 ms of jitter
    await expect(console.locator("#cc-conn")).to_be_hidden()
    assert len(opened) == 2

    await refuse(opened[-1], None)  # a service down: the backoff's first step (the socket had opened)
    await expect(console.locator("#cc-conn")).to_have_text("Connection lost. Reconnecting…")
    await console.clock.run_for(490)
    assert len(opened) == 2
    await console.clock.run_for(520)
    await expect(console.locator("#cc-conn")).to_be_hidden()
    assert len(opened) == 3
    assert agent.errors == []
    await agent.context.close()


def test_console_modules_are_each_small_enough_to_read_at_once():
    modules = sorted((STATIC / "console").glob("*.js"))
    assert len(modules) > 5
    lines = {module.name: len(module.read_text().splitlines()) for module in modules}
    assert {name: n for name, n in lines.items() if n > MAX_CONSOLE_MODULE_LINES} == {}


def test_front_end_code_never_writes_markup():
    """Text from people goes in through textContent only: no module may parse a string as HTML."""
    folders = ("js", "console", "widget", "supervision")
    sources = [path for folder in folders for path in (STATIC / folder).glob("*.js")]
    markup_sinks = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment)\b")
    found = [
        f"{path.name}:{n}"
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if markup_sinks.search(line)
    ]
    assert found == []
