"""The widget's Channel Switching tab: the button and the channels in the visitor's order, saved through the
service, and the diagnostics that say, for this widget as it is now, why each channel is or is not offered."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels_switch.models import WidgetSwitching
from channels_switch.services import connector_save, widget_switching_save
from contactcenter.errors import ApplicationError
from tests.factories import WidgetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def widget(tenant):
    return WidgetFactory(
        tenant=tenant,
        survey_enabled=True,
        survey_fields=[{"key": "email", "label": "Email", "kind": "email", "required": True}],
    )


def url(widget):
    return reverse("settings-widgets-switching", kwargs={"pk": widget.pk})


def test_saving_keeps_the_button_and_the_channels_in_the_chosen_order(admin_client, widget):
    response = admin_client.post(
        url(widget),
        {
            "show_button": "on",
            "sms_allowed": "on",
            "sms_position": "2",
            "email_allowed": "on",
            "email_position": "1",
            "whatsapp_position": "3",
            "dead_connection_seconds": "120",
        },
    )
    assert response.status_code == 302
    switching = WidgetSwitching.objects.get(widget=widget)
    assert (switching.show_button, switching.channels) == (True, ["email", "sms"])
    form = admin_client.get(url(widget)).context["form"]
    assert form["show_button"].value() is True
    assert (form["email_position"].value(), form["sms_position"].value()) == (1, 2)


def test_the_page_shows_each_saved_choice_back(admin_client, tenant, widget):
    widget_switching_save(tenant=tenant, widget=widget, show_button=True, channels=["whatsapp", "email"])
    form = admin_client.get(url(widget)).context["form"]
    assert [form[f"{c}_allowed"].value() for c in ("whatsapp", "email", "sms")] == [True, True, False]
    assert [form[f"{c}_position"].value() for c in ("whatsapp", "email", "sms")] == [1, 2, 3]


def test_the_diagnostics_name_what_is_missing(admin_client, tenant, widget):
    widget_switching_save(tenant=tenant, widget=widget, show_button=True, channels=["sms", "email"])
    connector_save(tenant=tenant, kind="email", provider="sandbox", from_address="help@shop.example")
    response = admin_client.get(url(widget))
    diagnoses = {d.channel: d for d in response.context["diagnoses"]}
    assert diagnoses["email"].ready and not diagnoses["email"].problems
    assert diagnoses["sms"].problems == [
        "No SMS channel is set up (Settings → Channels).",
        "The pre-chat survey has no phone field, so visitors never give the address.",
    ]
    assert "WhatsApp is not picked as a switch channel." in diagnoses["whatsapp"].problems
    page = response.content.decode()
    for problem in diagnoses["sms"].problems + diagnoses["whatsapp"].problems:
        assert problem in page
    assert page.count(">Offered<") == 1 and page.count(">Not offered<") == 2


def test_the_diagnostics_say_when_the_button_is_off(admin_client, widget):
    page = admin_client.get(url(widget)).content.decode()
    assert page.count("The channel switch button is off.") == 3


def test_the_service_refuses_unknown_or_repeated_channels(tenant, widget):
    with pytest.raises(ApplicationError, match="Unknown channel"):
        widget_switching_save(tenant=tenant, widget=widget, show_button=True, channels=["fax"])
    with pytest.raises(ApplicationError, match="twice"):
        widget_switching_save(tenant=tenant, widget=widget, show_button=True, channels=["sms", "sms"])


def test_another_tenants_widget_cannot_be_saved(tenant, other_tenant):
    foreign = WidgetFactory(tenant=other_tenant)
    with pytest.raises(ApplicationError):
        widget_switching_save(tenant=tenant, widget=foreign, show_button=True, channels=["sms"])
    assert not WidgetSwitching.objects.exists()


def test_an_agent_cannot_open_the_tab(client, agent, widget):
    client.force_login(agent)
    assert client.get(url(widget)).status_code == 403
