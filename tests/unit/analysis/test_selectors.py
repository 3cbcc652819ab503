"""The JSONPath-like selector of HTTP checks."""

from __future__ import annotations

import pytest

from dockroll.analysis.selectors import MISSING, SelectorSyntaxError, parse_selector

DOCUMENT = {
    "checks": {"db": {"ok": True, "latency_ms": 12.5}},
    "items": [{"c": 1}, {"c": 2}],
    "service.version": "1.4.0",
    "with space": {"x": None},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", DOCUMENT),
        ("$.checks.db.ok", True),
        ("$.checks.db.latency_ms", 12.5),
        ("$.items[0].c", 1),
        ("$.items[-1].c", 2),
        ("$.items[ 1 ].c", 2),
        ("$['service.version']", "1.4.0"),
        ('$["service.version"]', "1.4.0"),
        ("$['with space'].x", None),
        ("$.checks['db'].ok", True),
    ],
)
def test_select(text: str, expected: object) -> None:
    assert parse_selector(text).select(DOCUMENT) == expected


@pytest.mark.parametrize(
    "text",
    ["$.missing", "$.items[2]", "$.items[-3]", "$.checks.db.ok.deeper", "$.items.c", "$[0]"],
)
def test_missing_paths(text: str) -> None:
    assert parse_selector(text).select(DOCUMENT) is MISSING


@pytest.mark.parametrize(
    "text", ["checks.db", "$..db", "$.items[*]", "$.items[0:1]", "$.a b", "$[?(@.c)]", "$.[0]"]
)
def test_unsupported_syntax_is_rejected(text: str) -> None:
    with pytest.raises(SelectorSyntaxError):
        parse_selector(text)
