"""Every API route, found by walking the URL configuration: no tenant reaches another's rows; roles hold.

A route needs an entry in REGISTRY (how to make a row it serves, and what an agent may do there); a route
without one fails its tests, so a new route cannot pass without being exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from contactcenter import secretbox
from contactcenter.models import WebhookDelivery, WebhookDeliveryState, WebhookEvent, WebhookSubscription
from contactcenter.services.webhooks_out import MESSAGE_CREATED, new_event_id, secret_new
from contactcenter.wiring import api_urls
from tests.factories import (
    ApiKeyFactory,
    CannedTemplateFactory,
    ChannelConnectorFactory,
    ContactFactory,
    ContactIdentityFactory,
    ConversationFactory,
    DispositionFactory,
    MembershipFactory,
    MessageFactory,
    PauseReasonFactory,
    QueueFactory,
    QueueMemberFactory,
    WidgetFactory,
)

TESTED_METHODS = ("get", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    name: str
    kwargs: tuple[str, ...]
    methods: frozenset[str]

    @property
    def detail(self) -> bool:
        return "pk" in self.kwargs

    @property
    def nested(self) -> bool:
        return any(name.endswith("_pk") for name in self.kwargs)


def discover_routes(urlpatterns: list | None = None) -> list[Route]:
    """One Route per named API route, with the HTTP methods it answers (format-suffix twins left out)."""
    routes: dict[str, Route] = {}
    for pattern in api_urls.urlpatterns if urlpatterns is None else urlpatterns:
        kwargs = tuple(pattern.pattern.regex.groupindex)
        # The router's index lists route names, no rows; the format-suffix patterns repeat the others; the
        # catch-all only answers 404 (tests/api/test_errors.py).
        if pattern.name in ("api-root", "api-not-found") or "format" in kwargs:
            continue
        view = pattern.callback.cls
        allowed = set(view.http_method_names) - {"head", "options", "trace"}
        actions = getattr(pattern.callback, "actions", None)
        methods = allowed & set(actions) if actions else {m for m in allowed if hasattr(view, m)}
        routes[pattern.name] = Route(name=pattern.name, kwargs=kwargs, methods=frozenset(methods))
    return list(routes.values())


@dataclass(frozen=True)
class Target:
    """A row made for a route: the URL kwargs that reach it and how the response names it."""

    kwargs: dict[str, object]
    row_id: object
    key: str = "id"


@dataclass(frozen=True)
class Spec:
    make: Callable[[object], Target]
    # Methods an agent's console session may use on the route; every other one must answer 403.
    agent_may: frozenset[str] = field(default_factory=lambda: frozenset({"get"}))


READ = frozenset({"get"})
NOTHING: frozenset[str] = frozenset()


def _at(pk: object, **parents: object) -> Target:
    return Target({**parents, "pk": pk}, pk)


def _identity(tenant, detail: bool) -> Target:
    identity = ContactIdentityFactory(tenant=tenant)
    parent = {"contact_pk": identity.contact_id}
    return _at(identity.pk, **parent) if detail else Target(parent, identity.pk)


def _queue_member(tenant, detail: bool) -> Target:
    member = QueueMemberFactory(tenant=tenant)
    parent = {"queue_pk": member.queue_id}
    kwargs = {**parent, "pk": member.user_id} if detail else parent
    return Target(kwargs, member.user_id, key="agent")


def _message(tenant) -> Target:
    message = MessageFactory(tenant=tenant)
    return Target({"pk": message.conversation_id}, message.pk)


def _webhook(tenant) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        tenant=tenant, url="https://hooks.example.com/x", secret_sealed=secretbox.seal(secret_new())
    )


def _webhook_delivery(tenant, detail: bool) -> Target:
    subscription = _webhook(tenant)
    event = WebhookEvent.objects.create(tenant=tenant, public_id=new_event_id(), type=MESSAGE_CREATED, payload={})
    delivery = WebhookDelivery.objects.create(
        tenant=tenant, subscription=subscription, event=event, state=WebhookDeliveryState.FAILED
    )
    parent = {"subscription_pk": subscription.pk}
    return _at(delivery.pk, **parent) if detail else Target(parent, delivery.pk)


def _webhook_replay(tenant) -> Target:
    target = _webhook_delivery(tenant, detail=True)
    return Target({"pk": target.kwargs["subscription_pk"], "delivery_pk": target.row_id}, target.row_id)


REGISTRY: dict[str, Spec] = {
    "contact-list": Spec(lambda t: Target({}, ContactFactory(tenant=t).pk), frozenset({"get", "post"})),
    "contact-detail": Spec(lambda t: _at(ContactFactory(tenant=t).pk), frozenset({"get", "put", "patch"})),
    "contact-link-requests": Spec(lambda t: _at(ContactFactory(tenant=t).pk), frozenset({"post"})),
    "contact-merge": Spec(lambda t: _at(ContactFactory(tenant=t).pk), frozenset({"post"})),
    "contact-auth-codes": Spec(lambda t: _at(ContactFactory(tenant=t).pk), frozenset({"post"})),
    "contact-identity-list": Spec(lambda t: _identity(t, detail=False), frozenset({"get", "post"})),
    "contact-identity-detail": Spec(lambda t: _identity(t, detail=True), frozenset({"get", "delete"})),
    "widget-list": Spec(lambda t: Target({}, WidgetFactory(tenant=t).pk)),
    "widget-detail": Spec(lambda t: _at(WidgetFactory(tenant=t).pk)),
    "queue-list": Spec(lambda t: Target({}, QueueFactory(tenant=t).pk)),
    "queue-detail": Spec(lambda t: _at(QueueFactory(tenant=t).pk)),
    "queue-member-list": Spec(lambda t: _queue_member(t, detail=False)),
    "queue-member-detail": Spec(lambda t: _queue_member(t, detail=True)),
    "agent-list": Spec(lambda t: Target({}, MembershipFactory(tenant=t).user_id)),
    "agent-detail": Spec(lambda t: _at(MembershipFactory(tenant=t).user_id)),
    "template-list": Spec(lambda t: Target({}, CannedTemplateFactory(tenant=t).pk)),
    "template-detail": Spec(lambda t: _at(CannedTemplateFactory(tenant=t).pk)),
    "disposition-list": Spec(lambda t: Target({}, DispositionFactory(tenant=t).pk)),
    "disposition-detail": Spec(lambda t: _at(DispositionFactory(tenant=t).pk)),
    "pause-reason-list": Spec(lambda t: Target({}, PauseReasonFactory(tenant=t).pk)),
    "pause-reason-detail": Spec(lambda t: _at(PauseReasonFactory(tenant=t).pk)),
    "api-key-list": Spec(lambda t: Target({}, ApiKeyFactory(tenant=t).pk), NOTHING),
    "api-key-detail": Spec(lambda t: _at(ApiKeyFactory(tenant=t).pk), NOTHING),
    "channel-list": Spec(lambda t: Target({}, ChannelConnectorFactory(tenant=t).pk), NOTHING),
    "channel-detail": Spec(lambda t: _at(ChannelConnectorFactory(tenant=t).pk), NOTHING),
    "conversation-list": Spec(lambda t: Target({}, ConversationFactory(tenant=t).pk)),
    "conversation-detail": Spec(lambda t: _at(ConversationFactory(tenant=t).pk)),
    "conversation-messages": Spec(_message),
    "webhook-list": Spec(lambda t: Target({}, _webhook(t).pk), NOTHING),
    "webhook-detail": Spec(lambda t: _at(_webhook(t).pk), NOTHING),
    "webhook-rotate-secret": Spec(lambda t: _at(_webhook(t).pk), NOTHING),
    "webhook-delivery-list": Spec(lambda t: _webhook_delivery(t, detail=False), NOTHING),
    "webhook-delivery-detail": Spec(lambda t: _webhook_delivery(t, detail=True), NOTHING),
    "webhook-replay-delivery": Spec(lambda t: _webhook_replay(t), NOTHING),
}


def spec_for(route_name: str) -> Spec:
    if route_name not in REGISTRY:
        pytest.fail(
            f"API route {route_name!r} has no entry in REGISTRY ({__name__}): register how to make a row "
            "it serves, so its tenant isolation and roles are tested."
        )
    return REGISTRY[route_name]


def call(client, method: str, url: str):
    return getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)


def shown(response, key: str) -> list[object]:
    """The row keys a response shows: a page's results, or the one object."""
    data = response.json()
    return [row[key] for row in data["results"]] if "results" in data else [data[key]]


