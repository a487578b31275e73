"""Canned templates: saving and deleting them (open consoles are told), and their placeholders.

`{visitor_email}` is filled in when an agent inserts the template; `{visitor_name|there}` declares the text
used when the chat has no value for it. Anything in braces that looks like a name counts as a placeholder
(`{Visitor_Name}`, `{ visitor_name }`, `{visitor.name}`), so a typo is refused when the template is saved
instead of reaching a customer as typed. The console fills them by the same rules
(static/console/templates.js: its PLACEHOLDER pattern and renderTemplate); tests/agents/test_templates.py
pins both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from agents.models import CannedTemplate
from agents.services._common import delete_unless_protected
from contactcenter.errors import ApplicationError
from contactcenter.models import Tenant
from contactcenter.realtime import publish_on_commit, tenant_agents_group
from contactcenter.services import validated_save


@transaction.atomic
def template_save(*, tenant: Tenant, instance: CannedTemplate | None = None, **fields: Any) -> CannedTemplate:
    """Creates or changes a canned template; unknown placeholders are refused; open consoles are told."""
    if "body" in fields:
        template_placeholders_check(str(fields["body"]))
    template = validated_save(instance or CannedTemplate(tenant=tenant), **fields)
    publish_on_commit(
        group=tenant_agents_group(template.tenant_id),
        event={"type": "template.updated", "template": template_data(template)},
    )
    return template


def template_data(template: CannedTemplate) -> dict[str, Any]:
    """A template as the console gets it (`hello.templates`, `template.updated`)."""
    return {"id": template.pk, "name": template.name, "body": template.body}


def template_delete(*, template: CannedTemplate) -> None:
    template_id, tenant_id = template.pk, template.tenant_id
    delete_unless_protected(template, "This template is in use.")
    publish_on_commit(
        group=tenant_agents_group(tenant_id), event={"type": "template.deleted", "template_id": template_id}
    )


TEMPLATE_PLACEHOLDERS = ("visitor_name", "visitor_email", "agent_name", "widget_name")


PLACEHOLDER_RE = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|([^{}|\n]*))?\}")


FALLBACK_MAX_CHARS = 100


def _placeholder_list() -> str:
    return ", ".join("{" + name + "}" for name in TEMPLATE_PLACEHOLDERS)


def template_placeholders_check(body: str) -> None:
    """Refuses a body with an unknown placeholder (or an overlong fallback), naming the ones there are."""
    unknown: list[str] = []
    for match in PLACEHOLDER_RE.finditer(body):
        name, fallback = match.group(1), match.group(2)
        exact = "{" + name + ("" if fallback is None else "|" + fallback) + "}"
        if (name not in TEMPLATE_PLACEHOLDERS or match.group(0) != exact) and match.group(0) not in unknown:
            unknown.append(match.group(0))
        elif match.group(2) is not None and len(match.group(2)) > FALLBACK_MAX_CHARS:
            message = f"A fallback ({match.group(0)[:40]}…) is at most {FALLBACK_MAX_CHARS} characters."
            raise ApplicationError("invalid", message, {"body": [message]})
    if unknown:
        which = ", ".join(unknown)
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        message = (
            f"Unknown {noun} {which}. You can use {_placeholder_list()}; "
            "add a fallback for a value a chat may lack: {visitor_name|there}."
        )
        raise ApplicationError("invalid", message, {"body": [message]})


@dataclass(frozen=True)
class RenderedTemplate:
    text: str
    # Placeholders with no value and no fallback: left in `text` as typed, for the agent to fill in.
    missing: tuple[str, ...]


def template_render(*, body: str, context: dict[str, str]) -> RenderedTemplate:
    """Fills placeholders from `context` (no str.format: no attribute access).

    An empty value takes the placeholder's fallback; without one the placeholder stays as typed and is
    reported in `missing`, never silently dropped ("follow up at  within one business day").
    """
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = (context.get(match.group(1)) or "").strip()
        if value:
            return value
        if match.group(2) is not None:
            return match.group(2).strip()
        if match.group(0) not in missing:
            missing.append(match.group(0))
        return match.group(0)

    return RenderedTemplate(text=PLACEHOLDER_RE.sub(fill, body), missing=tuple(missing))
