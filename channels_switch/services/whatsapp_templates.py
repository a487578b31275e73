"""WhatsApp templates: a tenant's approved message templates (Settings → Channels) and sending one on a WhatsApp
conversation, the one way a business writes to a customer whose last message is more than 24 hours old.

A template's body holds numbered placeholders, {{1}}, {{2}} …, as WhatsApp and Twilio's Content API number them.
The agent fills each with one line of text; the message stored in the conversation is the rendered text (what the
customer reads), and its delivery row carries the template, its variables and the Content SID, so the relay sends
it the way Twilio takes a template (`ContentSid` + `ContentVariables`) and the sandbox shows the rendered text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from channels_switch.models import ConnectorKind, Provider, WhatsAppTemplate
from channels_switch.selectors import whatsapp_connector_provider
from chat.models import Message
from chat.selectors import AgentActor, conversation_get_for
from chat.services import PostResult, message_post
from contactcenter.errors import ApplicationError
from contactcenter.models import Tenant
from contactcenter.services import validated_save

BODY_MAX_CHARS = 1024  # WhatsApp's limit for a template's body
VARIABLE_MAX_CHARS = 200
NAME = re.compile(r"[a-z0-9_]{1,80}")  # WhatsApp's template names: lowercase letters, digits, underscores
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")  # en, en_US, pt_BR, fil
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
# Anything in double braces is meant as a placeholder, so "{{ name }}" or "{{01}}" is refused on save instead of
# reaching a customer as typed.
BRACED = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
NUMBER = re.compile(r"[1-9][0-9]*")
# WhatsApp refuses a variable with a line break, a tab or more than four spaces in a row (error 132018).
UNSENDABLE_VARIABLE = re.compile(r"[\r\n\t\v\f\u2028\u2029]| {4,}")


@dataclass(frozen=True)
class TemplateSend:
    """What a message sent as a WhatsApp template asks the relay (`delivery_create`) beyond its rendered text."""

    template_id: int
    variables: Mapping[str, str] = field(default_factory=dict)
    content_sid: str = ""


def _invalid(name: str, message: str) -> ApplicationError:
    return ApplicationError("invalid", message, {name: [message]})


def whatsapp_placeholder_count(body: str) -> int:
    """How many variables a template body takes ({{1}} … {{n}}); refuses a placeholder that is not a number, a
    gap in the numbers and a brace left open, naming what to write instead."""
    found = BRACED.findall(body)
    wrong = [f"{{{{{inner}}}}}" for inner in found if not NUMBER.fullmatch(inner)]
    if wrong:
        raise _invalid(
            "body", f"Placeholders are numbers in double braces, {{{{1}}}}, {{{{2}}}} …: {wrong[0]} is not one."
        )
    if "{{" in BRACED.sub("", body) or "}}" in BRACED.sub("", body):
        raise _invalid("body", "A placeholder is written {{1}}, with two braces on each side: check the braces.")
    numbers = sorted({int(inner) for inner in found})
    expected = list(range(1, len(numbers) + 1))
    if numbers != expected:
        missing = next(n for n in range(1, numbers[-1] + 1) if n not in numbers)
        raise _invalid("body", f"Placeholders are numbered from {{{{1}}}} without gaps: {{{{{missing}}}}} is missing.")
    return len(numbers)


def whatsapp_template_render(*, body: str, variables: Mapping[str, str]) -> str:
    """The body with each {{n}} replaced by variables["n"] (checked beforehand: every number has its value)."""
    return BRACED.sub(lambda match: variables[match.group(1)], body)


def _check(template: WhatsAppTemplate, *, provider: str | None) -> None:
    template.name = template.name.strip()
    if not NAME.fullmatch(template.name):
        raise _invalid(
            "name", "A WhatsApp template's name is lowercase letters, digits and underscores, e.g. order_update."
        )
    template.language = template.language.strip()
    if not LANGUAGE.fullmatch(template.language):
        raise _invalid("language", "Enter a WhatsApp language code, such as en, en_US or pt_BR.")
    if not template.body.strip():
        raise _invalid("body", "Enter the template's text.")
    if len(template.body) > BODY_MAX_CHARS:
        raise _invalid("body", f"A WhatsApp template's text is at most {BODY_MAX_CHARS} characters.")
    whatsapp_placeholder_count(template.body)
    template.content_sid = template.content_sid.strip()
    if template.content_sid and not CONTENT_SID.fullmatch(template.content_sid):
        raise _invalid("content_sid", "A Content SID is HX followed by 32 characters, 0-9 and a-f.")
    if provider == Provider.TWILIO and not template.content_sid:
        raise _invalid(
            "content_sid",
            "Your WhatsApp channel sends through Twilio, which sends a template by its Content SID: enter the HX… "
            "SID of this template once WhatsApp has approved it (Twilio Console → Messaging → Content Template "
            "Builder).",
        )
    clash = WhatsAppTemplate.objects.for_tenant(template.tenant_id).filter(
        name=template.name, language=template.language
    )
    if template.pk is not None:
        clash = clash.exclude(pk=template.pk)
    if clash.exists():
        raise _invalid("name", f"There is a template {template.name} in {template.language} already.")


@transaction.atomic
def whatsapp_template_save(
    *, tenant: Tenant, instance: WhatsAppTemplate | None = None, **fields: Any
) -> WhatsAppTemplate:
    """Creates or changes a WhatsApp template: a WhatsApp name and language code, a body of at most 1,024
    characters with placeholders numbered {{1}} … {{n}} without gaps, and (required when the tenant's WhatsApp
    channel is on Twilio) the Content SID of the template WhatsApp approved."""
    template = instance or WhatsAppTemplate(tenant=tenant)
    for name, value in fields.items():
        setattr(template, name, value)
    _check(template, provider=whatsapp_connector_provider(tenant_id=tenant.pk))
    return validated_save(template)


@transaction.atomic
def whatsapp_template_delete(*, template: WhatsAppTemplate) -> None:
    """Deletes a template; messages already sent with it keep their text (their delivery keeps its Content SID)."""
    template.delete()


def _clean_variables(template: WhatsAppTemplate, variables: Mapping[str, str]) -> dict[str, str]:
    """Exactly the template's variables, "1" … "n", each one line of 1 to VARIABLE_MAX_CHARS characters."""
    count = whatsapp_placeholder_count(template.body)
    wanted = [str(n) for n in range(1, count + 1)]
    errors: dict[str, list[str]] = {}
    for key in variables:
        if key not in wanted:
            errors[f"variables.{key}"] = [f"This template has no {{{{{key}}}}}."]
    cleaned: dict[str, str] = {}
    for key in wanted:
        value = (variables.get(key) or "").strip()
        if not value:
            errors[f"variables.{key}"] = [f"Fill in {{{{{key}}}}}."]
        elif len(value) > VARIABLE_MAX_CHARS:
            errors[f"variables.{key}"] = [f"{{{{{key}}}}} is at most {VARIABLE_MAX_CHARS} characters."]
        elif UNSENDABLE_VARIABLE.search(value):
            errors[f"variables.{key}"] = [
                f"{{{{{key}}}}} is one line: WhatsApp refuses line breaks, tabs and more than three spaces in a row."
            ]
        cleaned[key] = value
    if errors:
        first = next(iter(errors.values()))[0]
        raise ApplicationError("invalid", first, errors)
    return cleaned


