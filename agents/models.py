"""Agents: profile and presence, pause reasons, canned templates and dispositions."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from contactcenter.models import TenantOwned


class Presence(models.TextChoices):
    ONLINE = "online", "Online"
    AWAY = "away", "Away"
    PAUSED = "paused", "Paused"
    OFFLINE = "offline", "Offline"


class ReminderMode(models.TextChoices):
    """When the console reminds its agent of a chat they are not looking at (seed 002's reminder toast)."""

    EVERY_MESSAGE = "every_message", "On every new message"
    AFTER_FIRST_MESSAGE = "after_first_message", "When a customer waits for a reply"
    OFF = "off", "Off"


REMINDER_SECONDS_DEFAULT = 60


class PauseReason(TenantOwned):
    # The reasons the product itself pauses an agent for (never picked by the agent): "missed_offer".
    MISSED_OFFER = "missed_offer"

    name = models.CharField(max_length=80)
    paid = models.BooleanField(default=True, help_text="Whether time in this pause counts as paid time.")
    is_active = models.BooleanField(default=True)
    system = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="pause_reason_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentProfile(TenantOwned):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile")
    max_chats = models.PositiveSmallIntegerField(default=3)
    presence = models.CharField(max_length=16, choices=Presence.choices, default=Presence.OFFLINE)
    pause_reason = models.ForeignKey(PauseReason, null=True, blank=True, on_delete=models.SET_NULL)
    presence_changed_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Open console sockets; presence falls to offline once this is 0 past the grace period.
    open_sockets = models.PositiveIntegerField(default=0)
    # Routing's order among eligible agents: longest idle (since they came online, took or ended a chat),
    # round robin (the least recently offered a chat first).
    idle_since = models.DateTimeField(null=True, blank=True)
    last_offered_at = models.DateTimeField(null=True, blank=True)
    # The agent's own choice of reminders in the console (agents.services.agent_reminders_set).
    reminder_mode = models.CharField(max_length=24, choices=ReminderMode.choices, default=ReminderMode.EVERY_MESSAGE)
    reminder_seconds = models.PositiveSmallIntegerField(default=REMINDER_SECONDS_DEFAULT)

    class Meta:
        indexes = [models.Index(fields=["tenant", "presence"])]

    def __str__(self) -> str:
        return f"{self.user} [{self.presence}]"


class CannedTemplate(TenantOwned):
    """A reply an agent inserts; `{visitor_name}`, `{agent_name}`, `{widget_name}` are filled in."""

    name = models.CharField(max_length=80)
    body = models.TextField(max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="template_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Disposition(TenantOwned):
    """The outcome an agent picks before closing a conversation."""

    name = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="disposition_name_unique")]
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name
