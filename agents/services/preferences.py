"""An agent's own console preferences: when the console reminds them of a chat they are not looking at."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from agents.models import AgentProfile, ReminderMode
from contactcenter.errors import ApplicationError

# The shortest wait is short enough to try the reminder out; the longest is an hour.
REMINDER_SECONDS_MIN = 1
REMINDER_SECONDS_MAX = 3600


@transaction.atomic
def agent_reminders_set(*, tenant_id: int, user: User, mode: str, seconds: int | None = None) -> AgentProfile:
    """Sets how the console reminds this agent of an open chat they are not looking at: on every new message,
    once `seconds` after the customer's first unanswered message, or never. `seconds` left out keeps the wait
    chosen before (it only matters for `after_first_message`, but is kept for a later switch back to it)."""
    if mode not in ReminderMode.values:
        choices = ", ".join(ReminderMode.values)
        message = f"Reminders are one of {choices}."
        raise ApplicationError("invalid", message, {"reminder_mode": [message]})
    if seconds is not None and not REMINDER_SECONDS_MIN <= seconds <= REMINDER_SECONDS_MAX:
        message = f"The wait is between {REMINDER_SECONDS_MIN} and {REMINDER_SECONDS_MAX} seconds."
        raise ApplicationError("invalid", message, {"reminder_seconds": [message]})
    profile = AgentProfile.objects.for_tenant(tenant_id).select_for_update().filter(user=user).first()
    if profile is None:
        raise ApplicationError("forbidden", "This account has no agent profile in this team.", status=403)
    profile.reminder_mode = mode
    if seconds is not None:
        profile.reminder_seconds = seconds
    profile.save(update_fields=["reminder_mode", "reminder_seconds"])
    return profile
