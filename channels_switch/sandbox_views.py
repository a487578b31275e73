"""The sandbox outbox page (/sandbox/): what sandbox channels "sent", shown as the customer receives it, and a
way to answer as that customer (or write first, as a new one). Members of the tenant only; off unless
settings.SANDBOX_OUTBOX (DEBUG's default)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from channels_switch.models import ChannelConnector, ConnectorKind, Provider, SandboxDirection, SandboxMessage
from channels_switch.sandbox import (
    SANDBOX_MEDIA_MAX_BYTES,
    sandbox_customer_writes,
    sandbox_media_keep,
    sandbox_threads,
)
from channels_switch.services import delivery_status_update
from channels_switch.webhooks import sandbox_reply
from contactcenter.errors import ApplicationError
from contactcenter.models import IdentityKind, Membership
from contactcenter.services import identity_normalise


class CustomerMessageForm(forms.Form):
    channel = forms.ChoiceField(choices=ConnectorKind.choices)
    address = forms.CharField(max_length=254, label="From (the customer)")
    subject = forms.CharField(max_length=300, required=False, label="Subject (email)")
    body = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 2}), label="Message", required=False)
    answers = forms.IntegerField(required=False, widget=forms.HiddenInput)
    file = forms.FileField(required=False, label="A photo or file (optional)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("body") or "").strip() and not data.get("file"):
            raise forms.ValidationError("Write a message or attach a file.")
        return data

    def clean_file(self) -> UploadedFile | None:
        upload = self.cleaned_data.get("file")
        if upload is not None and upload.size > SANDBOX_MEDIA_MAX_BYTES:
            raise forms.ValidationError(f"At most {SANDBOX_MEDIA_MAX_BYTES // (1024 * 1024)} MB.")
        return upload


@method_decorator(never_cache, name="dispatch")
class SandboxView(View):
    membership: Membership

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.SANDBOX_OUTBOX:
            raise Http404("The sandbox outbox is off (SANDBOX_OUTBOX).")
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = getattr(request.user, "membership", None)
        if membership is None:
            raise Http404("Not a member of a contact center.")
        self.membership = membership
        return super().dispatch(request, *args, **kwargs)

    def connectors(self) -> dict[str, ChannelConnector]:
        sandbox = ChannelConnector.objects.for_tenant(self.membership.tenant_id).filter(provider=Provider.SANDBOX)
        return {connector.kind: connector for connector in sandbox}


class SandboxOutboxView(SandboxView):
    def get(self, request: HttpRequest) -> HttpResponse:
        connectors = self.connectors()
        form = CustomerMessageForm()
        channel_field: Any = form.fields["channel"]
        channel_field.choices = [(k, ConnectorKind(k).label) for k in connectors]
        context = {
            "threads": sandbox_threads(tenant_id=self.membership.tenant_id),
            "connectors": connectors,
            "form": form,
            "labels": dict(ConnectorKind.choices),
        }
        return render(request, "sandbox/outbox.html", context)


class SandboxCustomerWritesView(SandboxView):
    """POST: a message as the customer, sent in through the sandbox webhook like a provider's."""

    def post(self, request: HttpRequest) -> HttpResponse:
        form = CustomerMessageForm(request.POST, request.FILES)
        back = redirect("sandbox-outbox")
        if not form.is_valid():
            messages.error(request, "Choose a channel, the customer's address and a message or a file.")
            return back
        connector = self.connectors().get(form.cleaned_data["channel"])
        if connector is None:
            messages.error(request, "That channel does not use the sandbox (Settings → Channels).")
            return back
        kind = IdentityKind.EMAIL if connector.kind == ConnectorKind.EMAIL else IdentityKind.PHONE
        try:
            sender = identity_normalise(kind=kind, value=form.cleaned_data["address"])
        except ApplicationError as exc:
            messages.error(request, exc.fields.get("value", [exc.message])[0])
            return back
        params = self.mail_fields(connector, form.cleaned_data)
        upload = form.cleaned_data.get("file")
        written = sandbox_customer_writes(
            connector=connector,
            sender=sender,
            body=form.cleaned_data["body"],
            subject=params.get("Subject", ""),
            filename=upload.name if upload else "",
        )
        body = written.body + params.pop("Quoted", "")
        params.update({"MessageSid": written.provider_id, "From": sender, "Body": body, "NumMedia": "0"})
        if upload is not None:  # held by the sandbox as Twilio holds a customer's photo, fetched after
            params.update(
                NumMedia="1",
                MediaUrl0=sandbox_media_keep(connector, upload),
                MediaContentType0=upload.content_type or "application/octet-stream",
                MediaFilename0=upload.name or "file",
            )
        answer = sandbox_reply(connector, params)
        if answer.status_code >= 300:
            SandboxMessage.objects.filter(pk=written.pk).delete()
            messages.error(request, f"The webhook refused it: {answer.content.decode()[:200]}")
        else:
            messages.success(
                request, f"Sent in as {sender}: it reaches the console like a real {connector.get_kind_display()}."
            )
        return back

    def mail_fields(self, connector: ChannelConnector, data: dict[str, Any]) -> dict[str, str]:
        """Where the customer's message goes: the connector's address; an email answering a sandbox mail goes,
        as a mail client sends it, to that mail's Reply-To, with In-Reply-To and its subject."""
        fields = {"To": connector.from_address}
        if connector.kind != ConnectorKind.EMAIL:
            return fields
        fields["Subject"] = data.get("subject") or ""
        answered = (
            SandboxMessage.objects.for_tenant(self.membership.tenant_id)
            .filter(pk=data.get("answers") or 0, direction=SandboxDirection.OUT, channel=ConnectorKind.EMAIL)
            .first()
        )
        if answered is not None:
            fields["To"] = answered.reply_to or answered.from_address
            fields["In-Reply-To"] = answered.message_id
            fields["Subject"] = fields["Subject"] or f"Re: {answered.subject}"
            # As a mail client answers: the earlier mail quoted below (the inbound side strips it again).
            when = answered.created_at.strftime("%a, %d %b %Y at %H:%M")
            quoted = "\n".join(f"> {line}" for line in answered.body.splitlines())
            fields["Quoted"] = f"\n\nOn {when}, {answered.from_address} wrote:\n{quoted}\n"
        return fields


class SandboxMarkReadView(SandboxView):
    """POST: the customer read a message (the sandbox reports it as a provider's status callback would)."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        sent = (
            SandboxMessage.objects.for_tenant(self.membership.tenant_id)
            .filter(pk=pk, direction=SandboxDirection.OUT)
            .select_related("delivery__connector")
            .first()
        )
        if sent is None or sent.delivery is None or sent.delivery.connector is None:
            raise Http404("No such message.")
        delivery_status_update(connector=sent.delivery.connector, provider_id=sent.provider_id, status="read")
        return redirect("sandbox-outbox")
