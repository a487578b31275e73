"""factory_boy factories for every model; tests build data only through these (or services)."""

from __future__ import annotations

import functools

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

from agents.models import AgentProfile, CannedTemplate, Disposition, PauseReason, Presence
from channels_switch.models import ChannelConnector, WhatsAppTemplate
from chat.models import Attachment, Conversation, Message, SenderKind, Widget
from contactcenter.models import ApiKey, Contact, ContactIdentity, Membership, Role, Tenant
from queueing.models import Queue, QueueMember, QueueRoute

PASSWORD = "correct-horse-battery"


@functools.cache
def hashed_password() -> str:
    return make_password(PASSWORD)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = "Person"
    # One real hash, computed once: the production hasher costs most of a second per user, and a real
    # hash (not a fast test hasher) keeps logins working in the daphne subprocesses of browser tests.
    password = factory.LazyFunction(lambda: hashed_password())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True  # the hook adds a profile row; the membership itself is unchanged

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.AGENT

    @factory.post_generation
    def profile(obj, create, extracted, **kwargs):
        if create:
            AgentProfile.objects.get_or_create(tenant=obj.tenant, user=obj.user)


class AgentProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentProfile
        django_get_or_create = ("user",)

    tenant = factory.SubFactory(TenantFactory)
    user = factory.LazyAttribute(lambda o: MembershipFactory(tenant=o.tenant).user)


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    prefix = factory.Sequence(lambda n: f"{n:012x}")
    secret_hash = "0" * 64


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Contact {n}")


class ContactIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactIdentity

    tenant = factory.SubFactory(TenantFactory)
    contact = factory.SubFactory(ContactFactory, tenant=factory.SelfAttribute("..tenant"))
    kind = "email"
    value = factory.Sequence(lambda n: f"visitor{n}@example.org")


class PauseReasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PauseReason

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Pause {n}")


class CannedTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CannedTemplate

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    body = "Hello {visitor_name}, this is {agent_name}."


class DispositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Disposition

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Outcome {n}")


class WidgetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Widget

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Widget {n}")
    allowed_origins = ["http://127.0.0.1:8000"]


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Queue {n}")


class QueueMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueMember

    tenant = factory.SubFactory(TenantFactory)
    queue = factory.SubFactory(QueueFactory, tenant=factory.SelfAttribute("..tenant"))
    user = factory.LazyAttribute(lambda o: MembershipFactory(tenant=o.tenant).user)


class QueueRouteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueRoute

    tenant = factory.SubFactory(TenantFactory)
    queue = factory.SubFactory(QueueFactory, tenant=factory.SelfAttribute("..tenant"))
    widget = factory.SubFactory(WidgetFactory, tenant=factory.SelfAttribute("..tenant"))


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    tenant = factory.SubFactory(TenantFactory)
    contact = factory.SubFactory(ContactFactory, tenant=factory.SelfAttribute("..tenant"))
    widget = factory.SubFactory(WidgetFactory, tenant=factory.SelfAttribute("..tenant"))
    visitor_id = factory.Sequence(lambda n: f"v{n:08d}")


class MessageFactory(factory.django.DjangoModelFactory):
    """Builds a message with the conversation's next seq (tests only; services allocate under a lock)."""

    class Meta:
        model = Message

    tenant = factory.SubFactory(TenantFactory)
    conversation = factory.SubFactory(ConversationFactory, tenant=factory.SelfAttribute("..tenant"))
    sender_kind = SenderKind.VISITOR
    body = factory.Sequence(lambda n: f"message {n}")

    @factory.lazy_attribute
    def seq(self):
        conversation = self.conversation
        conversation.last_seq += 1
        Conversation.objects.filter(pk=conversation.pk).update(last_seq=conversation.last_seq)
        return conversation.last_seq


class AttachmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attachment

    tenant = factory.SubFactory(TenantFactory)
    conversation = factory.SubFactory(ConversationFactory, tenant=factory.SelfAttribute("..tenant"))
    file = factory.django.FileField(filename="note.txt", data=b"hello")
    filename = "note.txt"
    content_type = "text/plain"
    size = 5


class ChannelConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelConnector

    tenant = factory.SubFactory(TenantFactory)
    kind = "email"
    provider = "sandbox"
    from_address = "support@example.com"


class WhatsAppTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WhatsAppTemplate

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"order_update_{n}")
    language = "en"
    body = "Hi {{1}}, your order {{2}} has shipped."


def online_agent_in_routed_queue() -> tuple[Widget, object]:
    """A new tenant's widget routed to a queue whose one member is online: (widget, agent user)."""
    widget = WidgetFactory()
    queue = QueueFactory(tenant=widget.tenant)
    QueueRouteFactory(tenant=widget.tenant, queue=queue, widget=widget)
    agent = MembershipFactory(tenant=widget.tenant).user
    QueueMemberFactory(tenant=widget.tenant, queue=queue, user=agent)
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    return widget, agent


def session_cookie(user: object) -> str:
    """The `Cookie` header value of a signed-in session of `user`."""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
