"""Template expressions and moment.js date formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockroll.tags._dateformat import format_moment, in_zone
from dockroll.tags._expressions import compile_template, is_raw_statement

MOMENT = datetime(2020, 1, 10, 15, 25, 50, 123_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("YYYYMMDD", "20200110"),
        ("YY-M-D", "20-1-10"),
        ("HH:mm:ss.SSS", "15:25:50.123"),
        ("H h hh k A a", "15 3 03 15 PM pm"),
        ("m s S SS SSSS", "25 50 1 12 1230"),
        ("ddd dddd dd d E", "Fri Friday Fr 5 5"),
        ("MMM MMMM Mo Do DDD DDDD Q", "Jan January 1st 10th 10 010 1"),
        ("W WW w GGGG gggg", "2 02 2 2020 2020"),
        ("Z ZZ", "+00:00 +0000"),
        ("X x", "1578669950 1578669950123"),
        ("[Week] W [of] YYYY", "Week 2 of 2020"),
        ("dddd, MMMM Do YYYY, h:mm:ss a", "Friday, January 10th 2020, 3:25:50 pm"),
        ("YYYY-MM-DDTHH:mm:ss.SSS[Z]", "2020-01-10T15:25:50.123Z"),
        ("\\Y YYYY", "Y 2020"),
    ],
)
def test_moment_tokens(fmt: str, expected: str) -> None:
    assert format_moment(MOMENT, fmt) == expected


@pytest.mark.parametrize(
    ("zone", "fmt", "expected"),
    [
        ("Asia/Tokyo", "YYYYMMDD-HHmmss Z", "20200111-002550 +09:00"),
        ("America/New_York", "YYYY-MM-DD HH:mm ZZ z", "2020-01-10 10:25 -0500 EST"),
        ("Asia/Kolkata", "HH:mm Z", "20:55 +05:30"),
    ],
)
def test_time_zones(zone: str, fmt: str, expected: str) -> None:
    assert format_moment(in_zone(MOMENT, zone), fmt) == expected


def test_default_format() -> None:
    assert format_moment(MOMENT, None) == "2020-01-10T15:25:50Z"
    plus_two = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert format_moment(plus_two, None) == "2020-01-10T17:25:50+02:00"


@pytest.mark.parametrize(
    ("day", "ordinal"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (31, "31st"),
    ],
)
def test_ordinals(day: int, ordinal: str) -> None:
    assert format_moment(datetime(2020, 1, day, tzinfo=UTC), "Do") == ordinal


@pytest.mark.parametrize(
    ("when", "week"),
    [
        (datetime(2020, 12, 31, tzinfo=UTC), "1 2021"),  # Thursday; week holding Jan 1 is week 1
        (datetime(2021, 1, 3, tzinfo=UTC), "2 2021"),  # a Sunday starts week 2
        (datetime(2022, 1, 1, tzinfo=UTC), "1 2022"),
    ],
)
def test_locale_weeks(when: datetime, week: str) -> None:
    assert format_moment(when, "w gggg") == week


@pytest.mark.parametrize(
    ("source", "scope", "expected"),
    [
        ("plain", {}, "plain"),
        ("{{branch}}", {"branch": "main"}, "main"),
        ("{{ branch }}-x", {"branch": "main"}, "main-x"),
        ("{{missing}}", {}, ""),
        ("{{n}}", {"n": 3}, "3"),
        ("{{a.b}}", {"a": {"b": "deep"}}, "deep"),
        ("{{v}}", {"v": "a=b&c"}, "a&#x3D;b&amp;c"),
        ("{{{v}}}", {"v": "a=b&c"}, "a=b&c"),
        ("{{! a comment }}x", {}, "x"),
        ("\\{{branch}}", {"branch": "main"}, "{{branch}}"),
        ("{{list}}", {"list": ["alpha", 2]}, "alpha,2"),
    ],
)
def test_templates(source: str, scope: dict[str, object], expected: str) -> None:
    assert compile_template(source).render(scope) == expected


def test_helpers_receive_arguments_and_options() -> None:
    calls: list[tuple[object, object]] = []

    def helper(args: object, options: object) -> str:
        calls.append((args, options))
        return "ok"

    rendered = compile_template("{{h 'a b' \"c\" 4 path tz='UTC'}}").render(
        {"h": helper, "path": "p"}
    )
    assert rendered == "ok"
    assert calls == [(["a b", "c", 4, "p"], {"tz": "UTC"})]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{{ raw }}.{{ version }}", False),
        ("{{ version }},{{raw }.", False),
        ("{{ raw }}", True),
        ("{{ raw}}", True),
        ("{{raw}}", True),
        ("v{{raw}}", False),
    ],
)
def test_is_raw_statement(pattern: str, expected: bool) -> None:
    assert is_raw_statement(pattern) is expected
