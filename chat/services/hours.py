"""A widget's business hours and display rules: checking what an admin enters, and whether the team is open now.

Hours are wall-clock times in the widget's IANA time zone, so a schedule keeps meaning "09:00 in Berlin" across
daylight-saving changes; zoneinfo does the arithmetic. Everything here is pure: no queries, no writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from chat.models import Widget
from contactcenter.errors import ApplicationError

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LOOKAHEAD_DAYS = 14  # how far widget_next_open looks for the next opening
INTERVALS_PER_DAY_MAX = 6
CLOSED_DATES_MAX = 366
DISPLAY_RULES_MAX = 20
DISPLAY_RULE_CHARS = 200
DISPLAY_DELAY_MAX = 600
DAY_END = 24 * 60

_CLOCK = re.compile(r"^(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _invalid(field: str, errors: list[str]) -> ApplicationError:
    return ApplicationError("invalid", errors[0], {field: errors})


def _minutes(clock: str) -> int | None:
    """Minutes since midnight of "HH:MM" ("24:00" is the end of the day); None when it is not that."""
    match = _CLOCK.match(clock)
    if match is None:
        return None
    hours, minutes = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return int(hours) * 60 + int(minutes)


@cache
def time_zone_choices() -> tuple[str, ...]:
    """The IANA names zoneinfo knows here (read from disk once per process)."""
    return tuple(sorted(available_timezones()))


def time_zone_clean(value: Any) -> str:
    name = str(value or "").strip()
    if name not in time_zone_choices():
        raise _invalid("time_zone", [f"Unknown time zone “{name[:64]}”: use an IANA name such as Europe/Berlin."])
    return name


def weekly_hours_clean(value: Any) -> list[list[list[str]]]:
    """Seven lists (Monday first) of ["HH:MM", "HH:MM"] intervals, each opening before it closes; returned sorted.
    Overlapping intervals of one day are refused, naming the day."""
    if not isinstance(value, list | tuple) or len(value) != 7:
        raise _invalid("weekly_hours", ["Give seven days of hours, Monday first (an empty list: closed that day)."])
    errors: list[str] = []
    cleaned: list[list[list[str]]] = []
    for weekday, intervals in enumerate(value):
        day = WEEKDAYS[weekday]
        if not isinstance(intervals, list | tuple):
            errors.append(f"{day}: expected a list of [opens, closes] intervals.")
            cleaned.append([])
            continue
        if len(intervals) > INTERVALS_PER_DAY_MAX:
            errors.append(f"{day}: at most {INTERVALS_PER_DAY_MAX} intervals.")
            cleaned.append([])
            continue
        spans: list[tuple[int, int]] = []
        for interval in intervals:
            if not isinstance(interval, list | tuple) or len(interval) != 2:
                errors.append(f'{day}: each interval is [opens, closes], e.g. ["09:00", "17:00"].')
                continue
            opens, closes = (_minutes(str(part).strip()) for part in interval)
            if opens is None or closes is None:
                errors.append(f"{day}: times are HH:MM on a 24-hour clock, e.g. 09:00 or 17:30 (24:00 ends the day).")
            elif opens >= closes:
                errors.append(f"{day}: {interval[0]} to {interval[1]} closes before it opens.")
            else:
                spans.append((opens, closes))
        spans.sort()
        for (_, first_closes), (second_opens, _) in pairwise(spans):
            if second_opens < first_closes:
                errors.append(f"{day}: the intervals overlap.")
                break
        cleaned.append([[_clock(opens), _clock(closes)] for opens, closes in spans])
    if errors:
        raise _invalid("weekly_hours", errors)
    return cleaned


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def closed_dates_clean(value: Any) -> list[str]:
    """Dates the team is closed ("YYYY-MM-DD", in the widget's time zone), sorted, each once."""
    if isinstance(value, str):
        value = [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]
    if not isinstance(value, list | tuple):
        raise _invalid("closed_dates", ["Give a list of dates as YYYY-MM-DD."])
    bad: list[str] = []
    days: set[str] = set()
    for item in value:
        text = str(item).strip()
        try:
            if not _DATE.match(text):
                raise ValueError(text)
            days.add(date.fromisoformat(text).isoformat())
        except ValueError:
            bad.append(text)
    if bad:
        raise _invalid("closed_dates", [f"Not a date (YYYY-MM-DD): {', '.join(bad[:5])}"])
    if len(days) > CLOSED_DATES_MAX:
        raise _invalid("closed_dates", [f"At most {CLOSED_DATES_MAX} closed dates."])
    return sorted(days)


def display_rules_clean(value: Any, *, field: str) -> list[str]:
    """Parts of a page URL (`display_url_contains` / `display_url_excludes`): trimmed, each once, bounded."""
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list | tuple):
        raise _invalid(field, ["Give a list of texts to look for in the page's URL."])
    rules = list(dict.fromkeys(str(item).strip() for item in value if str(item).strip()))
    if len(rules) > DISPLAY_RULES_MAX:
        raise _invalid(field, [f"At most {DISPLAY_RULES_MAX} rules."])
    long = [rule for rule in rules if len(rule) > DISPLAY_RULE_CHARS]
    if long:
        raise _invalid(field, [f"A rule has at most {DISPLAY_RULE_CHARS} characters: “{long[0][:40]}…”"])
    return rules