def assert_error(response, status: int | set[int]) -> None:
    statuses = status if isinstance(status, set) else {status}
    assert response.status_code in statuses, (response.request["REQUEST_METHOD"], response.content)
    assert set(response.json()["error"]) == {"code", "message", "fields"}


ROUTES = discover_routes()


@pytest.mark.parametrize("route", [r for r in ROUTES if r.detail], ids=lambda r: r.name)
def test_detail_route_answers_only_its_tenant(
    route, tenant, other_tenant, api_client, other_api_client, other_admin_session, agent_session
):
    spec = spec_for(route.name)
    target = spec.make(tenant)
    url = reverse(route.name, kwargs=target.kwargs)

    for outsider in (other_api_client, other_admin_session):
        for method in TESTED_METHODS:
            # Not allowed at all may answer 405, or 404 when a parent in the URL is looked up first.
            assert_error(call(outsider, method, url), 404 if method in route.methods else {404, 405})

    for method in sorted(route.methods - spec.agent_may):
        assert_error(call(agent_session, method, url), 403)
    if "get" in spec.agent_may:
        assert target.row_id in shown(agent_session.get(url), target.key)
    if route.methods == {"post"}:
        # An action on a row (rotate a secret, replay a delivery): another tenant's POST finds no row; what the
        # action does is tested with its resource.
        for outsider in (other_api_client, other_admin_session):
            assert_error(call(outsider, "post", url), 404)
        return

    response = api_client.get(url)
    assert response.status_code == 200
    assert target.row_id in shown(response, target.key)
    if "patch" in route.methods:
        assert api_client.patch(url, {}, format="json").status_code == 200
    if "delete" in route.methods:
        assert api_client.delete(url).status_code == 204


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.detail], ids=lambda r: r.name)
def test_list_route_shows_only_its_tenants_rows(
    route, tenant, other_tenant, api_client, other_api_client, other_admin_session, agent_session
):
    spec = spec_for(route.name)
    mine, theirs = spec.make(tenant), spec.make(other_tenant)
    url = reverse(route.name, kwargs=mine.kwargs)

    response = api_client.get(url)
    assert response.status_code == 200
    rows = shown(response, mine.key)
    assert mine.row_id in rows
    assert theirs.row_id not in rows

    for outsider in (other_api_client, other_admin_session):
        if route.nested:  # my parent object is not theirs to list or add to
            for method in sorted(route.methods):
                assert_error(call(outsider, method, url), 404)
        else:
            their_rows = shown(outsider.get(url), mine.key)
            assert theirs.row_id in their_rows
            assert mine.row_id not in their_rows

    for method in sorted(route.methods - spec.agent_may):
        assert_error(call(agent_session, method, url), 403)
    if "get" in spec.agent_may:
        assert mine.row_id in shown(agent_session.get(url), mine.key)


