"""API shapes of chat: widgets, conversations (with their filters) and messages (with their page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat.models import (
    Attachment,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    SurveyFieldKind,
    Widget,
)
from chat.services.hours import (
    CLOSED_DATES_MAX,
    DISPLAY_DELAY_MAX,
    DISPLAY_RULE_CHARS,
    DISPLAY_RULES_MAX,
    INTERVALS_PER_DAY_MAX,
)
from contactcenter.models import Contact
from contactcenter.serializers import StrictBooleanField, TenantModelSerializer


class SurveyFieldSerializer(serializers.Serializer[Any]):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Built here: fields declared as `label` and `required` would shadow Field's own attributes.
        return {
            "key": serializers.CharField(max_length=40, help_text="Letters, digits and _; unique in the survey."),
            "label": serializers.CharField(max_length=80),
            "kind": serializers.ChoiceField(choices=SurveyFieldKind.choices, default=SurveyFieldKind.TEXT),
            "required": StrictBooleanField(default=False),
        }


class WidgetSerializer(TenantModelSerializer[Widget]):
    allowed_origins = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Origins (`https://shop.example.com[:port]`, no path) allowed to embed the widget.",
    )
    survey_fields = serializers.ListField(child=SurveyFieldSerializer(), required=False)
    allowed_file_types = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="MIME types visitors may upload."
    )
    accent_color = serializers.RegexField(
        r"^#[0-9a-fA-F]{6}$", max_length=7, required=False, error_messages={"invalid": "Enter a colour as #rrggbb."}
    )
    # Business hours and display rules: shapes here, their rules (formats, order, overlaps, bounds) in
    # chat.services.hours, which the settings form goes through too.
    hours_enabled = StrictBooleanField(
        required=False, help_text="Outside the hours below no live chat is offered, only the offline form."
    )
    time_zone = serializers.CharField(
        max_length=64, required=False, help_text="IANA time zone of the hours and closed dates, e.g. Europe/Berlin."
    )
    weekly_hours = serializers.ListField(
        child=serializers.ListField(
            child=serializers.ListField(child=serializers.CharField(max_length=5), min_length=2, max_length=2),
            max_length=INTERVALS_PER_DAY_MAX,
        ),
        min_length=7,
        max_length=7,
        required=False,
        help_text='Seven days, Monday first, each a list of ["HH:MM", "HH:MM"] intervals (sorted, not '
        'overlapping; "24:00" ends the day; [] closed that day).',
    )
    closed_dates = serializers.ListField(
        child=serializers.CharField(max_length=10),
        max_length=CLOSED_DATES_MAX,
        required=False,
        help_text="Dates closed all day (YYYY-MM-DD, in the widget's time zone).",
    )
    display_url_contains = serializers.ListField(
        child=serializers.CharField(max_length=DISPLAY_RULE_CHARS),
        max_length=DISPLAY_RULES_MAX,
        required=False,
        help_text="The launcher appears only on pages whose URL contains one of these (any page when empty).",
    )
    display_url_excludes = serializers.ListField(
        child=serializers.CharField(max_length=DISPLAY_RULE_CHARS),
        max_length=DISPLAY_RULES_MAX,
        required=False,
        help_text="…and never on pages whose URL contains one of these.",
    )
    display_delay_seconds = serializers.IntegerField(
        min_value=0,
        max_value=DISPLAY_DELAY_MAX,
        required=False,
        help_text="Seconds on the page before the launcher appears. A visitor with a chat in progress sees it at once.",
    )

    class Meta:
        model = Widget
        fields = [
            "id",
            "name",
            "public_key",
            "allowed_origins",
            "title",
            "greeting",
            "accent_color",
            "offline_message",
            "queueing_enabled",
            "survey_enabled",
            "survey_fields",
            "max_upload_bytes",
            "allowed_file_types",
            "agent_external_url",
            "hours_enabled",
            "time_zone",
            "weekly_hours",
            "closed_dates",
            "display_url_contains",
            "display_url_excludes",
            "display_delay_seconds",
            "created_at",
        ]
        read_only_fields = ["public_key", "created_at"]


class ContactSummarySerializer(TenantModelSerializer[Contact]):
    class Meta:
        model = Contact
        fields = ["id", "name"]


class ConversationSerializer(TenantModelSerializer[Conversation]):
    contact = ContactSummarySerializer(read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "contact",
            "widget",
            "visitor_id",
            "channel",
            "status",
            "assignee",
            "participants",
            "important",
            "disposition",
            "last_seq",
            "created_at",
            "answered_at",
            "closed_at",
            "last_message_at",
        ]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.DATETIME)
class DateOrDateTimeField(serializers.Field[datetime, str, str, Any]):
    """An ISO 8601 date (midnight, server time zone) or date-time (no offset: server time zone), as UTC.

    Python reads any offset under 24 hours, PostgreSQL only up to ±15:59: the moment leaves here in UTC, so
    whatever offset the client wrote, the database gets a value it takes (or the client a 400).
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date (2025-01-31) or date-time (2025-01-31T09:30:00Z).",
        "overflow": "Out of range: pick a moment between the years 1 and 9999 in UTC.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        try:
            # datetime.fromisoformat (behind parse_datetime) reads a bare date as its midnight.
            moment = parse_datetime(str(data).strip())
        except ValueError:  # well-formed but impossible, e.g. February 30th
            moment = None
        if moment is None:
            self.fail("invalid")
        try:
            aware = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
            return aware.astimezone(UTC)
        except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 is before the year 1 in UTC
            self.fail("overflow")

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class ConversationFilterSerializer(serializers.Serializer[Any]):
    """The list's query parameters."""

    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    agent = serializers.IntegerField(required=False, min_value=1, help_text="The assignee's user id.")
    contact = serializers.IntegerField(required=False, min_value=1, help_text="The contact's id.")
    created_after = DateOrDateTimeField(
        required=False,
        help_text="Created at or after this date or date-time (RFC 3339: any offset under 24 hours; none means "
        "the server's time zone). Outside the years 1 to 9999 in UTC: 400.",
    )
    created_before = DateOrDateTimeField(
        required=False, help_text="Created before this date or date-time (as `created_after`)."
    )


class AttachmentSummarySerializer(TenantModelSerializer[Attachment]):
    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size"]


class MessageSerializer(TenantModelSerializer[Message]):
    attachments = AttachmentSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "seq",
            "sender_kind",
            "sender_user",
            "is_private",
            "body",
            "event",
            "event_data",
            "channel",
            "delivery_status",
            "attachments",
            "created_at",
        ]
        read_only_fields = fields


MESSAGE_PAGE_DEFAULT = 50
MESSAGE_PAGE_MAX = 200


class MessagePageQuerySerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Return the messages after this seq (0: from the start)."
    )
    limit = serializers.IntegerField(
        required=False,
        default=MESSAGE_PAGE_DEFAULT,
        min_value=1,
        help_text=f"At most this many (default {MESSAGE_PAGE_DEFAULT}; above {MESSAGE_PAGE_MAX} counts as "
        f"{MESSAGE_PAGE_MAX}).",
    )


class MessagePageSerializer(serializers.Serializer[Any]):
    results = MessageSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page (`after` = the last seq here), or null.")
