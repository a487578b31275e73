"""The widget's and the console's JSON endpoints (docs/protocol.md §6, §7) through Django's test client."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from agents.models import AgentProfile, Presence
from chat.models import Attachment, Conversation, ConversationStatus, Message
from chat.tokens import visitor_token_issue, visitor_token_read
from contactcenter.models import Contact, ContactIdentity, Role
from tests.factories import MembershipFactory, WidgetFactory

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def start(client, widget, body, token=None, **extra):
    headers = {"HTTP_X_VISITOR_TOKEN": token} if token else {}
    headers.update(extra)
    return client.post(
        f"/widget/api/{widget.public_key}/sessions", data=body, content_type="application/json", **headers
    )


def test_config_says_whether_anyone_is_online(client, widget, queue, agent):
    response = client.get(f"/widget/api/{widget.public_key}/config")
    assert response.status_code == 200
    data = response.json()
    assert data["available"] is False
    assert data["protocol_version"] == 1
    assert [f["key"] for f in data["widget"]["survey_fields"]] == ["name", "email", "phone", "topic"]
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    assert client.get(f"/widget/api/{widget.public_key}/config").json()["available"] is True
    assert client.get("/widget/api/wk_nope/config").status_code == 404


def test_a_session_starts_resumes_with_its_token_and_refuses_bad_tokens(client, widget, queue, online):
    response = start(client, widget, {"answers": {"name": "Jane", "email": "jane@example.org"}, "message": "Hi"})
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["offline"] is False and data["resumed"] is False
    conversation = Conversation.objects.get(pk=data["conversation"]["id"])
    assert conversation.status == ConversationStatus.WAITING
    assert data["conversation"]["last_seq"] == 1
    assert data["socket_url"] == f"/ws/visitor/conversations/{conversation.pk}/"
    # The typed address stays unverified (only the web identity, proven by the token, is verified).
    assert not ContactIdentity.objects.filter(contact=conversation.contact, kind="email", verified=True).exists()

    # A reload: the same conversation comes back, nothing new is created.
    again = start(client, widget, {"answers": {"name": "Jane"}}, token=data["token"])
    assert again.status_code == 200
    assert again.json()["resumed"] is True and again.json()["conversation"]["id"] == conversation.pk
    current = client.get(f"/widget/api/{widget.public_key}/session", HTTP_X_VISITOR_TOKEN=data["token"])
    assert current.json() == {
        "visitor_id": data["visitor_id"],
        "conversation": again.json()["conversation"],
        "moved": None,
        "following": False,
    }
    assert Conversation.objects.count() == 1

    other_widget = WidgetFactory(tenant=widget.tenant)
    foreign = visitor_token_issue(tenant_id=widget.tenant_id, widget_id=other_widget.pk, visitor_id="x")
    for token in ("garbage", data["token"] + "x", foreign):
        response = client.get(f"/widget/api/{widget.public_key}/session", HTTP_X_VISITOR_TOKEN=token)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"


def test_a_retried_start_with_the_same_client_id_gets_the_same_conversation_and_visitor(client, widget, queue, online):
    body = {"answers": {"name": "Jane"}, "message": "Hi", "client_id": "0b7f6f0e-5c3a-4f59-9a55-6f1b1a0d2c11"}
    first = start(client, widget, body)
    # The first answer never reached the widget: it retries without a token, with the same client_id.
    retry = start(client, widget, body)
    assert (first.status_code, retry.status_code) == (201, 201), retry.json()
    assert retry.json()["conversation"]["id"] == first.json()["conversation"]["id"]
    assert retry.json()["visitor_id"] == first.json()["visitor_id"]
    assert visitor_token_read(retry.json()["token"]).visitor_id == first.json()["visitor_id"]
    assert retry.json()["resumed"] is False
    assert Conversation.objects.count() == 1
    assert Conversation.objects.get().messages.count() == 1

    # Another client_id is another start; a client_id of another visitor is refused.
    other = start(client, widget, {**body, "client_id": "6d1c3b2a-0f4e-4b8a-9c7d-5e6f7a8b9c0d"})
    assert other.status_code == 201
    assert other.json()["conversation"]["id"] != first.json()["conversation"]["id"]
    assert Conversation.objects.count() == 2
    stranger = visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="stranger")
    refused = start(client, widget, body, token=stranger)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "duplicate_client_id")
    assert Conversation.objects.count() == 2


def test_a_session_start_reports_survey_errors_by_field(client, widget, queue, online):
    response = start(client, widget, {"answers": {"email": "nope", "phone": "0"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "email", "phone"}
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"answers": ["Jane"]}, {"answers"}),
        ({"answers": {"name": "Jane", "email": 5, "phone": ["+44"]}}, {"email", "phone"}),
        ({"answers": {"name": "Jane"}, "message": {"text": "hi"}}, {"message"}),
        ({"answers": {"name": "Jane"}, "client_id": 7}, {"client_id"}),
    ],
)
def test_a_session_start_whose_fields_have_the_wrong_type_is_refused_by_field(
    client, widget, queue, online, body, fields
):
    """Typed where the request arrives: a number where text belongs is a 400 naming the field, never
    read as empty text or as no retry key, and nothing starts."""
    response = start(client, widget, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], set(error["fields"])) == ("invalid", fields)
    assert not Conversation.objects.exists()


def test_a_null_answer_is_no_answer(client, widget, queue, online):
    response = start(client, widget, {"answers": {"name": "Jane", "email": None}, "message": None})
    assert response.status_code == 201


def test_nobody_online_needs_an_offline_message(client, widget, queue):
    response = start(client, widget, {"answers": {"name": "Jane"}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "offline_message_required"
    response = start(client, widget, {"answers": {"name": "Jane"}, "message": "Call me back"})
    assert response.status_code == 201
    assert response.json()["offline"] is True
    conversation = Conversation.objects.get()
    assert conversation.started_offline and conversation.status == ConversationStatus.WAITING
    assert [m.event or m.body for m in conversation.messages.order_by("seq")] == [
        "conversation.offline",
        "Call me back",
    ]


def test_too_many_starts_get_429_with_retry_after_and_create_nothing(client, widget, queue, online, settings):
    settings.WIDGET_SESSION_RATE = "2/min"
    body = {"answers": {"name": "Jane"}, "message": "Hi"}
    first = start(client, widget, {**body, "client_id": "c-1"})
    assert start(client, widget, {**body, "client_id": "c-2"}).status_code == 201
    counts = (Conversation.objects.count(), Contact.objects.count(), Message.objects.count())

    refused = start(client, widget, {**body, "client_id": "c-3"})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and error["fields"] == {}
    assert 1 <= error["retry_after"] <= 60 and refused["Retry-After"] == str(error["retry_after"])
    assert error["message"].startswith("Too many chats started from here")
    assert (Conversation.objects.count(), Contact.objects.count(), Message.objects.count()) == counts

    # Idempotent retries and a reload with the token stay free; another address has its own budget.
    retry = start(client, widget, {**body, "client_id": "c-1"})
    assert retry.status_code == 201 and retry.json()["conversation"]["id"] == first.json()["conversation"]["id"]
    resumed = start(client, widget, body, token=first.json()["token"])
    assert resumed.status_code == 200 and resumed.json()["resumed"] is True
    assert start(client, widget, {**body, "client_id": "c-4"}, REMOTE_ADDR="198.51.100.9").status_code == 201
    assert Conversation.objects.count() == counts[0] + 1


def test_starts_behind_a_trusted_proxy_count_by_the_forwarded_address(client, widget, queue, online, settings):
    settings.WIDGET_SESSION_RATE = "1/min"
    body = {"answers": {"name": "Jane"}, "message": "Hi"}
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # Without trusted proxies a typed X-Forwarded-For changes nothing: the connection's address counts.
    settings.TRUSTED_PROXY_COUNT = 0
    assert start(client, widget, body, **proxy, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 201
    assert start(client, widget, body, **proxy, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 429
    # Behind one proxy, each visitor counts by the address the proxy appended, whatever they typed before it.
    settings.TRUSTED_PROXY_COUNT = 1
    assert start(client, widget, body, **proxy, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 201
    assert start(client, widget, body, **proxy, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.1").status_code == 429
    assert start(client, widget, body, **proxy, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 201


def test_visitor_upload_and_download_through_a_signed_url(client, widget, queue, online, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    session = start(client, widget, {"answers": {"name": "Jane"}}).json()
    token, conversation_id = session["token"], session["conversation"]["id"]
    response = client.post(
        f"/widget/api/{widget.public_key}/uploads",
        data={"conversation_id": conversation_id, "file": SimpleUploadedFile("cat.png", PNG, "image/png")},
        HTTP_X_VISITOR_TOKEN=token,
    )
    assert response.status_code == 201, response.content
    attachment = response.json()["attachment"]
    assert attachment["content_type"] == "image/png" and attachment["is_image"] is True

    download = client.get(attachment["url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG
    assert download["Content-Type"] == "image/png"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("attachment;")

    tampered = attachment["url"][:-2] + ("AA" if not attachment["url"].endswith("AA") else "BB")
    assert client.get(tampered).status_code == 403
    assert client.get(f"/widget/api/attachments/{attachment['id']}/").status_code == 403
    # Another visitor's token does not open it either.
    stranger = visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="stranger")
    response = client.get(f"/widget/api/attachments/{attachment['id']}/", HTTP_X_VISITOR_TOKEN=stranger)
    assert response.status_code == 404

    too_big = client.post(
        f"/widget/api/{widget.public_key}/uploads",
        data={
            "conversation_id": conversation_id,
            "file": SimpleUploadedFile("big.png", PNG + b"\x00" * widget.max_upload_bytes, "image/png"),
        },
        HTTP_X_VISITOR_TOKEN=token,
    )
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"


def test_console_endpoints_need_a_session_and_serve_the_tenants_agents(
    client, assigned, agent, tenant, other_tenant, settings, tmp_path, password
):
    settings.MEDIA_ROOT = tmp_path
    base = f"/console/api/conversations/{assigned.pk}/"
    assert client.get(base + "history").status_code == 401

    client.force_login(agent)
    assert client.get(base + "history").json() == {"conversations": [], "has_more": False}

    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(agent)
    refused = csrf.post(base + "uploads", data={"file": SimpleUploadedFile("a.txt", b"hi", "text/plain")})
    assert refused.status_code == 403  # no CSRF token
    uploaded = client.post(base + "uploads", data={"file": SimpleUploadedFile("a.txt", b"hi", "text/plain")})
    assert uploaded.status_code == 201
    url = uploaded.json()["attachment"]["url"]
    download = client.get(url)
    assert download.status_code == 200 and download["Content-Type"] == "text/plain; charset=utf-8"

    foreigner = Client()
    foreigner.force_login(MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user)
    assert foreigner.get(base + "history").status_code == 404
    assert foreigner.get(url).status_code == 404
    colleague = Client()
    colleague.force_login(MembershipFactory(tenant=tenant, role=Role.AGENT).user)
    assert colleague.get(base + "history").status_code == 404  # not theirs
    assert colleague.get(url).status_code == 404  # the read rule: not sent yet, and not theirs
    supervisor = Client()
    supervisor.force_login(MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user)
    assert supervisor.get(url).status_code == 200


def test_the_console_api_has_no_transcript_or_search_endpoint(client, assigned, agent):
    """Removed in protocol 1.1: the console never called them; /api/v1/conversations/ serves integrators."""
    client.force_login(agent)
    assert client.get(f"/console/api/conversations/{assigned.pk}/").status_code == 404
    assert client.get("/console/api/conversations/?q=Jane").status_code == 404


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"answers": {"name": "Jane\\u0000"}, "message": "Hi"}', "answers.name"),
        ('{"answers": {"name": "Jane"}, "message": "Hi \\ud800"}', "message"),
        ('{"answers": {"name": "Jane"}, "message": "Hi", "client_id": "c\\u0000"}', "client_id"),
    ],
    ids=["nul-answer", "surrogate-message", "nul-client-id"],
)
def test_a_session_start_with_unstorable_text_is_invalid_input(client, widget, queue, online, raw, field):
    response = client.post(f"/widget/api/{widget.public_key}/sessions", data=raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_text"
    assert list(response.json()["error"]["fields"]) == [field]
    assert not Conversation.objects.exists()


def test_a_session_start_refuses_bad_or_oversized_json_in_the_error_shape(client, widget, queue, online):
    url = f"/widget/api/{widget.public_key}/sessions"
    for raw in ("{", "[" * 60_000):
        response = client.post(url, data=raw, content_type="application/json")
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_json")
    huge = client.post(url, data='{"message": "' + "x" * 3 * 1024 * 1024 + '"}', content_type="application/json")
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "too_large")
    assert huge["Content-Type"] == "application/json"


def test_an_upload_with_a_nul_in_a_form_field_is_invalid_input(client, widget, queue, online, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    session = start(client, widget, {"answers": {"name": "Jane"}}).json()
    response = client.post(
        f"/widget/api/{widget.public_key}/uploads",
        data={"conversation_id": f"{session['conversation']['id']}\x00", "file": SimpleUploadedFile("a.png", PNG)},
        HTTP_X_VISITOR_TOKEN=session["token"],
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_text",
        "message": "Text may not contain NUL characters or unpaired UTF-16 surrogates.",
        "fields": {"conversation_id": ["Contains a character that cannot be stored."]},
    }


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"0" * 32


def upload_in_new_session(client, widget, file):
    session = start(client, widget, {"answers": {"name": "Jane"}}).json()
    return client.post(
        f"/widget/api/{widget.public_key}/uploads",
        data={"conversation_id": session["conversation"]["id"], "file": file},
        HTTP_X_VISITOR_TOKEN=session["token"],
    )


@pytest.mark.parametrize(
    "name, data, declared, code",
    [
        ("x.pdf", PNG, "application/pdf", "file_type_mismatch"),  # name and type both say PDF
        ("x.pdf", PNG, "image/png", "file_type_mismatch"),  # the name says PDF
        ("x.png", PNG, "application/pdf", "file_type_mismatch"),  # the declared type says PDF
        ("x.png", PDF, "image/png", "file_type_mismatch"),
        ("x.jpg", PNG, "image/jpeg", "file_type_mismatch"),
        ("x.txt", PNG, "text/plain", "file_type_mismatch"),
        ("x.png", b"plain words", "text/plain", "file_type_mismatch"),
        ("page.html", b"plain words", "text/plain", "file_type_not_allowed"),
    ],
    ids=[
        "png-as-pdf",
        "png-named-pdf",
        "png-typed-pdf",
        "pdf-as-png",
        "png-as-jpeg",
        "png-as-text",
        "text-as-png",
        "html",
    ],
)
def test_an_upload_whose_content_name_and_type_disagree_is_refused(
    client, widget, queue, online, settings, tmp_path, name, data, declared, code
):
    settings.MEDIA_ROOT = tmp_path
    response = upload_in_new_session(client, widget, SimpleUploadedFile(name, data, declared))
    assert response.status_code == 415, response.content
    assert response.json()["error"]["code"] == code
    assert not Attachment.objects.exists()
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "name, data, declared, stored",
    [
        ("cat.png", PNG, "image/png", "image/png"),
        ("cat", PNG, "application/octet-stream", "image/png"),  # no claim: the content decides
        ("cat.PNG", PNG, "image/x-png", "image/png"),  # an alias of the same type
        ("doc.pdf", PDF, "application/pdf", "application/pdf"),
        ("notes.txt", b"plain words", "text/plain", "text/plain"),
    ],
    ids=["png", "png-unnamed", "png-alias", "pdf", "text"],
)
def test_an_upload_whose_content_name_and_type_agree_is_stored(
    client, widget, queue, online, settings, tmp_path, name, data, declared, stored
):
    settings.MEDIA_ROOT = tmp_path
    response = upload_in_new_session(client, widget, SimpleUploadedFile(name, data, declared))
    assert response.status_code == 201, response.content
    assert response.json()["attachment"]["content_type"] == stored
