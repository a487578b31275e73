"""Settings forms of a channel connector (its secret field is write-only: never rendered with a value) and of
WhatsApp templates."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from channels_switch.models import PROVIDERS_FOR_KIND, ChannelConnector, ConnectorKind, Esp, Provider, WhatsAppTemplate
from channels_switch.services import SECRET_MAX_CHARS
from channels_switch.services.whatsapp_templates import BODY_MAX_CHARS
from contactcenter.models import Tenant
from queueing.models import Queue

TWILIO_ONLY = "Twilio only."
EMAIL_ONLY = "Email service provider only."


class ConnectorForm(forms.Form):
    kind = forms.ChoiceField(label="Channel", choices=ConnectorKind.choices)
    provider = forms.ChoiceField(choices=Provider.choices, widget=forms.RadioSelect)
    enabled = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Off: nothing is sent on this channel and it is never offered to visitors; messages customers "
        "still send to it are kept.",
    )
    from_address = forms.CharField(
        label="Send from",
        max_length=254,
        required=False,
        help_text="Email: the address mail comes from. SMS and WhatsApp: the sending number in international "
        "format, e.g. +44 20 7946 0958 (for WhatsApp, the Twilio WhatsApp sender).",
    )
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.none(),
        required=False,
        empty_label="No queue (every agent sees them)",
        label="Queue for new inbound conversations",
    )
    introduction_template = forms.ModelChoiceField(
        queryset=WhatsAppTemplate.objects.none(),
        required=False,
        empty_label="—",
        label="Introduction template (WhatsApp through Twilio)",
        help_text="WhatsApp lets a business write first only with an approved template, so a chat moved here opens "
        "with this one: {{1}} is your contact center's name, {{2}} the agent looking after the chat. Without it, "
        "visitors are not offered WhatsApp.",
    )
    account_sid = forms.CharField(
        label="Twilio account SID", max_length=34, required=False, help_text=f"{TWILIO_ONLY} Starts with AC."
    )
    messaging_service_sid = forms.CharField(
        label="Twilio messaging service SID",
        max_length=34,
        required=False,
        help_text="SMS through Twilio only, instead of (or beside) a sending number. Starts with MG.",
    )
    esp = forms.ChoiceField(
        label="Email service provider",
        choices=[("", "—"), *Esp.choices],
        required=False,
        help_text=f"{EMAIL_ONLY} Anymail sends through it.",
    )
    inbound_address = forms.CharField(
        label="Inbound address or domain",
        max_length=254,
        required=False,
        help_text=f"{EMAIL_ONLY} Where your provider receives mail, e.g. replies.example.com (each conversation "
        "gets a reply address there) or support@in.example.com (plus-addressed: support+…@). Empty: the send-from "
        "address, plus-addressed.",
    )
    secret = forms.CharField(
        label="Auth token or API key",
        max_length=SECRET_MAX_CHARS,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    webhook_secret = forms.CharField(
        label="Webhook signing key",
        max_length=SECRET_MAX_CHARS,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"{EMAIL_ONLY} The key your provider signs its webhooks with: Mailgun's HTTP webhook signing key, "
        "Mandrill's webhook key, Resend's or MailerSend's signing secret. Not needed for Postmark, Brevo or "
        "SparkPost (the webhook URL carries its own credentials). Stored encrypted, never shown again.",
    )

    def __init__(self, *args: Any, tenant: Tenant, connector: ChannelConnector | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["queue"].queryset = Queue.objects.for_tenant(tenant).order_by("name")  # type: ignore[attr-defined]
        templates = WhatsAppTemplate.objects.for_tenant(tenant).filter(enabled=True).order_by("name", "language")
        self.fields["introduction_template"].queryset = templates  # type: ignore[attr-defined]
        if connector is not None and connector.kind != ConnectorKind.WHATSAPP:
            del self.fields["introduction_template"]
        if connector is None:
            taken = set(ChannelConnector.objects.for_tenant(tenant).values_list("kind", flat=True))
            kind_field = cast(forms.ChoiceField, self.fields["kind"])
            kind_field.choices = [(k, label) for k, label in ConnectorKind.choices if k not in taken]
        else:
            del self.fields["kind"]  # one connector per kind: the kind of a connector never changes
            kind = ConnectorKind(connector.kind)
            provider_field = cast(forms.ChoiceField, self.fields["provider"])
            provider_field.choices = [(p.value, p.label) for p in PROVIDERS_FOR_KIND[kind]]
        if connector is not None and connector.has_secret:
            assert connector.secret_set_at is not None
            when = connector.secret_set_at.strftime("%d %b %Y")
            self.fields["secret"].help_text = (
                f"A secret is stored (set {when}) and is never shown. Leave this empty to keep it; type a new one "
                "to replace it."
            )
        else:
            self.fields[
                "secret"
            ].help_text = (
                "Twilio: the account's auth token. Email: the provider's API key. Stored encrypted, never shown again."
            )

        if connector is not None and connector.has_webhook_secret:
            self.fields[
                "webhook_secret"
            ].help_text = (
                "A signing key is stored and is never shown. Leave this empty to keep it; type a new one to replace it."
            )

    @staticmethod
    def initial_from(connector: ChannelConnector) -> dict[str, Any]:
        return {
            "provider": connector.provider,
            "enabled": connector.enabled,
            "from_address": connector.from_address,
            "queue": connector.queue_id,
            "introduction_template": connector.introduction_template_id,
            "account_sid": connector.account_sid,
            "messaging_service_sid": connector.messaging_service_sid,
            "esp": connector.esp,
            "inbound_address": connector.inbound_address,
        }


class TestMessageForm(forms.Form):
    to = forms.CharField(label="Send to", max_length=254)

    def __init__(self, *args: Any, connector: ChannelConnector, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if connector.kind == ConnectorKind.EMAIL:
            self.fields["to"].help_text = "An email address of yours."
        else:
            self.fields["to"].help_text = "A phone number of yours, in international format (+44 20 7946 0958)."


class WhatsAppTemplateForm(forms.Form):
    """A WhatsApp template as its settings page edits it; the rules (names, placeholders, the Content SID a
    Twilio sender needs) are channels_switch.services.whatsapp_template_save's, shown next to each field."""

    name = forms.CharField(
        max_length=80,
        help_text="The template's name as WhatsApp knows it: lowercase letters, digits and underscores, e.g. "
        "order_update.",
    )
    language = forms.CharField(
        max_length=16, initial="en", help_text="The language WhatsApp approved it in: en, en_US, pt_BR…"
    )
    body = forms.CharField(
        label="Text",
        max_length=BODY_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=f"What the customer reads, at most {BODY_MAX_CHARS} characters. Numbered placeholders {{{{1}}}}, "
        "{{2}} … (from 1, without gaps) are filled in by the agent when sending, one line of text each: "
        "“Hi {{1}}, your order {{2}} has shipped.”",
    )
    content_sid = forms.CharField(label="Twilio Content SID", max_length=34, required=False)
    enabled = forms.BooleanField(required=False, initial=True, help_text="Off: agents are not offered this template.")

    def __init__(self, *args: Any, provider: str | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if provider == Provider.TWILIO:
            self.fields["content_sid"].required = True
            self.fields["content_sid"].help_text = (
                "Your WhatsApp channel sends through Twilio, which sends a template only once WhatsApp has approved "
                "it: create the template in Twilio (Console → Messaging → Content Template Builder) with this same "
                "text and placeholders, submit it for WhatsApp approval, and once approved paste its Content SID "
                "here (HX followed by 32 characters)."
            )
        else:
            self.fields["content_sid"].help_text = (
                "Not needed while your WhatsApp channel uses the sandbox, which approves every template. When it "
                "sends through Twilio, enter the Content SID (HX…) of the template WhatsApp approved there."
            )
