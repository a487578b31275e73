"""Settings forms of a widget: the General tab, the pre-chat survey with its formset of fields, Channel Switching,
and Hours & display."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.validators import RegexValidator

from chat.models import SurveyFieldKind
from chat.services.hours import DISPLAY_DELAY_MAX, WEEKDAYS, time_zone_choices

MB = 1024 * 1024
MAX_UPLOAD_MB = 100

# The service field a form field edits, where the names differ (for ApplicationError messages).
WIDGET_FIELD_ALIASES = {"max_upload_bytes": "max_upload_mb"}


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class WidgetForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Only your team sees this name.")
    title = forms.CharField(max_length=80, initial="Chat with us", help_text="The heading visitors see.")
    greeting = forms.CharField(
        max_length=300,
        required=False,
        initial="Hi! How can we help?",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    accent_color = forms.CharField(
        label="Accent colour",
        max_length=7,
        initial="#2563eb",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Enter a colour as #rrggbb, e.g. #2563eb.")],
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    offline_message = forms.CharField(
        max_length=300,
        initial="No one is available right now. Leave a message and we will get back to you.",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown when no agent can take the chat.",
    )
    queueing_enabled = forms.BooleanField(
        label="When every agent is busy, let visitors wait in the queue",
        required=False,
        initial=True,
        help_text="Visitors see their place in line. Off: they are offered the message form at once. A full "
        "queue (its capacity is on the queue's page) offers the message form too.",
    )
    allowed_origins = forms.CharField(
        label="Allowed origins",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com", "spellcheck": "false"}),
        help_text="One per line, as scheme://host[:port]. The widget only loads on these sites.",
    )
    max_upload_mb = forms.IntegerField(label="Max upload size (MB)", min_value=1, max_value=MAX_UPLOAD_MB, initial=10)
    allowed_file_types = forms.CharField(
        label="Allowed file types",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="MIME types, one per line (e.g. image/png). Leave empty to refuse uploads.",
    )
    agent_external_url = forms.URLField(
        label="Agent external URL",
        required=False,
        assume_scheme="https",
        help_text="Optional: a page (e.g. your CRM) agents can open from an incoming chat.",
    )

    @staticmethod
    def initial_from(widget: Any) -> dict[str, Any]:
        return {
            "name": widget.name,
            "title": widget.title,
            "greeting": widget.greeting,
            "accent_color": widget.accent_color,
            "offline_message": widget.offline_message,
            "queueing_enabled": widget.queueing_enabled,
            "allowed_origins": "\n".join(widget.allowed_origins or []),
            "max_upload_mb": max(1, round(widget.max_upload_bytes / MB)),
            "allowed_file_types": "\n".join(widget.allowed_file_types or []),
            "agent_external_url": widget.agent_external_url,
        }

    def service_fields(self) -> dict[str, Any]:
        """The cleaned data in the shape `widget_save` takes."""
        data = dict(self.cleaned_data)
        data["max_upload_bytes"] = data.pop("max_upload_mb") * MB
        data["allowed_origins"] = _lines(data["allowed_origins"])
        data["allowed_file_types"] = _lines(data["allowed_file_types"])
        data["accent_color"] = data["accent_color"].lower()
        return data


class WidgetSurveyForm(forms.Form):
    survey_enabled = forms.BooleanField(label="Ask visitors these questions before the chat starts", required=False)


class SurveyFieldForm(forms.Form):
    key = forms.CharField(
        max_length=40,
        validators=[
            RegexValidator(r"^[A-Za-z_][A-Za-z0-9_]*$", "Letters, digits and _ only, not starting with a digit.")
        ],
        widget=forms.TextInput(attrs={"placeholder": "e.g. account_id", "spellcheck": "false"}),
    )
    label = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. Account ID"}))
    kind = forms.ChoiceField(choices=SurveyFieldKind.choices, initial=SurveyFieldKind.TEXT)
    required = forms.BooleanField(required=False)


class BaseSurveyFieldFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            key = form.cleaned_data["key"]
            if key in seen:
                form.add_error("key", f"The key “{key}” is used by another field.")
            seen.add(key)

    def survey_fields(self) -> list[dict[str, Any]]:
        """The kept rows, in order, in the shape `widget_save` takes."""
        return [
            {name: form.cleaned_data[name] for name in ("key", "label", "kind", "required")}
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]


MAX_SURVEY_FIELDS = 20
SURVEY_PREFIX = "fields"


def survey_formset(
    *, data: Any = None, initial: list[dict[str, Any]] | None = None, extra: int = 1
) -> BaseSurveyFieldFormSet:
    """The survey's rows; `extra` blank rows follow the existing ones (a blank row is ignored on save)."""
    formset_class = forms.formset_factory(
        SurveyFieldForm,
        formset=BaseSurveyFieldFormSet,
        extra=extra,
        can_delete=True,
        max_num=MAX_SURVEY_FIELDS,
        validate_max=True,
    )
    return cast(BaseSurveyFieldFormSet, formset_class(data=data, initial=initial, prefix=SURVEY_PREFIX))


