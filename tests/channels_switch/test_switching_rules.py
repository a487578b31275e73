"""Which channels a live web chat may move to (seed 000's Limits and Troubleshooting): one function, each rule
on its own, and the same rules read for a widget as a whole."""

from __future__ import annotations

import pytest
from django.utils import timezone

from channels_switch.models import WidgetSwitching
from channels_switch.services import connector_save, switch_diagnostics, switch_options
from chat.models import ConversationStatus
from tests.factories import ContactIdentityFactory, ConversationFactory, WidgetFactory

pytestmark = pytest.mark.django_db

PHONE = "+447911123456"
EMAIL = "ada@example.org"


@pytest.fixture
def widget(tenant):
    widget = WidgetFactory(tenant=tenant)
    WidgetSwitching.objects.create(
        tenant=tenant, widget=widget, show_button=True, channels=["sms", "email", "whatsapp"]
    )
    for kind, sender in (("sms", "+14155550100"), ("whatsapp", "+14155550111"), ("email", "help@shop.example")):
        connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=sender)
    return widget


@pytest.fixture
def chat(tenant, widget):
    conversation = ConversationFactory(tenant=tenant, widget=widget, status=ConversationStatus.OPEN)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=PHONE)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="email", value=EMAIL)
    return conversation


def options(conversation) -> dict[str, tuple[bool, str, str]]:
    return {o.channel: (o.offered, o.address, o.reason) for o in switch_options(conversation=conversation)}


def test_everything_in_place_offers_each_channel_in_the_widgets_order(chat):
    result = switch_options(conversation=chat)
    assert [o.channel for o in result] == ["sms", "email", "whatsapp"]
    assert [(o.offered, o.address) for o in result] == [(True, PHONE), (True, EMAIL), (True, PHONE)]


def test_the_button_off_offers_nothing(chat, widget):
    WidgetSwitching.objects.filter(widget=widget).update(show_button=False)
    assert not any(offered for offered, _, _ in options(chat).values())
    assert "button is off" in options(chat)["sms"][2]


def test_a_widget_without_switching_settings_offers_nothing(tenant):
    conversation = ConversationFactory(tenant=tenant, widget=WidgetFactory(tenant=tenant))
    assert not any(o.offered for o in switch_options(conversation=conversation))


def test_only_the_channels_picked_for_the_widget(chat, widget):
    WidgetSwitching.objects.filter(widget=widget).update(channels=["email"])
    result = options(chat)
    assert result["email"][0] and not result["sms"][0] and not result["whatsapp"][0]
    assert "not among this widget's switch channels" in result["sms"][2]
    assert switch_options(conversation=chat)[0].channel == "email"


def test_a_channel_not_set_up_for_the_tenant_is_never_offered(tenant, chat):
    tenant.channelconnector_set.filter(kind="sms").delete()
    assert options(chat)["sms"][0] is False and "No SMS channel is set up" in options(chat)["sms"][2]


def test_a_channel_turned_off_for_the_tenant_is_never_offered(tenant, chat):
    sms = tenant.channelconnector_set.get(kind="sms")
    connector_save(tenant=tenant, instance=sms, enabled=False)
    assert "turned off" in options(chat)["sms"][2]


def test_no_phone_number_no_sms_or_whatsapp(tenant, widget):
    conversation = ConversationFactory(tenant=tenant, widget=widget, status=ConversationStatus.OPEN)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="email", value=EMAIL)
    result = options(conversation)
    assert result["email"][0] and not result["sms"][0] and not result["whatsapp"][0]
    assert "add a phone field to the pre-chat survey" in result["sms"][2]


def test_a_phone_that_is_not_a_valid_international_number_does_not_count(tenant, widget):
    conversation = ConversationFactory(tenant=tenant, widget=widget, status=ConversationStatus.OPEN)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value="+4479")
    assert "no valid phone number" in options(conversation)["sms"][2]


def test_no_email_no_email_switch(tenant, widget):
    conversation = ConversationFactory(tenant=tenant, widget=widget, status=ConversationStatus.OPEN)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=PHONE)
    assert "no email address" in options(conversation)["email"][2]


def test_an_address_that_opted_out_is_not_offered(tenant, chat):
    chat.contact.identities.filter(kind="phone").update(opted_out_at=timezone.now())
    result = options(chat)
    assert "opted out of SMS" in result["sms"][2] and result["email"][0]


def test_a_closed_chat_offers_nothing(chat):
    chat.status = ConversationStatus.CLOSED
    chat.save()
    assert options(chat)["email"] == (False, "", "The chat has ended.")


def test_one_direction_a_switched_conversation_offers_nothing(chat):
    chat.channel = "sms"
    chat.save()
    assert all(not offered and "one way" in reason for offered, _, reason in options(chat).values())


def test_the_widget_tab_names_every_reason_a_channel_would_never_show(tenant, widget):
    WidgetSwitching.objects.filter(widget=widget).update(channels=["sms", "email"])
    widget.survey_fields = [{"key": "name", "label": "Name", "kind": "name", "required": True}]
    widget.save()
    tenant.channelconnector_set.filter(kind="whatsapp").delete()
    diagnosis = {d.channel: d for d in switch_diagnostics(widget=widget)}
    assert diagnosis["sms"].problems == ["The pre-chat survey has no phone field, so visitors never give the address."]
    assert not diagnosis["email"].ready and any("email" in p for p in diagnosis["email"].problems)
    whatsapp = " ".join(diagnosis["whatsapp"].problems)
    assert "not picked" in whatsapp and "No WhatsApp channel is set up" in whatsapp


def test_the_widget_tab_says_ready_when_nothing_is_missing(widget):
    widget.survey_fields = [
        {"key": "email", "label": "Email", "kind": "email", "required": False},
        {"key": "phone", "label": "Phone", "kind": "phone", "required": False},
    ]
    widget.save()
    assert all(d.ready for d in switch_diagnostics(widget=widget))
