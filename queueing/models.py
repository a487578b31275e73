"""Queueing: queues, their member agents and the widgets routed to them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from chat.models import Widget
from contactcenter.models import TenantOwned


class RoutingMethod(models.TextChoices):
    LONGEST_IDLE = "longest_idle", "Longest idle agent first"
    ROUND_ROBIN = "round_robin", "Round robin"
    LEAST_BUSY = "least_busy", "Least busy agent first"


ANSWER_SECONDS_MAX = 600
CAPACITY_MAX = 1000


class CapacityKind(models.TextChoices):
    FIXED = "fixed", "A fixed number of places"
    PER_AGENT = "per_agent", "Places per online agent"


class Queue(TenantOwned):
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    routing_method = models.CharField(max_length=16, choices=RoutingMethod.choices, default=RoutingMethod.LONGEST_IDLE)
    # How long an agent has to answer an offer before it goes to the next agent and they are paused (0: no limit).
    answer_seconds = models.PositiveSmallIntegerField(default=30, validators=[MaxValueValidator(ANSWER_SECONDS_MAX)])
    # How many visitors may wait in it for an agent: `capacity` places, or `capacity` per online member.
    capacity_kind = models.CharField(max_length=10, choices=CapacityKind.choices, default=CapacityKind.FIXED)
    capacity = models.PositiveSmallIntegerField(default=20, validators=[MaxValueValidator(CAPACITY_MAX)])
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="QueueMember", related_name="queues", blank=True)
    widgets = models.ManyToManyField(Widget, through="QueueRoute", related_name="queues", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="queue_name_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class QueueMember(TenantOwned):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_memberships")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "user"], name="queue_member_unique")]


class QueueRoute(TenantOwned):
    """A widget's chats go to exactly one queue."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="routes")
    widget = models.OneToOneField(Widget, on_delete=models.CASCADE, related_name="route")


class ConversationRoute(TenantOwned):
    """The queue a conversation was routed to, written once when it is routed (web, SMS, email alike).

    Reports, the waiting list and offers read this, never the widget's route of today: re-routing a widget
    does not move past or waiting chats.
    """

    conversation = models.OneToOneField("chat.Conversation", on_delete=models.CASCADE, related_name="queue_route")
    # A deleted queue leaves its name here: past chats still say where they went.
    queue = models.ForeignKey(Queue, null=True, on_delete=models.SET_NULL, related_name="conversation_routes")
    queue_name = models.CharField(max_length=80)
    routed_at = models.DateTimeField(auto_now_add=True)
    # The visitor left the queue before an agent answered: their widget gone past the grace period, or they ended
    # the chat.
    abandoned_at = models.DateTimeField(null=True, blank=True)
    # The queue's last eligible agent went offline while the visitor waited: they were told, and their chat
    # waits on as a message left for later (out of the line; offered when an agent is back).
    unserved_at = models.DateTimeField(null=True, blank=True)
    # The agent who last transferred the chat away: routing does not hand it back to them.
    transferred_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="transferred_routes"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "queue"])]

    def __str__(self) -> str:
        return f"conv {self.conversation_id} → queue {self.queue_id}"


class OfferStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    MISSED = "missed", "Not answered in time"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Offer(TenantOwned):
    """A waiting conversation shown to one agent at a time (the routing engine's choice); it expires at
    `expires_at` (the queue's answer time limit), and then goes to the next agent."""

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="offers")
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="offers")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_offers")
    status = models.CharField(max_length=16, choices=OfferStatus.choices, default=OfferStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The agent who transferred the chat before this offer was made (to this agent or to the queue): the card
    # says so.
    transferred_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            # One row per offer made, so today's offered and missed figures keep every one; at most one pending
            # per agent (routing offers a chat to an agent once, and again only after they declined it a while ago,
            # or by a transfer to them).
            models.UniqueConstraint(
                fields=["conversation", "agent"],
                condition=models.Q(status="pending"),
                name="offer_pending_once_per_agent",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "agent", "status"]),
            models.Index(fields=["expires_at"], name="offer_pending_expiry", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"Offer #{self.pk} conv {self.conversation_id} → {self.agent_id} [{self.status}]"
