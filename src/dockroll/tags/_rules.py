"""Parse the ``tags``, ``flavor`` and ``images`` inputs of the tag grammar.

Each rule is one CSV record of ``key=value`` fields, as in
docker/metadata-action::

    type=semver,pattern={{major}}.{{minor}}
    type=raw,value=latest,enable={{is_default_branch}}
    type=match,"pattern=v(\\d+)",group=1
    foo                                  # shorthand for type=raw,value=foo

Where the action silently ignores a mistake (an attribute a type does not
know, a priority that is not a number) dockroll refuses the rule, naming it,
because a silently dropped tag is found only after a deploy.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from dockroll.errors import TagRuleError

__all__ = [
    "DEFAULT_PRIORITIES",
    "Flavor",
    "ImageName",
    "RuleType",
    "TagRule",
    "compile_js_regex",
    "parse_flavor",
    "parse_images",
    "parse_rules",
    "split_input_lines",
    "split_regex_literal",
]

RuleType = Literal["schedule", "semver", "pep440", "match", "edge", "ref", "raw", "sha"]

DEFAULT_PRIORITIES: Mapping[str, int] = MappingProxyType(
    {
        "schedule": 1000,
        "semver": 900,
        "pep440": 900,
        "match": 800,
        "edge": 700,
        "ref": 600,
        "raw": 200,
        "sha": 100,
    }
)

_COMMON_ATTRIBUTES = frozenset({"enable", "priority", "prefix", "suffix"})
_TYPE_ATTRIBUTES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "schedule": frozenset({"pattern"}),
        "semver": frozenset({"pattern", "value", "match"}),
        "pep440": frozenset({"pattern", "value", "match"}),
        "match": frozenset({"pattern", "value", "group"}),
        "edge": frozenset({"branch"}),
        "ref": frozenset({"event"}),
        "raw": frozenset({"value"}),
        "sha": frozenset({"format"}),
    }
)
_REF_EVENTS = ("branch", "tag", "pr")
_SHA_FORMATS = ("short", "long")


@dataclass(frozen=True)
class TagRule:
    """One parsed ``tags`` entry.

    ``attrs`` holds the attributes the user wrote plus the type's defaults;
    whether ``prefix``/``suffix`` are present matters, because a present one
    (even empty) replaces the flavor's.
    """

    text: str
    type: RuleType
    attrs: Mapping[str, str]
    priority: float

    def get(self, name: str) -> str:
        """The attribute's value, or the empty string."""
        return self.attrs.get(name, "")


@dataclass(frozen=True)
class Flavor:
    """Global ``flavor`` settings that apply to every generated tag."""

    latest: Literal["auto", "true", "false"] = "auto"
    prefix: str = ""
    prefix_latest: bool = False
    suffix: str = ""
    suffix_latest: bool = False


@dataclass(frozen=True)
class ImageName:
    """One ``images`` entry."""

    name: str
    enable: bool = True


@dataclass
class _Fields:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    bare: list[str] = field(default_factory=list)


def split_input_lines(items: Iterable[str]) -> list[str]:
    """Flatten list items that may hold a whole ``|`` block into single lines.

    Blank lines and lines starting with ``#`` are dropped, like the action's
    list inputs; a ``#`` later in a line is kept as text.
    """
    lines: list[str] = []
    for item in items:
        for line in item.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                lines.append(stripped)
    return lines


def _csv_fields(text: str, what: str) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True, skipinitialspace=False))
    except csv.Error as exc:
        raise TagRuleError(f"malformed {what} {text!r}: {exc}") from exc
    return rows[0] if rows else []


def _split_fields(text: str, what: str) -> _Fields:
    fields = _Fields()
    for raw_field in _csv_fields(text, what):
        entry = raw_field.strip()
        if not entry:
            raise TagRuleError(
                f"malformed {what} {text!r}: empty field",
                hint="remove the stray comma",
            )
        # Split at the first '=' that has a key before it; '=x' has no key.
        match = re.match(r"^([^=]+?)=(.*)$", entry, re.DOTALL)
        if match is None:
            if entry.startswith("="):
                raise TagRuleError(
                    f"malformed {what} {text!r}: {entry!r} has no attribute name before '='",
                )
            fields.bare.append(entry)
        else:
            fields.pairs.append((match.group(1).strip().lower(), match.group(2).strip()))
    return fields


