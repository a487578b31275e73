"""The demo tenant: created once with its team, widget, queue and lists; a fresh demo API key on every run.

Like a management command, this composes the services of every app (so it sits outside the
`services.py` import order): seeding goes through the same services as the settings pages and the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from agents.services import agent_create, disposition_save, pause_reason_save, template_save, tenant_setup
from channels_switch.services import connector_save, whatsapp_template_save, widget_switching_save
from chat.models import Widget
from chat.services import widget_save
from contactcenter.models import Membership, Role, Tenant
from contactcenter.services import apikey_rotate_demo, membership_update
from contactcenter.siteurl import server_address, site_url
from queueing.services import queue_configure

DEMO_SLUG = "demo"
DEMO_TENANT_NAME = "Demo Company"
DEMO_WIDGET_NAME = "Website"
DEMO_QUEUE_NAME = "Support"
DEMO_KEY_NAME = "demo"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str
    first_name: str
    last_name: str


# Fixed on purpose: the demo is for trying the product on a laptop, never for a server others reach.
DEMO_LOGINS = (
    DemoLogin(Role.ADMIN, "admin@demo.test", "demo-admin-pass", "Ada", "Admin"),
    DemoLogin(Role.SUPERVISOR, "supervisor@demo.test", "demo-supervisor-pass", "Sam", "Supervisor"),
    DemoLogin(Role.AGENT, "alice@demo.test", "demo-agent-pass", "Alice", "Agent"),
    DemoLogin(Role.AGENT, "bob@demo.test", "demo-agent-pass", "Bob", "Agent"),
)

DEMO_SURVEY_FIELDS = [
    {"key": "name", "label": "Your name", "kind": "name", "required": True},
    {"key": "email", "label": "Email", "kind": "email", "required": False},
    {"key": "phone", "label": "Phone", "kind": "phone", "required": False},
    {"key": "order_number", "label": "Order number", "kind": "text", "required": False},
]

DEMO_TEMPLATES = {
    "Greeting": "Hi {visitor_name|there}, this is {agent_name} from {widget_name}. How can I help you today?",
    "Follow-up by email": "Thanks {visitor_name}! We will follow up at {visitor_email} within one business day.",
    "Closing": "Is there anything else I can help you with, {visitor_name}? Have a great day!",
}
# WhatsApp templates, for writing to a customer more than 24 hours after their last message (the sandbox approves
# every template; a Twilio sender needs each one's Content SID).
DEMO_WHATSAPP_TEMPLATES = {
    "order_update": "Hi, this is Demo Company about your order {{1}}: {{2}}. Reply here if you have a question.",
    "follow_up": "Hi {{1}}, we have an answer to your question. Reply to this message to continue the conversation.",
}
DEMO_DISPOSITIONS = ("Resolved", "Follow-up needed", "Spam")
DEMO_PAUSE_REASONS = (("Lunch", False), ("Training", True), ("Meeting", True))


@dataclass(frozen=True)
class DemoSeed:
    base_url: str
    created: bool  # False when the demo tenant already existed
    api_key: str
    logins: tuple[DemoLogin, ...] = DEMO_LOGINS
    urls: dict[str, str] = field(default_factory=dict)


def demo_origins(host: str, port: int, base_url: str = "") -> list[str]:
    origins = [f"http://{host}:{port}", f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if base_url:  # the demo page opened at SITE_URL embeds the widget from that origin
        parts = urlsplit(base_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return list(dict.fromkeys(origins))


# The demo tenant's sandbox channels and the addresses they send from.
DEMO_SANDBOX_SENDERS = {"sms": "+14155550100", "whatsapp": "+14155550111", "email": "support@demo.example.com"}


@transaction.atomic
def demo_seed(*, host: str | None = None, port: int | str | None = None) -> DemoSeed:
    """Creates the demo tenant when it is absent, keeps its widget open to this server, rotates the demo key."""
    host_or_port_given = bool(host or port)
    host, port_number = server_address(host, port)
    # The printed links name the server's public address: SITE_URL when set, unless --host/--port say otherwise.
    base_url = f"http://{host}:{port_number}" if host_or_port_given else site_url()
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    created = tenant is None
    if tenant is None:
        tenant = _create_demo_tenant(origins=demo_origins(host, port_number, base_url))
    else:
        _ensure_origins(tenant=tenant, origins=demo_origins(host, port_number, base_url))
    issued = apikey_rotate_demo(tenant=tenant, name=DEMO_KEY_NAME)
    urls = {
        "Settings": f"{base_url}/settings/",
        "Agent console": f"{base_url}/console/",
        "Demo web site (widget)": f"{base_url}/demo/",
        **({"Sandbox outbox (SMS, WhatsApp, email)": f"{base_url}/sandbox/"} if settings.SANDBOX_OUTBOX else {}),
        "API docs": f"{base_url}/api/docs/",
        "Health": f"{base_url}/healthz",
    }
    return DemoSeed(base_url=base_url, created=created, api_key=issued.plaintext, urls=urls)


def _create_demo_tenant(*, origins: list[str]) -> Tenant:
    admin, *others = DEMO_LOGINS
    admin_membership = tenant_setup(
        name=DEMO_TENANT_NAME, slug=DEMO_SLUG, admin_email=admin.email, admin_password=admin.password
    )
    tenant = admin_membership.tenant
    membership_update(membership=admin_membership, first_name=admin.first_name, last_name=admin.last_name)
    members: list[Membership] = [
        agent_create(
            tenant=tenant,
            email=login.email,
            role=login.role,
            password=login.password,
            first_name=login.first_name,
            last_name=login.last_name,
        )
        for login in others
    ]
    widget = widget_save(
        tenant=tenant,
        name=DEMO_WIDGET_NAME,
        title="Chat with Demo Company",
        greeting="Hi! Ask us anything about your order.",
        allowed_origins=origins,
        survey_enabled=True,
        survey_fields=DEMO_SURVEY_FIELDS,
        # Always open, so `make run` offers the chat at any hour (Settings → Widgets → Hours & display to try).
        hours_enabled=False,
    )
    queue = queue_configure(
        tenant=tenant,
        name=DEMO_QUEUE_NAME,
        description="Questions from the web site.",
        members=[m.user for m in members],
        widgets=[widget],
    )
    # Every channel on the sandbox: try SMS, WhatsApp and email with no account anywhere (/sandbox/).
    for kind, sender in DEMO_SANDBOX_SENDERS.items():
        connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=sender, queue=queue)
    # The chat's "Continue elsewhere" button: a visitor who gave a phone number or an email moves the chat there;
    # and a visitor who closes the tab with a reply unread is moved there by the system a minute later.
    widget_switching_save(
        tenant=tenant,
        widget=widget,
        show_button=True,
        channels=["sms", "whatsapp", "email"],
        dead_connection=True,
        dead_connection_seconds=60,
    )
    for name, body in DEMO_TEMPLATES.items():
        template_save(tenant=tenant, name=name, body=body)
    for name, body in DEMO_WHATSAPP_TEMPLATES.items():
        whatsapp_template_save(tenant=tenant, name=name, language="en", body=body)
    for position, name in enumerate(DEMO_DISPOSITIONS):
        disposition_save(tenant=tenant, name=name, position=position)
    for name, paid in DEMO_PAUSE_REASONS:
        pause_reason_save(tenant=tenant, name=name, paid=paid)
    return tenant


def _ensure_origins(*, tenant: Tenant, origins: list[str]) -> None:
    """A later run on another HOST/PORT still lets the demo page embed the widget (adds, never removes)."""
    widget = Widget.objects.for_tenant(tenant).filter(name=DEMO_WIDGET_NAME).first()
    if widget is None:
        return
    missing = [origin for origin in origins if origin not in widget.allowed_origins]
    if missing:
        widget_save(tenant=tenant, instance=widget, allowed_origins=[*widget.allowed_origins, *missing])


def demo_summary(seed: DemoSeed) -> str:
    """The block `seed_demo` prints: where to go, who to sign in as, and a key to try the API with."""
    width = max(len(label) for label in seed.urls)
    lines = [
        "Switchboard demo " + ("created" if seed.created else "already present: kept as it is"),
        "",
        "Open:",
        *(f"  {label.ljust(width)}  {url}" for label, url in seed.urls.items()),
        "",
        "Sign in as:",
        *(f"  {login.role:<10}  {login.email:<22}  password: {login.password}" for login in seed.logins),
        "",
        f"API key (new on every run; the previous '{DEMO_KEY_NAME}' key is now revoked):",
        f"  {seed.api_key}",
        "",
        "Try it:",
        f'  curl -H "Authorization: Bearer {seed.api_key}" {seed.base_url}/api/v1/conversations/',
    ]
    return "\n".join(lines)