def survey_rows_as_typed(data: Any) -> tuple[list[dict[str, Any]], int]:
    """The rows of a posted survey formset as typed (unvalidated), and how many were left blank.

    Lets "Add a field" re-render what the admin typed with one more blank row, without JavaScript and
    without flagging half-filled rows as errors before they press Save.
    """
    try:
        total = int(data.get(f"{SURVEY_PREFIX}-TOTAL_FORMS") or 0)
    except ValueError:
        total = 0
    rows: list[dict[str, Any]] = []
    blanks = 0
    for index in range(max(0, min(total, MAX_SURVEY_FIELDS))):
        field = f"{SURVEY_PREFIX}-{index}-"
        row: dict[str, Any] = {name: str(data.get(field + name, "")) for name in ("key", "label", "kind")}
        if not row["key"].strip() and not row["label"].strip():
            blanks += 1
            continue
        row["required"] = bool(data.get(field + "required"))
        row["DELETE"] = bool(data.get(field + "DELETE"))
        rows.append(row)
    return rows, blanks


SWITCH_CHANNELS = (("sms", "SMS"), ("whatsapp", "WhatsApp"), ("email", "Email"))
POSITIONS = [(1, "1st"), (2, "2nd"), (3, "3rd")]


class WidgetSwitchingForm(forms.Form):
    """The Channel Switching tab: the button, and per channel whether it is offered and in which place."""

    show_button = forms.BooleanField(
        required=False,
        label="Show channel switch button",
        help_text="Visitors see “Continue elsewhere” in the chat and can move it to a channel below.",
    )
    dead_connection = forms.BooleanField(
        required=False,
        label="Move the chat when the visitor's connection is lost",
        help_text=(
            "When every window of the visitor has been closed (or offline) for the time below while an agent's "
            "reply is unread, the chat moves by itself to the first channel below the visitor can be reached on, "
            "and the unread replies go with it. A visitor who comes back in time notices nothing."
        ),
    )
    dead_connection_seconds = forms.IntegerField(
        min_value=30, max_value=3600, initial=120, label="After (seconds)", help_text="30 to 3600 seconds."
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for place, (channel, label) in enumerate(SWITCH_CHANNELS, start=1):
            self.fields[f"{channel}_allowed"] = forms.BooleanField(required=False, label=f"Offer {label}")
            self.fields[f"{channel}_position"] = forms.TypedChoiceField(
                choices=POSITIONS, coerce=int, initial=place, label=f"Place of {label}"
            )

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "channel": channel,
                "label": label,
                "allowed": self[f"{channel}_allowed"],
                "position": self[f"{channel}_position"],
            }
            for channel, label in SWITCH_CHANNELS
        ]

    def channels(self) -> list[str]:
        """The allowed channels in the visitor's order (ties keep the listed order)."""
        data = self.cleaned_data
        allowed = [(data[f"{c}_position"], i, c) for i, (c, _) in enumerate(SWITCH_CHANNELS) if data[f"{c}_allowed"]]
        return [channel for _, _, channel in sorted(allowed)]

    @staticmethod
    def initial_from(
        show_button: bool, channels: list[str], dead_connection: bool = False, dead_connection_seconds: int = 120
    ) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "show_button": show_button,
            "dead_connection": dead_connection,
            "dead_connection_seconds": dead_connection_seconds,
        }
        others = [c for c, _ in SWITCH_CHANNELS if c not in channels]
        for place, channel in enumerate([*channels, *others], start=1):
            initial[f"{channel}_allowed"] = channel in channels
            initial[f"{channel}_position"] = min(place, len(POSITIONS))
        return initial


CLOCK_FORMAT = RegexValidator(r"^([01]\d|2[0-3]):[0-5]\d$", "Enter a time as HH:MM on a 24-hour clock, e.g. 09:00.")