def _parse_rule(text: str) -> TagRule:
    fields = _split_fields(text, "tag rule")
    rule_type: str | None = None
    attrs: dict[str, str] = {}
    for key, value in fields.pairs:
        if key == "type":
            if value not in DEFAULT_PRIORITIES:
                raise TagRuleError(
                    f"unknown tag type {value!r} in rule {text!r}",
                    hint="use one of: " + ", ".join(DEFAULT_PRIORITIES),
                )
            rule_type = value
        else:
            attrs[key] = value
    if len(fields.bare) > 1:
        raise TagRuleError(
            f"malformed tag rule {text!r}: several values without a name "
            f"({', '.join(map(repr, fields.bare))})",
            hint="write attributes as key=value, e.g. type=raw,value=foo",
        )
    if fields.bare:
        attrs["value"] = fields.bare[0]
    rule_type = rule_type or "raw"

    allowed = _COMMON_ATTRIBUTES | _TYPE_ATTRIBUTES[rule_type]
    unknown = sorted(set(attrs) - allowed)
    if unknown:
        raise TagRuleError(
            f"unknown attribute {unknown[0]!r} for type={rule_type} in rule {text!r}",
            hint=f"type={rule_type} takes: " + ", ".join(sorted(allowed)),
        )

    _apply_type_defaults(rule_type, attrs, text)
    attrs.setdefault("enable", "true")
    priority_text = attrs.setdefault("priority", str(DEFAULT_PRIORITIES[rule_type]))
    try:
        priority = float(priority_text)
    except ValueError:
        raise TagRuleError(
            f"invalid priority {priority_text!r} in rule {text!r}",
            hint="priority must be a number; higher comes first",
        ) from None
    return TagRule(
        text=text,
        type=rule_type,  # type: ignore[arg-type]  # checked against DEFAULT_PRIORITIES above
        attrs=MappingProxyType(attrs),
        priority=priority,
    )


def compile_js_regex(pattern: str, flags: str, rule_text: str) -> re.Pattern[str]:
    """Compile a JavaScript regular expression (as the action's rules hold) for Python."""
    # JavaScript named groups are written (?<name>...); Python wants (?P<name>...).
    translated = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)
    py_flags = 0
    if "i" in flags:
        py_flags |= re.IGNORECASE
    if "m" in flags:
        py_flags |= re.MULTILINE
    if "s" in flags:
        py_flags |= re.DOTALL
    try:
        return re.compile(translated, py_flags)
    except re.error as exc:
        raise TagRuleError(
            f"invalid regular expression {pattern!r} in rule {rule_text!r}: {exc}"
        ) from exc


def split_regex_literal(pattern: str) -> tuple[str, str] | None:
    """Split ``/body/flags`` into body and flags; None for a plain pattern."""
    literal = re.fullmatch(r"/(.+)/(.*)", pattern, re.DOTALL)
    return (literal.group(1), literal.group(2)) if literal else None


def _apply_type_defaults(rule_type: str, attrs: dict[str, str], text: str) -> None:
    if rule_type == "schedule":
        attrs.setdefault("pattern", "nightly")
    elif rule_type in {"semver", "pep440"}:
        if "pattern" not in attrs:
            raise TagRuleError(
                f"missing pattern attribute in rule {text!r}",
                hint="e.g. type=semver,pattern={{version}}",
            )
        attrs.setdefault("value", "")
        if attrs.setdefault("match", ""):
            compile_js_regex(attrs["match"], "", text)
    elif rule_type == "match":
        if "pattern" not in attrs:
            raise TagRuleError(
                f"missing pattern attribute in rule {text!r}",
                hint="e.g. type=match,pattern=v(.*),group=1",
            )
        group = attrs.setdefault("group", "0")
        if not re.fullmatch(r"\s*\d*\s*", group):
            raise TagRuleError(
                f"invalid match group {group!r} in rule {text!r}",
                hint="group is the number of a capture group, 0 for the whole match",
            )
        attrs.setdefault("value", "")
        literal = split_regex_literal(attrs["pattern"])
        if literal is not None:
            compile_js_regex(literal[0], literal[1], text)
        else:
            compile_js_regex(attrs["pattern"], "", text)
    elif rule_type == "edge":
        attrs.setdefault("branch", "")
    elif rule_type == "ref":
        event = attrs.get("event")
        if event is None:
            raise TagRuleError(
                f"missing event attribute in rule {text!r}",
                hint="use event=branch, event=tag or event=pr",
            )
        if event not in _REF_EVENTS:
            raise TagRuleError(
                f"invalid event {event!r} in rule {text!r}",
                hint="use event=branch, event=tag or event=pr",
            )
        if event == "pr":
            attrs.setdefault("prefix", "pr-")
    elif rule_type == "raw":
        if "value" not in attrs:
            raise TagRuleError(
                f"missing value attribute in rule {text!r}",
                hint="e.g. type=raw,value=latest",
            )
    elif rule_type == "sha":
        attrs.setdefault("prefix", "sha-")
        fmt = attrs.setdefault("format", "short")
        if fmt not in _SHA_FORMATS:
            raise TagRuleError(
                f"invalid format {fmt!r} in rule {text!r}",
                hint="use format=short or format=long",
            )


