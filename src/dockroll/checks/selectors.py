"""A small JSONPath-like selector for picking one value out of a JSON document.

``$`` is the document; ``.name`` a key; ``[0]`` a list index (negative counts from
the end); ``['key with dots']`` or ``["key"]`` a key with any characters::

    $.checks.db.ok
    $.items[0].latency_ms
    $['service.version']

Wildcards, filters and slices are not supported: a check compares one value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MISSING", "Selector", "SelectorSyntaxError", "parse_selector"]

_KEY = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)")\s*\]""")


class SelectorSyntaxError(ValueError):
    """A selector does not follow the grammar of :mod:`dockroll.checks.selectors`."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()
"""What :meth:`Selector.select` returns when the document has no value at the path."""


@dataclass(frozen=True)
class Selector:
    """A parsed selector: a path of keys (str) and list indexes (int)."""

    text: str
    path: tuple[str | int, ...]

    def select(self, document: object) -> object:
        """The value at the path, or :data:`MISSING`."""
        here = document
        for step in self.path:
            if isinstance(step, int):
                if not isinstance(here, list) or not -len(here) <= step < len(here):
                    return MISSING
                here = here[step]
            else:
                if not isinstance(here, dict) or step not in here:
                    return MISSING
                here = here[step]
        return here

    def __str__(self) -> str:
        return self.text


def parse_selector(text: str) -> Selector:
    """Parse ``text``; :class:`SelectorSyntaxError` says where it went wrong."""
    stripped = text.strip()
    if not stripped.startswith("$"):
        raise SelectorSyntaxError(f"{text!r}: a selector starts with '$', e.g. $.checks.db.ok")
    path: list[str | int] = []
    position = 1
    while position < len(stripped):
        if match := _KEY.match(stripped, position):
            path.append(match.group(1))
        elif match := _INDEX.match(stripped, position):
            path.append(int(match.group(1)))
        elif match := _QUOTED.match(stripped, position):
            key = match.group(1) if match.group(1) is not None else match.group(2)
            path.append(key)
        else:
            raise SelectorSyntaxError(
                f"{text!r}: cannot read {stripped[position:]!r}; use .key, [0] or ['any key']"
            )
        position = match.end()
    return Selector(stripped, tuple(path))
