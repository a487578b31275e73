"""Business hours and display rules of a widget: open or closed by its weekly schedule, closed dates and time zone
(across a DST change), when it opens next, what the admin may enter (service, settings form, REST API), and what
the widget's config and a start outside the hours do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, ConversationStatus, Message, Widget
from chat.services import widget_next_open, widget_open_at, widget_save
from contactcenter.errors import ApplicationError
from contactcenter.wiring.demo import demo_seed
from queueing.selectors import queue_place
from queueing.services import conversation_request
from tests.factories import WidgetFactory

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = [[["09:00", "17:00"]]] * 5 + [[], []]  # Monday to Friday, 09:00 to 17:00
ALL_WEEK = [[["00:00", "24:00"]]] * 7


def hours(
    weekly: list = OFFICE, *, zone: str = "Europe/Berlin", closed: list[str] | None = None, enabled: bool = True
) -> Widget:
    """An unsaved widget: the hours functions read only its fields."""
    return Widget(hours_enabled=enabled, time_zone=zone, weekly_hours=weekly, closed_dates=closed or [])


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# --- open or closed -----------------------------------------------------------------------------------------------


def test_open_and_closed_follow_the_weekly_schedule_in_the_widgets_time_zone():
    widget = hours()
    # 2025-06-06 is a Friday.
    assert widget_open_at(widget=widget, now=berlin(2025, 6, 6, 9, 0))  # opening minute included
    assert widget_open_at(widget=widget, now=berlin(2025, 6, 6, 16, 59, 59))
    assert not widget_open_at(widget=widget, now=berlin(2025, 6, 6, 17, 0))  # closing minute excluded
    assert not widget_open_at(widget=widget, now=berlin(2025, 6, 6, 8, 59))
    assert not widget_open_at(widget=widget, now=berlin(2025, 6, 7, 12, 0))  # Saturday
    # The same moment seen from UTC: 07:30 UTC is 09:30 in Berlin (summer time), open; in UTC hours it would not be.
    assert widget_open_at(widget=widget, now=datetime(2025, 6, 6, 7, 30, tzinfo=UTC))
    assert not widget_open_at(widget=hours(zone="UTC"), now=datetime(2025, 6, 6, 7, 30, tzinfo=UTC))
    # Business hours off: always open, whatever the schedule says.
    assert widget_open_at(widget=hours(enabled=False), now=berlin(2025, 6, 7, 3, 0))


def test_several_intervals_a_day_and_a_day_open_until_midnight():
    split = [[["09:00", "12:00"], ["13:00", "24:00"]]] * 7
    widget = hours(split)
    assert widget_open_at(widget=widget, now=berlin(2025, 6, 4, 11, 59))
    assert not widget_open_at(widget=widget, now=berlin(2025, 6, 4, 12, 30))
    assert widget_open_at(widget=widget, now=berlin(2025, 6, 4, 23, 59, 59))
    assert not widget_open_at(widget=widget, now=berlin(2025, 6, 5, 0, 0, 1))


def test_a_closed_date_closes_the_whole_day_in_the_widgets_time_zone():
    widget = hours(closed=["2025-12-24"])
    assert not widget_open_at(widget=widget, now=berlin(2025, 12, 24, 10, 0))
    assert widget_open_at(widget=widget, now=berlin(2025, 12, 23, 10, 0))
    # 23:30 UTC on the 23rd is already the 24th in Berlin: closed by the date, open by the weekly hours.
    night = hours(ALL_WEEK, closed=["2025-12-24"])
    assert not widget_open_at(widget=night, now=datetime(2025, 12, 23, 23, 30, tzinfo=UTC))
    assert widget_open_at(widget=night, now=datetime(2025, 12, 23, 22, 30, tzinfo=UTC))


def test_hours_keep_to_the_wall_clock_across_the_dst_change():
    every_day = [[["09:00", "17:00"]]] * 7
    widget = hours(every_day)
    # Berlin moves from UTC+1 to UTC+2 on Sunday 2025-03-30: 08:30 UTC is 09:30 on Saturday, 10:30 on Sunday.
    assert widget_open_at(widget=widget, now=datetime(2025, 3, 29, 15, 30, tzinfo=UTC))  # 16:30 CET
    assert not widget_open_at(widget=widget, now=datetime(2025, 3, 30, 15, 30, tzinfo=UTC))  # 17:30 CEST
    assert widget_open_at(widget=widget, now=datetime(2025, 3, 30, 7, 0, tzinfo=UTC))  # 09:00 CEST
    assert not widget_open_at(widget=widget, now=datetime(2025, 3, 29, 7, 30, tzinfo=UTC))  # 08:30 CET
    # Saturday evening: the next opening is 09:00 summer time, 07:00 UTC (an hour earlier in UTC than the day before).
    opens = widget_next_open(widget=widget, now=berlin(2025, 3, 29, 18, 0))
    assert opens == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)
    assert opens.utcoffset() == timedelta(hours=2)
    # Back in October: 09:00 winter time is 08:00 UTC.
    assert widget_next_open(widget=widget, now=berlin(2025, 10, 25, 18, 0)) == datetime(2025, 10, 26, 8, 0, tzinfo=UTC)


def test_an_opening_inside_the_skipped_hour_starts_when_the_clocks_jump():
    # 02:30 never happens in Berlin on 2025-03-30: the clocks go from 02:00 straight to 03:00.
    widget = hours([[["02:30", "05:00"]]] * 7)
    assert widget_next_open(widget=widget, now=berlin(2025, 3, 30, 0, 0)) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert widget_open_at(widget=widget, now=datetime(2025, 3, 30, 1, 0, tzinfo=UTC))  # 03:00 CEST


def test_next_opening_across_the_weekend_and_closed_dates():
    widget = hours()
    friday_evening = berlin(2025, 6, 6, 18, 0)
    assert widget_next_open(widget=widget, now=friday_evening) == berlin(2025, 6, 9, 9, 0)
    # Monday is a holiday, and so is Tuesday: Wednesday morning.
    closed = hours(closed=["2025-06-09", "2025-06-10"])
    assert widget_next_open(widget=closed, now=friday_evening) == berlin(2025, 6, 11, 9, 0)
    # Early on a working day: later the same day. Open now: now.
    assert widget_next_open(widget=widget, now=berlin(2025, 6, 5, 7, 15)) == berlin(2025, 6, 5, 9, 0)
    assert widget_next_open(widget=widget, now=berlin(2025, 6, 5, 10, 0)) == berlin(2025, 6, 5, 10, 0)
    # No opening within the next 14 days: unknown.
    fortnight = [(date(2025, 6, 9) + timedelta(days=n)).isoformat() for n in range(15)]
    assert widget_next_open(widget=hours(closed=fortnight), now=friday_evening) is None


def test_a_row_written_around_the_service_never_breaks_a_visitors_page():
    broken = hours([["nonsense"], [["25:00", "26:00"]], 3, [], [], [], []], zone="Not/AZone")
    assert widget_open_at(widget=broken, now=berlin(2025, 6, 2, 10, 0)) is False
    assert widget_next_open(widget=broken, now=berlin(2025, 6, 2, 10, 0)) is None


# --- what the admin may enter ---------------------------------------------------------------------------------------


def refused(tenant, widget, **fields) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        widget_save(tenant=tenant, instance=widget, **fields)
    return caught.value


@pytest.mark.django_db
def test_the_service_normalises_good_hours_and_refuses_bad_ones_naming_the_field(tenant):
    widget = WidgetFactory(tenant=tenant)
    assert widget.hours_enabled is False and widget.time_zone == "UTC"
    assert widget.weekly_hours == OFFICE and widget.display_delay_seconds == 0
    week = [[[" 13:00", "17:00"], ["09:00", "12:00"]], *OFFICE[1:]]
    saved = widget_save(
        tenant=tenant,
        instance=widget,
        hours_enabled=True,
        time_zone="Europe/Berlin",
        weekly_hours=week,
        closed_dates=["2025-12-26", "2025-12-25", "2025-12-25"],
        display_url_contains=[" /pricing ", "/pricing", "/help"],
        display_delay_seconds=30,
    )
    saved.refresh_from_db()
    assert saved.weekly_hours[0] == [["09:00", "12:00"], ["13:00", "17:00"]]  # sorted
    assert saved.closed_dates == ["2025-12-25", "2025-12-26"]
    assert saved.display_url_contains == ["/pricing", "/help"]

    cases = {
        "time_zone": ({"time_zone": "Europe/Atlantis"}, "Unknown time zone"),
        "weekly_hours": ({"weekly_hours": OFFICE[:5]}, "seven days"),
        "overlap": ({"weekly_hours": [[["09:00", "12:00"], ["11:00", "13:00"]], *OFFICE[1:]]}, "Monday: the intervals"),
        "order": ({"weekly_hours": [*OFFICE[:2], [["17:00", "09:00"]], *OFFICE[3:]]}, "Wednesday: 17:00 to 09:00"),
        "format": ({"weekly_hours": [*OFFICE[:4], [["9am", "5pm"]], *OFFICE[5:]]}, "Friday: times are HH:MM"),
        "closed_dates": ({"closed_dates": ["2025-02-30"]}, "Not a date (YYYY-MM-DD): 2025-02-30"),
        "display_url_excludes": ({"display_url_excludes": [f"/p{n}" for n in range(21)]}, "At most 20"),
        "display_url_contains": ({"display_url_contains": ["x" * 201]}, "at most 200 characters"),
        "display_delay_seconds": ({"display_delay_seconds": 601}, "0 to 600"),
        "all_closed": ({"weekly_hours": [[]] * 7}, "Open on at least one day"),
    }
    for case, (fields, words) in cases.items():
        error = refused(tenant, widget, **fields)
        field = {"overlap": "weekly_hours", "order": "weekly_hours", "format": "weekly_hours"}.get(case, case)
        field = "weekly_hours" if case == "all_closed" else field
        assert error.code == "invalid", case
        assert words in error.message, (case, error.message)
        assert list(error.fields) == [field], case
    widget.refresh_from_db()
    assert widget.time_zone == "Europe/Berlin"  # nothing refused was stored


@pytest.mark.django_db
def test_the_api_reads_and_writes_the_hours_with_the_same_rules(api_client, tenant):
    widget = WidgetFactory(tenant=tenant)
    url = f"/api/v1/widgets/{widget.pk}/"
    data = api_client.get(url).json()
    assert data["hours_enabled"] is False and data["weekly_hours"] == OFFICE and data["closed_dates"] == []
    assert data["display_url_contains"] == [] and data["display_delay_seconds"] == 0

    bad = api_client.patch(
        url, {"weekly_hours": [[["10:00", "12:00"], ["11:00", "12:30"]], *OFFICE[1:]]}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {"weekly_hours": ["Monday: the intervals overlap."]}
    bad = api_client.patch(url, {"time_zone": "Moon/Base"}, format="json")
    assert bad.status_code == 400 and "time_zone" in bad.json()["error"]["fields"]
    bad = api_client.patch(url, {"display_delay_seconds": 900}, format="json")
    assert bad.status_code == 400 and "display_delay_seconds" in bad.json()["error"]["fields"]
    bad = api_client.patch(url, {"hours_enabled": "yes"}, format="json")
    assert bad.status_code == 400 and "hours_enabled" in bad.json()["error"]["fields"]

    good = api_client.patch(
        url,
        {
            "hours_enabled": True,
            "time_zone": "America/New_York",
            "closed_dates": ["2025-07-04"],
            "display_url_excludes": ["/checkout"],
            "display_delay_seconds": 5,
        },
        format="json",
    )
    assert good.status_code == 200, good.json()
    widget.refresh_from_db()
    assert (widget.hours_enabled, widget.time_zone, widget.closed_dates) == (True, "America/New_York", ["2025-07-04"])
    assert widget.display_url_excludes == ["/checkout"] and widget.display_delay_seconds == 5


def hours_form(**overrides) -> dict[str, str]:
    data = {
        "hours_enabled": "on",
        "time_zone": "Europe/Berlin",
        "closed_dates": "2025-12-25\n2025-12-26",
        "display_url_contains": "/pricing\n/help",
        "display_url_excludes": "/checkout",
        "display_delay_seconds": "10",
    }
    for weekday in range(7):
        data[f"day{weekday}_opens"], data[f"day{weekday}_closes"] = ("09:00", "17:00") if weekday < 5 else ("", "")
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_the_settings_tab_saves_hours_and_display_rules_and_shows_what_is_wrong(client: Client, admin, tenant):
    client.force_login(admin)
    widget = WidgetFactory(tenant=tenant, weekly_hours=[[["08:00", "12:00"], ["13:00", "18:00"]], *OFFICE[1:]])
    url = reverse("settings-widgets-hours", kwargs={"pk": widget.pk})
    page = client.get(url).content.decode()
    assert "Business hours" in page and "Display rules" in page and 'name="csrfmiddlewaretoken"' in page
    assert "Also open 13:00-18:00" in page  # a second interval set through the API is named, not lost

    # Saturday open until midnight (00:00 in a time input); Monday's row untouched keeps both its intervals.
    data = hours_form(day0_opens="08:00", day0_closes="12:00", day5_opens="10:00", day5_closes="00:00")
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    widget.refresh_from_db()
    assert widget.hours_enabled and widget.time_zone == "Europe/Berlin"
    assert widget.weekly_hours[0] == [["08:00", "12:00"], ["13:00", "18:00"]]
    assert widget.weekly_hours[5] == [["10:00", "24:00"]] and widget.weekly_hours[6] == []
    assert widget.closed_dates == ["2025-12-25", "2025-12-26"]
    assert widget.display_url_contains == ["/pricing", "/help"] and widget.display_delay_seconds == 10

    for data, words in [
        (
            hours_form(day2_opens="17:00", day2_closes="09:00"),
            "Wednesday: the closing time is before the opening time.",
        ),
        (hours_form(day3_opens="09:00", day3_closes=""), "Thursday: give both times, or neither"),
        (hours_form(day1_opens="9 am"), "Enter a time as HH:MM"),
        (hours_form(closed_dates="next friday"), "Not a date (YYYY-MM-DD): next friday"),
        (hours_form(time_zone="Mars/Olympus"), "Select a valid choice"),
        (hours_form(display_delay_seconds="601"), "less than or equal to 600"),
        (hours_form(**{f"day{d}_{p}": "" for d in range(7) for p in ("opens", "closes")}), "Open on at least one"),
    ]:
        response = client.post(url, data)
        assert response.status_code == 200
        assert words in response.content.decode(), words
    widget.refresh_from_db()
    assert widget.display_delay_seconds == 10  # nothing refused was stored

    # What the admin typed comes back as text, never as markup.
    response = client.post(url, hours_form(display_url_contains="<script>alert(1)</script>", closed_dates="<b>"))
    assert "<script>alert(1)</script>" not in response.content.decode()


# --- the widget's config and a start outside the hours ----------------------------------------------------------


def closed_today(widget: Widget) -> str:
    """Business hours on, open all week in UTC but closed today: the widget opens at the next midnight UTC."""
    today = datetime.now(tz=UTC).date()
    widget_save(
        tenant=widget.tenant,
        instance=widget,
        hours_enabled=True,
        time_zone="UTC",
        weekly_hours=ALL_WEEK,
        closed_dates=[today.isoformat()],
    )
    return f"{(today + timedelta(days=1)).isoformat()}T00:00:00+00:00"


def start(client: Client, widget: Widget, body: dict):
    return client.post(f"/widget/api/{widget.public_key}/sessions", data=body, content_type="application/json")


@pytest.mark.django_db
def test_the_config_says_closed_and_when_the_team_is_back_whoever_is_online(client, widget, queue, online):
    config = client.get(f"/widget/api/{widget.public_key}/config").json()
    assert (config["available"], config["unavailable_reason"], config["opens_at"]) == (True, None, None)
    assert config["display"] == {"url_contains": [], "url_excludes": [], "delay_seconds": 0}

    opens_at = closed_today(widget)
    widget_save(tenant=widget.tenant, instance=widget, display_url_excludes=["/checkout"], display_delay_seconds=3)
    config = client.get(f"/widget/api/{widget.public_key}/config").json()
    assert config["available"] is False and config["unavailable_reason"] == "closed"
    assert config["opens_at"] == opens_at
    assert config["display"] == {"url_contains": [], "url_excludes": ["/checkout"], "delay_seconds": 3}

    # Nothing open in the next fortnight: closed, with no time to give.
    today = datetime.now(tz=UTC).date()
    widget_save(
        tenant=widget.tenant,
        instance=widget,
        closed_dates=[(today + timedelta(days=n)).isoformat() for n in range(16)],
    )
    config = client.get(f"/widget/api/{widget.public_key}/config").json()
    assert (config["unavailable_reason"], config["opens_at"]) == ("closed", None)


@pytest.mark.django_db
def test_a_start_outside_the_hours_is_kept_as_a_message_and_takes_no_place_in_line(client, widget, queue, online):
    closed_today(widget)
    refused = start(client, widget, {"answers": {"name": "Nora"}, "message": ""})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "offline_message_required"

    response = start(client, widget, {"answers": {"name": "Nora"}, "message": "Are you open on Sunday?"})
    assert response.status_code == 201, response.json()
    assert response.json()["offline"] is True
    conversation = Conversation.objects.get(pk=response.json()["conversation"]["id"])
    assert conversation.status == ConversationStatus.WAITING and conversation.started_offline
    notice = Message.objects.get(conversation=conversation, event="conversation.offline")
    assert notice.body == "Message left outside business hours."
    assert queue_place(conversation=conversation) is None  # a message left for later waits in no line


@pytest.mark.django_db
def test_the_routing_aware_start_reports_offline_outside_the_hours(widget, queue, online):
    """Needs queueing.services.routing.conversation_request to ask widget_open_at before admission."""
    closed_today(widget)
    started = conversation_request(widget=widget, visitor_id=None, answers={"name": "Olga"}, message="Hello?")
    assert started.offline is True
    assert started.conversation.started_offline is True


@pytest.mark.django_db
def test_the_demo_widget_is_always_open_so_make_run_works_at_any_hour():
    demo_seed(host="127.0.0.1", port=8000)
    widget = Widget.objects.get(tenant__slug="demo")
    assert widget.hours_enabled is False
    assert widget_open_at(widget=widget, now=berlin(2025, 6, 8, 3, 0))  # a Sunday night
    assert (widget.display_url_contains, widget.display_url_excludes, widget.display_delay_seconds) == ([], [], 0)
