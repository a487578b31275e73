"""Settings form of a queue: its name, how it routes, its member agents and the widgets routed to it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from chat.models import Widget
from contactcenter.models import Tenant, user_display_name
from queueing.models import ANSWER_SECONDS_MAX, CAPACITY_MAX, CapacityKind, Queue, QueueRoute, RoutingMethod


class MemberChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{user_display_name(obj)} · {obj.membership.get_role_display()}"


class WidgetChoiceField(forms.ModelMultipleChoiceField):
    def __init__(self, *args: Any, queue: Queue | None = None, routes: dict[int, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.queue = queue
        self.routes = routes or {}

    def label_from_instance(self, obj: Any) -> str:
        current = self.routes.get(obj.pk)
        if current and (self.queue is None or current != self.queue.name):
            return f"{obj.name} (now routed to {current}: moves here)"
        return str(obj.name)


class QueueForm(forms.Form):
    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    routing_method = forms.ChoiceField(
        choices=RoutingMethod.choices,
        initial=RoutingMethod.LONGEST_IDLE,
        label="Who gets the next chat",
        help_text="A chat is offered to one available member at a time, in this order.",
    )
    answer_seconds = forms.IntegerField(
        min_value=0,
        max_value=ANSWER_SECONDS_MAX,
        initial=30,
        label="Answer time limit (seconds)",
        help_text="An agent who does not answer an offer in time is paused (Missed offer) and the chat goes to "
        "the next agent. 0: no limit.",
    )
    capacity_kind = forms.ChoiceField(
        choices=CapacityKind.choices,
        initial=CapacityKind.FIXED,
        label="Waiting places",
        help_text="How many visitors may wait for an agent; when it is full, visitors are offered the message form.",
    )
    capacity = forms.IntegerField(
        min_value=0,
        max_value=CAPACITY_MAX,
        initial=20,
        label="Places (in all, or per online agent)",
        help_text="e.g. 2 per agent with 4 agents online: 8 places. 0: no one waits.",
    )

    def __init__(self, *args: Any, tenant: Tenant, queue: Queue | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        users = (
            get_user_model()
            .objects.filter(membership__tenant=tenant, is_active=True)
            .select_related("membership")
            .order_by("first_name", "last_name", "username")
        )
        routes = {
            route.widget_id: route.queue.name for route in QueueRoute.objects.for_tenant(tenant).select_related("queue")
        }
        self.fields["members"] = MemberChoiceField(
            queryset=users,
            required=False,
            widget=forms.CheckboxSelectMultiple,
            label="Member agents",
            help_text="Chats in this queue are offered to these teammates.",
        )
        self.fields["widgets"] = WidgetChoiceField(
            queryset=Widget.objects.for_tenant(tenant).order_by("name"),
            required=False,
            widget=forms.CheckboxSelectMultiple,
            label="Widgets routed here",
            help_text="A widget sends its chats to one queue.",
            queue=queue,
            routes=routes,
        )

    @staticmethod
    def initial_from(queue: Queue) -> dict[str, Any]:
        return {
            "name": queue.name,
            "description": queue.description,
            "routing_method": queue.routing_method,
            "answer_seconds": queue.answer_seconds,
            "capacity_kind": queue.capacity_kind,
            "capacity": queue.capacity,
            "members": list(queue.members.values_list("pk", flat=True)),
            "widgets": list(queue.widgets.values_list("pk", flat=True)),
        }
