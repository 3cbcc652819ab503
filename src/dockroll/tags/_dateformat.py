"""Render datetimes with moment.js format strings.

The tag grammar borrows ``{{date 'YYYYMMDD' tz='Asia/Tokyo'}}`` from
docker/metadata-action, whose formats are moment.js display tokens. Only the
display side is needed here: a format string in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dockroll.errors import TagRuleError

__all__ = ["format_moment", "in_zone"]

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Longest alternatives first, as moment itself matches them; any other
# character is copied through unchanged.
_TOKEN = re.compile(
    r"\[[^\[]*\]|\\.|"
    r"(Mo|MMMM|MMM|MM|M|Do|DDDo|DDDD|DDD|DD|D|dddd|ddd|dd|do|d|wo|ww|w|Wo|WW|W|Qo|Q|"
    r"YYYYYY|YYYYY|YYYY|YY|Y|gggg|gg|GGGG|GG|e|E|a|A|hh|h|HH|H|kk|k|mm|m|ss|s|S{1,9}|"
    r"x|X|zz|z|ZZ|Z)",
    re.DOTALL,
)

# moment's default output when a format is omitted; UTC instants print a
# literal Z instead of +00:00.
_DEFAULT_FORMAT = "YYYY-MM-DDTHH:mm:ssZ"
_DEFAULT_FORMAT_UTC = "YYYY-MM-DDTHH:mm:ss[Z]"


def in_zone(moment: datetime, zone: str) -> datetime:
    """Convert an aware datetime to the IANA zone ``zone``."""
    try:
        tzinfo = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TagRuleError(
            f"unknown time zone {zone!r}",
            hint="use an IANA zone name such as 'UTC' or 'Europe/Berlin'",
        ) from exc
    return moment.astimezone(tzinfo)


def format_moment(moment: datetime, fmt: str | None) -> str:
    """Format an aware ``moment`` with a moment.js format string.

    ``fmt=None`` gives moment's default ISO-8601 rendering.
    """
    if fmt is None:
        offset = moment.utcoffset()
        fmt = _DEFAULT_FORMAT_UTC if offset == timedelta(0) else _DEFAULT_FORMAT

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if match.group(1) is None:
            if text.startswith("["):
                return text[1:-1]
            if text.startswith("\\"):
                return text[1:]
            return text
        render = _RENDERERS.get(text)
        if render is not None:
            return render(moment)
        # Fractional seconds come in nine widths; all share one rule.
        return _fraction(moment, len(text))

    return _TOKEN.sub(replace, fmt)


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _offset(moment: datetime, separator: str) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{separator}{mins:02d}"


def _fraction(moment: datetime, width: int) -> str:
    millis = f"{moment.microsecond // 1000:03d}"
    return (millis + "0" * width)[:width]


def _sunday_weekday(moment: datetime) -> int:
    # Python counts Monday=0; moment counts Sunday=0.
    return (moment.weekday() + 1) % 7


def _hour12(moment: datetime) -> int:
    return moment.hour % 12 or 12


def _year(moment: datetime) -> str:
    year = moment.year
    return f"+{year}" if year > 9999 else str(year)


def _locale_week(moment: datetime) -> tuple[int, int]:
    """Week and week-year of the English locale: weeks start on Sunday and
    the week holding January 1st is week 1."""
    day = moment.date()
    start_of_week = day - timedelta(days=_sunday_weekday(moment))
    # The week containing Jan 1 of (start_of_week + 6 days)'s year is week 1.
    end_of_week = start_of_week + timedelta(days=6)
    week_year = end_of_week.year
    jan1 = date(week_year, 1, 1)
    first_week_start = jan1 - timedelta(days=(jan1.weekday() + 1) % 7)
    week = (start_of_week - first_week_start).days // 7 + 1
    return week, week_year


def _quarter(moment: datetime) -> int:
    return (moment.month - 1) // 3 + 1


def _day_of_year(moment: datetime) -> int:
    return moment.timetuple().tm_yday


def _epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp() // 1)


def _epoch_millis(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_RENDERERS: dict[str, Callable[[datetime], str]] = {
    "M": lambda m: str(m.month),
    "Mo": lambda m: _ordinal(m.month),
    "MM": lambda m: f"{m.month:02d}",
    "MMM": lambda m: _MONTHS[m.month - 1][:3],
    "MMMM": lambda m: _MONTHS[m.month - 1],
    "Q": lambda m: str(_quarter(m)),
    "Qo": lambda m: _ordinal(_quarter(m)),
    "D": lambda m: str(m.day),
    "Do": lambda m: _ordinal(m.day),
    "DD": lambda m: f"{m.day:02d}",
    "DDD": lambda m: str(_day_of_year(m)),
    "DDDo": lambda m: _ordinal(_day_of_year(m)),
    "DDDD": lambda m: f"{_day_of_year(m):03d}",
    "d": lambda m: str(_sunday_weekday(m)),
    "do": lambda m: _ordinal(_sunday_weekday(m)),
    "dd": lambda m: _WEEKDAYS[_sunday_weekday(m)][:2],
    "ddd": lambda m: _WEEKDAYS[_sunday_weekday(m)][:3],
    "dddd": lambda m: _WEEKDAYS[_sunday_weekday(m)],
    "e": lambda m: str(_sunday_weekday(m)),
    "E": lambda m: str(m.isoweekday()),
    "w": lambda m: str(_locale_week(m)[0]),
    "wo": lambda m: _ordinal(_locale_week(m)[0]),
    "ww": lambda m: f"{_locale_week(m)[0]:02d}",
    "W": lambda m: str(m.isocalendar()[1]),
    "Wo": lambda m: _ordinal(m.isocalendar()[1]),
    "WW": lambda m: f"{m.isocalendar()[1]:02d}",
    "Y": _year,
    "YY": lambda m: f"{m.year % 100:02d}",
    "YYYY": lambda m: f"{m.year:04d}",
    "YYYYY": lambda m: f"{m.year:05d}",
    "YYYYYY": lambda m: f"{'-' if m.year < 0 else '+'}{abs(m.year):06d}",
    "gg": lambda m: f"{_locale_week(m)[1] % 100:02d}",
    "gggg": lambda m: f"{_locale_week(m)[1]:04d}",
    "GG": lambda m: f"{m.isocalendar()[0] % 100:02d}",
    "GGGG": lambda m: f"{m.isocalendar()[0]:04d}",
    "a": lambda m: "am" if m.hour < 12 else "pm",
    "A": lambda m: "AM" if m.hour < 12 else "PM",
    "H": lambda m: str(m.hour),
    "HH": lambda m: f"{m.hour:02d}",
    "h": lambda m: str(_hour12(m)),
    "hh": lambda m: f"{_hour12(m):02d}",
    "k": lambda m: str(m.hour or 24),
    "kk": lambda m: f"{m.hour or 24:02d}",
    "m": lambda m: str(m.minute),
    "mm": lambda m: f"{m.minute:02d}",
    "s": lambda m: str(m.second),
    "ss": lambda m: f"{m.second:02d}",
    "X": lambda m: str(_epoch_seconds(m)),
    "x": lambda m: str(_epoch_millis(m)),
    "z": lambda m: m.tzname() or "",
    "zz": lambda m: m.tzname() or "",
    "Z": lambda m: _offset(m, ":"),
    "ZZ": lambda m: _offset(m, ""),
}