def widget_hours_clean(fields: dict[str, Any], *, instance: Widget | None) -> None:
    """Checks and normalises, in place, the business-hours and display fields among `fields` (widget_save's)."""
    if "time_zone" in fields:
        fields["time_zone"] = time_zone_clean(fields["time_zone"])
    if "weekly_hours" in fields:
        fields["weekly_hours"] = weekly_hours_clean(fields["weekly_hours"])
    if "closed_dates" in fields:
        fields["closed_dates"] = closed_dates_clean(fields["closed_dates"])
    for field in ("display_url_contains", "display_url_excludes"):
        if field in fields:
            fields[field] = display_rules_clean(fields[field], field=field)
    if "display_delay_seconds" in fields:
        delay = fields["display_delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= DISPLAY_DELAY_MAX:
            message = f"Seconds on the page before the launcher appears: 0 to {DISPLAY_DELAY_MAX}."
            raise _invalid("display_delay_seconds", [message])
    enabled = fields.get("hours_enabled", instance.hours_enabled if instance is not None else False)
    weekly = fields.get("weekly_hours", instance.weekly_hours if instance is not None else None)
    if enabled and weekly is not None and not any(weekly):
        message = "Open on at least one day, or turn business hours off."
        raise _invalid("weekly_hours", [message])


# --- open or closed ---------------------------------------------------------------------------------------------


def _zone(widget: Widget) -> ZoneInfo:
    try:
        return ZoneInfo(widget.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # a row written around the service: never an error for a visitor


def _spans(widget: Widget, weekday: int) -> list[tuple[int, int]]:
    """The day's intervals in minutes, sorted; anything malformed (written around the service) is skipped."""
    week = widget.weekly_hours if isinstance(widget.weekly_hours, list) else []
    day = week[weekday] if weekday < len(week) and isinstance(week[weekday], list) else []
    spans: list[tuple[int, int]] = []
    for interval in day:
        if isinstance(interval, list) and len(interval) == 2:
            opens, closes = _minutes(str(interval[0])), _minutes(str(interval[1]))
            if opens is not None and closes is not None and opens < closes:
                spans.append((opens, closes))
    return sorted(spans)


def _closed_days(widget: Widget) -> set[str]:
    return {str(day) for day in widget.closed_dates} if isinstance(widget.closed_dates, list) else set()


def widget_open_at(*, widget: Widget, now: datetime) -> bool:
    """Whether the team is open at `now` (aware): always when business hours are off."""
    if not widget.hours_enabled:
        return True
    local = now.astimezone(_zone(widget))
    if local.date().isoformat() in _closed_days(widget):
        return False
    second = local.hour * 3600 + local.minute * 60 + local.second
    return any(opens * 60 <= second < closes * 60 for opens, closes in _spans(widget, local.weekday()))


def _first_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The first moment at or after the wall-clock time `minute` of `day` in `zone`.

    In a skipped hour (spring forward) that wall time never happens: the answer is the moment the clocks jump.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    moment = wall.replace(tzinfo=zone)
    if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return moment  # fold=0: of a repeated hour (fall back), the first time round
    # In the gap the two folds give the instants either side of the jump: the jump is the first moment past `wall`.
    low, high = sorted(int(wall.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1))
    while low < high:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle + 1
    return datetime.fromtimestamp(low, zone)


def _openings(widget: Widget, start: date, days: int) -> Iterable[tuple[datetime, datetime]]:
    zone, closed = _zone(widget), _closed_days(widget)
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        if day.isoformat() in closed:
            continue
        for opens, closes in _spans(widget, day.weekday()):
            yield _first_instant(day, opens, zone), _first_instant(day, closes, zone)


def widget_next_open(*, widget: Widget, now: datetime) -> datetime | None:
    """When the team is next open, in the widget's time zone: `now` while open; None when no opening comes
    within LOOKAHEAD_DAYS (every day closed, or a long run of closed dates)."""
    if widget_open_at(widget=widget, now=now):
        return now
    zone = _zone(widget)
    for opens, closes in _openings(widget, now.astimezone(zone).date(), LOOKAHEAD_DAYS):
        if opens >= now and closes > opens:
            return opens
    return None


def widget_display_rules(widget: Widget) -> dict[str, Any]:
    """The display rules as the widget's config carries them (docs/protocol.md §6)."""
    return {
        "url_contains": list(widget.display_url_contains or []),
        "url_excludes": list(widget.display_url_excludes or []),
        "delay_seconds": widget.display_delay_seconds,
    }