@transaction.atomic
def whatsapp_template_send(
    *,
    actor: AgentActor,
    conversation_id: int,
    template_id: int,
    variables: Mapping[str, str],
    client_id: str | None,
) -> PostResult:
    """An agent sends one of the tenant's WhatsApp templates on a WhatsApp conversation they may write in: the
    agent's message is the rendered text, stored (once per client_id, as any message) with a delivery that the
    relay sends as the template. Exempt from the 24-hour rule, which is what templates are for; not from the
    customer's opt-out, nor from waiting for the customer to answer from an address typed into a form after a
    switch (that rule is about whose number it is, not about the window)."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True)
    if (
        client_id
        and Message.objects.for_tenant(actor.tenant_id)
        .filter(conversation_id=conversation.pk, client_id=client_id)
        .exists()
    ):
        # A resend of a stored send: chat answers it with the stored message, whatever changed since.
        return message_post(actor=actor, conversation_id=conversation.pk, body="", client_id=client_id)
    if conversation.channel != ConnectorKind.WHATSAPP:
        raise _invalid("template", "Templates are sent on WhatsApp conversations only.")
    template = WhatsAppTemplate.objects.for_tenant(actor.tenant_id).filter(pk=template_id).first()
    if template is None:
        raise _invalid("template", "There is no such WhatsApp template.")
    if not template.enabled:
        raise _invalid("template", f"The template {template.name} is turned off (Settings → Channels).")
    if whatsapp_connector_provider(tenant_id=actor.tenant_id) == Provider.TWILIO and not template.content_sid:
        raise _invalid(
            "template",
            f"The template {template.name} has no Twilio Content SID: WhatsApp has not approved it for this sender.",
        )
    values = _clean_variables(template, variables)
    return message_post(
        actor=actor,
        conversation_id=conversation.pk,
        body=whatsapp_template_render(body=template.body, variables=values),
        client_id=client_id,
        relay=TemplateSend(template_id=template.pk, variables=values, content_sid=template.content_sid),
    )
