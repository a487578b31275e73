"""Settings pages of queues: list, create/edit with members and routed widgets, delete."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.db.models import Count, Model, QuerySet

from contactcenter.settings_views import SettingsDeleteView, SettingsFormView, SettingsListView
from queueing.forms import QueueForm
from queueing.models import Queue
from queueing.services import queue_configure, queue_delete


class QueuesMixin:
    section: ClassVar[str] = "queues"
    list_title: ClassVar[str] = "Queues"
    model: ClassVar[type[Model]] = Queue
    noun: ClassVar[str] = "queue"
    list_url_name: ClassVar[str] = "settings-queues-list"


class QueueListView(QueuesMixin, SettingsListView):
    template_name = "settings/queues_list.html"

    def get_queryset(self) -> QuerySet[Any]:
        return (
            super()
            .get_queryset()
            .annotate(member_count=Count("memberships", distinct=True))
            .prefetch_related("widgets")
        )


class QueueFormView(QueuesMixin, SettingsFormView):
    form_class = QueueForm

    def make_form(self, data: Any = None) -> forms.Form:
        initial = QueueForm.initial_from(self.object) if self.object is not None else None
        return QueueForm(data=data, initial=initial, tenant=self.tenant, queue=self.object)

    def save(self, form: forms.Form) -> Queue:
        data = dict(form.cleaned_data)
        return queue_configure(
            tenant=self.tenant,
            instance=self.object,
            members=list(data.pop("members")),
            widgets=list(data.pop("widgets")),
            **data,
        )


class QueueDeleteView(QueuesMixin, SettingsDeleteView):
    def delete(self, obj: Any) -> None:
        queue_delete(queue=obj)
