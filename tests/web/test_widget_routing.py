"""A widget routed to no queue answers "No one is available": its pages say so and how to fix it; a new
widget joins the tenant's only queue by itself."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Widget
from queueing.models import QueueRoute
from tests.factories import QueueFactory, QueueRouteFactory, WidgetFactory
from tests.web.test_settings_pages import WIDGET_DATA

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def warning_of(page) -> str:
    content = page.content.decode()
    start = content.find('id="widget-unrouted"')
    return content[start : content.find("</div>", start)] if start != -1 else ""


def test_a_new_widget_without_any_queue_warns_with_a_link_to_create_one(admin_client, tenant):
    response = admin_client.post(reverse("settings-widgets-create"), WIDGET_DATA)
    widget = Widget.objects.for_tenant(tenant).get(name="Shop")
    assert not QueueRoute.objects.filter(widget=widget).exists()
    for name in ("settings-widgets-edit", "settings-widgets-survey"):
        warning = warning_of(admin_client.get(reverse(name, kwargs={"pk": widget.pk})))
        assert "not routed to a queue" in warning
        assert f'href="{reverse("settings-queues-create")}"' in warning
    assert response["Location"] == reverse("settings-widgets-edit", kwargs={"pk": widget.pk})

    listing = admin_client.get(reverse("settings-widgets-list")).content.decode()
    assert 'id="widgets-unrouted"' in listing
    assert "1 widget not routed to a queue" in listing


def test_with_exactly_one_queue_a_new_widget_is_routed_there(admin_client, tenant):
    queue = QueueFactory(tenant=tenant, name="Support")
    admin_client.post(reverse("settings-widgets-create"), WIDGET_DATA)
    widget = Widget.objects.for_tenant(tenant).get(name="Shop")
    assert QueueRoute.objects.get(widget=widget).queue == queue
    assert warning_of(admin_client.get(reverse("settings-widgets-edit", kwargs={"pk": widget.pk}))) == ""
    assert 'id="widgets-unrouted"' not in admin_client.get(reverse("settings-widgets-list")).content.decode()


def test_with_several_queues_the_widget_waits_for_a_choice(admin_client, tenant):
    QueueFactory(tenant=tenant)
    QueueFactory(tenant=tenant)
    admin_client.post(reverse("settings-widgets-create"), WIDGET_DATA)
    widget = Widget.objects.for_tenant(tenant).get(name="Shop")
    assert not QueueRoute.objects.filter(widget=widget).exists()
    warning = warning_of(admin_client.get(reverse("settings-widgets-edit", kwargs={"pk": widget.pk})))
    assert f'href="{reverse("settings-queues-list")}"' in warning


def test_an_unrouted_widget_of_a_one_queue_tenant_links_to_that_queue(admin_client, tenant):
    widget = WidgetFactory(tenant=tenant)  # made before the queue
    queue = QueueFactory(tenant=tenant)
    warning = warning_of(admin_client.get(reverse("settings-widgets-edit", kwargs={"pk": widget.pk})))
    assert f'href="{reverse("settings-queues-edit", kwargs={"pk": queue.pk})}"' in warning
    QueueRouteFactory(tenant=tenant, queue=queue, widget=widget)
    assert warning_of(admin_client.get(reverse("settings-widgets-edit", kwargs={"pk": widget.pk}))) == ""


def test_editing_a_widget_leaves_its_route_alone(admin_client, tenant):
    widget = WidgetFactory(tenant=tenant, name="Shop")
    QueueFactory(tenant=tenant)
    admin_client.post(reverse("settings-widgets-edit", kwargs={"pk": widget.pk}), {**WIDGET_DATA, "name": "Shop 2"})
    assert Widget.objects.get(pk=widget.pk).name == "Shop 2"
    assert not QueueRoute.objects.filter(widget=widget).exists()  # routes change on the queue's page only


def test_the_api_routes_a_new_widget_to_the_only_queue_too(api_client, tenant):
    queue = QueueFactory(tenant=tenant)
    response = api_client.post("/api/v1/widgets/", {"name": "Shop"}, format="json")
    assert response.status_code == 201, response.json()
    assert QueueRoute.objects.get(widget_id=response.json()["id"]).queue == queue