def parse_rules(items: Sequence[str]) -> list[TagRule]:
    """Parse tag rules and order them by priority, highest first.

    Rules of equal priority keep the order they were written in.
    """
    rules = [_parse_rule(line) for line in split_input_lines(items)]
    return sorted(rules, key=lambda rule: -rule.priority)


def parse_flavor(items: Sequence[str]) -> Flavor:
    """Parse ``flavor`` lines such as ``latest=auto`` or ``suffix=-dev,onlatest=true``."""
    latest = "auto"
    prefix = suffix = ""
    prefix_latest = suffix_latest = False
    for line in split_input_lines(items):
        onlatest_for = ""
        for raw_field in _csv_fields(line, "flavor entry"):
            # Only the text between the first and second '=' counts, as in the action.
            parts = [part.strip() for part in raw_field.split("=")]
            if len(parts) == 1:
                raise TagRuleError(
                    f"invalid flavor entry {line!r}",
                    hint="flavor entries are latest=, prefix= or suffix= (with onlatest=)",
                )
            key, value = parts[0].lower(), parts[1]
            if key == "latest":
                if value not in {"auto", "true", "false"}:
                    raise TagRuleError(
                        f"invalid latest flavor entry {line!r}",
                        hint="use latest=auto, latest=true or latest=false",
                    )
                latest = value
            elif key == "prefix":
                prefix, onlatest_for = value, "prefix"
            elif key == "suffix":
                suffix, onlatest_for = value, "suffix"
            elif key == "onlatest":
                if value not in {"true", "false"}:
                    raise TagRuleError(
                        f"invalid value {value!r} for onlatest in flavor entry {line!r}",
                        hint="use onlatest=true or onlatest=false",
                    )
                if onlatest_for == "prefix":
                    prefix_latest = value == "true"
                elif onlatest_for == "suffix":
                    suffix_latest = value == "true"
            else:
                raise TagRuleError(
                    f"unknown flavor entry {line!r}",
                    hint="flavor entries are latest=, prefix= or suffix= (with onlatest=)",
                )
    return Flavor(
        latest=latest,  # type: ignore[arg-type]  # validated above
        prefix=prefix,
        prefix_latest=prefix_latest,
        suffix=suffix,
        suffix_latest=suffix_latest,
    )


def parse_images(items: Sequence[str]) -> list[ImageName]:
    """Parse ``images`` entries as the action does.

    One line of bare names separated by commas is the older list form
    (``org/app,ghcr.io/user/app``). Otherwise every line is one image: its
    name bare or as ``name=``, optionally ``enable=true|false``
    (``ghcr.io/user/app,enable=false``). Where the action would quietly keep
    the last of two names or drop an empty one, dockroll refuses the entry.
    """
    lines = split_input_lines(items)
    if len(lines) == 1:
        fields = _csv_fields(lines[0], "image entry")
        if fields and all("=" not in entry for entry in fields):
            return [ImageName(name=entry.strip()) for entry in fields if entry.strip()]
    return [_parse_image(line) for line in lines]


_IMAGE_HINT = (
    "write one image per entry: a name, optionally with enable=, e.g. ghcr.io/acme/app,enable=false"
)


def _parse_image(line: str) -> ImageName:
    fields = _split_fields(line, "image entry")
    names = list(fields.bare)
    enable = True
    for key, value in fields.pairs:
        if key == "name":
            names.append(value)
        elif key == "enable":
            if value not in {"true", "false"}:
                raise TagRuleError(
                    f"invalid enable value {value!r} in image entry {line!r}",
                    hint="use enable=true or enable=false",
                )
            enable = value == "true"
        else:
            raise TagRuleError(
                f"unknown attribute {key!r} in image entry {line!r}",
                hint="an image entry takes its name (bare or name=) and enable=true|false",
            )
    if len(names) > 1:
        raise TagRuleError(
            f"image entry {line!r} names more than one image ({', '.join(map(repr, names))})",
            hint="names separated by commas must be the only images line; "
            "with several lines, write one image per line"
            if not fields.pairs
            else _IMAGE_HINT,
        )
    if not names or not names[0]:
        raise TagRuleError(f"image entry {line!r} has no name", hint=_IMAGE_HINT)
    return ImageName(name=names[0], enable=enable)