class WidgetHoursForm(forms.Form):
    """The Hours & display tab: business hours (one interval a day here; the API takes several) and where the
    launcher appears. Checked again, with the API's rules, by widget_save (chat.services.hours)."""

    hours_enabled = forms.BooleanField(
        required=False,
        label="Only offer the chat during business hours",
        help_text="Outside them visitors get the message form, which says when you are back. Off: always open.",
    )
    time_zone = forms.ChoiceField(label="Time zone", initial="UTC", help_text="Of the hours and closed dates below.")
    closed_dates = forms.CharField(
        label="Closed dates",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "2025-12-25", "spellcheck": "false"}),
        help_text="One date a line, as YYYY-MM-DD: closed all day (holidays).",
    )
    display_url_contains = forms.CharField(
        label="Show only on pages whose URL contains",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "/pricing", "spellcheck": "false"}),
        help_text="One text a line; the launcher appears where the page's address contains any of them. Empty: "
        "every page.",
    )
    display_url_excludes = forms.CharField(
        label="Never on pages whose URL contains",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "/checkout", "spellcheck": "false"}),
        help_text="One text a line.",
    )
    display_delay_seconds = forms.IntegerField(
        label="Seconds on the page before the launcher appears",
        min_value=0,
        max_value=DISPLAY_DELAY_MAX,
        initial=0,
        help_text=f"0 to {DISPLAY_DELAY_MAX}. A visitor with a chat in progress always sees the launcher at once.",
    )

    def __init__(self, *args: Any, stored_week: list[Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The stored days, so that a day with several intervals (set through the API) is kept unless edited here.
        self.stored_week = stored_week or [[] for _ in WEEKDAYS]
        cast(forms.ChoiceField, self.fields["time_zone"]).choices = [(name, name) for name in time_zone_choices()]
        for weekday, day in enumerate(WEEKDAYS):
            for part, word in (("opens", "Opens"), ("closes", "Closes")):
                self.fields[f"day{weekday}_{part}"] = forms.CharField(
                    label=f"{day}: {word.lower()}",
                    required=False,
                    validators=[CLOCK_FORMAT],
                    widget=forms.TimeInput(attrs={"type": "time"}),
                )

    def days(self) -> list[dict[str, Any]]:
        """One row a weekday for the template, with a note when the stored day has more intervals than it shows."""
        rows = []
        for weekday, day in enumerate(WEEKDAYS):
            stored = self.stored_week[weekday] if weekday < len(self.stored_week) else []
            rows.append(
                {
                    "day": day,
                    "opens": self[f"day{weekday}_opens"],
                    "closes": self[f"day{weekday}_closes"],
                    "more": [f"{opens}-{closes}" for opens, closes in stored[1:]],
                }
            )
        return rows

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for weekday, day in enumerate(WEEKDAYS):
            opens, closes = data.get(f"day{weekday}_opens"), data.get(f"day{weekday}_closes")
            if opens is None or closes is None:
                continue  # already refused by the field
            if bool(opens) != bool(closes):
                self.add_error(f"day{weekday}_closes", f"{day}: give both times, or neither when closed all day.")
            elif opens and _day_end(closes) <= opens:
                self.add_error(f"day{weekday}_closes", f"{day}: the closing time is before the opening time.")
        return data

    def service_fields(self) -> dict[str, Any]:
        """The cleaned data in the shape `widget_save` takes."""
        data = self.cleaned_data
        week: list[list[list[str]]] = []
        for weekday in range(len(WEEKDAYS)):
            opens, closes = data[f"day{weekday}_opens"], data[f"day{weekday}_closes"]
            stored = self.stored_week[weekday] if weekday < len(self.stored_week) else []
            interval = [opens, _day_end(closes)] if opens else None
            if stored and interval == list(stored[0]):
                week.append([list(span) for span in stored])  # untouched: keep every interval it had
            else:
                week.append([interval] if interval else [])
        return {
            "hours_enabled": data["hours_enabled"],
            "time_zone": data["time_zone"],
            "weekly_hours": week,
            "closed_dates": _lines(data["closed_dates"]),
            "display_url_contains": [
                line.strip() for line in data["display_url_contains"].splitlines() if line.strip()
            ],
            "display_url_excludes": [
                line.strip() for line in data["display_url_excludes"].splitlines() if line.strip()
            ],
            "display_delay_seconds": data["display_delay_seconds"],
        }

    @staticmethod
    def initial_from(widget: Any) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "hours_enabled": widget.hours_enabled,
            "time_zone": widget.time_zone,
            "closed_dates": "\n".join(widget.closed_dates or []),
            "display_url_contains": "\n".join(widget.display_url_contains or []),
            "display_url_excludes": "\n".join(widget.display_url_excludes or []),
            "display_delay_seconds": widget.display_delay_seconds,
        }
        week = widget.weekly_hours if isinstance(widget.weekly_hours, list) else []
        for weekday in range(len(WEEKDAYS)):
            day = week[weekday] if weekday < len(week) else []
            opens, closes = (day[0][0], day[0][1]) if day else ("", "")
            # A time input has no 24:00: the end of the day shows as 00:00.
            initial[f"day{weekday}_opens"], initial[f"day{weekday}_closes"] = (
                opens,
                "00:00" if closes == "24:00" else closes,
            )
        return initial


def _rows(value: str) -> list[str]:
    """One entry a line (commas allowed inside: a URL may hold them)."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def _day_end(closes: str) -> str:
    """A closing time of 00:00 means the end of the day (a time input cannot say 24:00)."""
    return "24:00" if closes == "00:00" else closes