# --- the generator itself ---------------------------------------------------------------------------------

EXPECTED_ROUTES = {
    f"{resource}-{kind}"
    for resource in (
        "contact",
        "contact-identity",
        "widget",
        "queue",
        "queue-member",
        "agent",
        "template",
        "disposition",
        "pause-reason",
        "api-key",
        "channel",
        "conversation",
    )
    for kind in ("list", "detail")
} | {"conversation-messages"}


def test_generator_discovers_every_route():
    names = {route.name for route in ROUTES}
    assert names >= EXPECTED_ROUTES
    assert len([r for r in ROUTES if r.detail]) >= 13
    assert all(route.methods for route in ROUTES)


def test_url_kwargs_follow_the_convention_the_generator_relies_on():
    # `pk` addresses the row; `<parent>_pk` its parent: anything else would be misread as a list route.
    for route in ROUTES:
        assert all(name == "pk" or name.endswith("_pk") for name in route.kwargs), route


def test_registry_has_no_entry_for_a_route_that_is_gone():
    assert set(REGISTRY) <= {route.name for route in ROUTES}


def test_a_route_without_a_registry_entry_fails():
    with pytest.raises(pytest.fail.Exception, match="'gadget-detail' has no entry in REGISTRY"):
        spec_for("gadget-detail")


def test_generator_sees_a_route_added_to_the_url_configuration():
    from rest_framework.routers import SimpleRouter

    from contactcenter.api import ContactViewSet

    router = SimpleRouter()
    router.register("gadgets", ContactViewSet, basename="gadget")
    extra = discover_routes([*api_urls.urlpatterns, *router.urls])
    names = {route.name for route in extra}
    assert {"gadget-list", "gadget-detail"} <= names
    assert {"gadget-list", "gadget-detail"}.isdisjoint(REGISTRY)
