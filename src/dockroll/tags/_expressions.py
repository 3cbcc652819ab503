"""The ``{{ expression }}`` templates of the tag grammar.

docker/metadata-action renders ``pattern``, ``value``, ``prefix``, ``suffix``,
``enable`` and labels as Handlebars templates. Only the part of Handlebars
those templates use is implemented: simple mustaches (``{{name}}``,
``{{{name}}}``) whose name is looked up in a scope, optionally called with
literal or path arguments and ``key=value`` options. Block helpers, partials
and sub-expressions are refused with a clear error instead of being guessed.

Behaviour kept from Handlebars because it shows in the produced tags:
unknown names render as the empty string, values from ``{{ }}`` are
HTML-escaped (``{{{ }}}`` are not), and an unknown name called with
arguments is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockroll.errors import TagRuleError

__all__ = ["Helper", "Mustache", "Template", "compile_template", "is_raw_statement"]

#: A scope entry that is called: positional arguments, then ``key=value`` options.
Helper = Callable[[Sequence[Any], Mapping[str, Any]], Any]

_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#x27;",
    "`": "&#x60;",
    "=": "&#x3D;",
}
_ESCAPE_RE = re.compile(r"[&<>\"'`=]")

# Handlebars identifiers exclude whitespace and a fixed set of punctuation.
_ID = r"[^\s!\"#%-,\./;->@\[-\^`\{-~]+"
_ARG_RE = re.compile(
    rf"""\s*(?:
        (?P<key>{_ID})=                         # option name of key=value
      | (?P<dq>"(?:\\"|[^"])*")                 # "string"
      | (?P<sq>'(?:\\'|[^'])*')                 # 'string'
      | (?P<num>-?\d+(?:\.\d+)?)(?=[\s)}}]|$)   # number
      | (?P<path>(?:\.\.?/)*{_ID}(?:[./]{_ID})*|\.|this)  # path
    )""",
    re.VERBOSE,
)


class _Path:
    """An unquoted argument: a name looked up in the scope."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"_Path({self.name!r})"


@dataclass(frozen=True)
class Mustache:
    """One ``{{ ... }}`` statement."""

    name: str
    args: tuple[Any, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    escape: bool = True


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and mustaches, in order."""

    source: str
    parts: tuple[str | Mustache, ...] = field(default_factory=tuple)

    def render(self, scope: Mapping[str, Any]) -> str:
        """Render against ``scope``; callables in it are invoked as helpers."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            text = _to_text(_evaluate(part, scope, self.source))
            out.append(
                _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text) if part.escape else text
            )
        return "".join(out)


def compile_template(source: str) -> Template:
    """Parse ``source``; raise :class:`TagRuleError` on syntax it cannot handle."""
    parts: list[str | Mustache] = []
    literal: list[str] = []
    pos = 0
    while pos < len(source):
        start = source.find("{{", pos)
        if start < 0:
            literal.append(source[pos:])
            break
        # A backslash before {{ keeps the braces as text, as in Handlebars.
        if start > 0 and source[start - 1] == "\\":
            literal.append(source[pos : start - 1])
            end = source.find("{{", start + 2)
            stop = len(source) if end < 0 else end
            literal.append(source[start:stop])
            pos = stop
            continue
        literal.append(source[pos:start])
        triple = source.startswith("{{{", start)
        closer = "}}}" if triple else "}}"
        end = source.find(closer, start)
        if end < 0:
            raise TagRuleError(f"unclosed '{{{{' in expression {source!r}")
        inner = source[start + (3 if triple else 2) : end]
        mustache = _parse_mustache(inner.strip(" \t~"), source, escape=not triple)
        if mustache is not None:
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(mustache)
        pos = end + len(closer)
    if literal and "".join(literal):
        parts.append("".join(literal))
    return Template(source=source, parts=tuple(parts))


def is_raw_statement(source: str) -> bool:
    """True when the template is exactly one ``{{raw}}`` mustache.

    Pre-releases only keep a ``{{raw}}`` pattern; every other pattern falls
    back to ``{{version}}``.
    """
    try:
        template = compile_template(source)
    except TagRuleError:
        return False
    if len(template.parts) != 1:
        return False
    only = template.parts[0]
    return isinstance(only, Mustache) and only.name == "raw"


def _parse_mustache(inner: str, source: str, *, escape: bool) -> Mustache | None:
    if inner.startswith("!"):
        return None  # a comment renders nothing
    if inner[:1] in {"#", "/", "^", ">", "&"} or inner == "else" or inner.startswith("("):
        raise TagRuleError(
            f"unsupported template syntax '{{{{{inner}}}}}' in {source!r}",
            hint="only simple expressions such as {{branch}} or {{date 'YYYYMMDD'}} are supported",
        )
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(inner):
        if inner[pos:].strip() == "":
            break
        match = _ARG_RE.match(inner, pos)
        if match is None or match.end() == pos:
            raise TagRuleError(f"cannot parse expression '{{{{{inner}}}}}' in {source!r}")
        pos = match.end()
        if match.group("key") is not None:
            tokens.append(("key", match.group("key")))
        elif match.group("dq") is not None:
            tokens.append(("value", match.group("dq")[1:-1].replace('\\"', '"')))
        elif match.group("sq") is not None:
            tokens.append(("value", match.group("sq")[1:-1].replace("\\'", "'")))
        elif match.group("num") is not None:
            number = match.group("num")
            tokens.append(("value", float(number) if "." in number else int(number)))
        else:
            path = match.group("path")
            literals: dict[str, Any] = {"true": True, "false": False, "null": None}
            if path in literals:
                tokens.append(("value", literals[path]))
            elif path == "undefined":
                tokens.append(("value", None))
            else:
                tokens.append(("value", _Path(path)))
    if not tokens or tokens[0][0] != "value" or not isinstance(tokens[0][1], _Path):
        raise TagRuleError(f"cannot parse expression '{{{{{inner}}}}}' in {source!r}")
    name = tokens[0][1].name
    args: list[Any] = []
    options: list[tuple[str, Any]] = []
    index = 1
    while index < len(tokens):
        kind, value = tokens[index]
        if kind == "key":
            if index + 1 >= len(tokens) or tokens[index + 1][0] != "value":
                raise TagRuleError(f"option {value}= has no value in {source!r}")
            options.append((value, tokens[index + 1][1]))
            index += 2
            continue
        if options:
            raise TagRuleError(f"positional argument after options in {source!r}")
        args.append(value)
        index += 1
    return Mustache(name=name, args=tuple(args), options=tuple(options), escape=escape)


def _lookup(scope: Mapping[str, Any], name: str) -> Any:
    if name in {".", "this"}:
        return None
    current: Any = scope
    for segment in re.split(r"[./]", name.removeprefix("this.").removeprefix("this/")):
        if not isinstance(current, Mapping) or segment not in current:
            return None
        current = current[segment]
    return current


def _resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    if isinstance(value, _Path):
        found = _lookup(scope, value.name)
        return None if callable(found) else found
    return value


def _evaluate(mustache: Mustache, scope: Mapping[str, Any], source: str) -> Any:
    target = _lookup(scope, mustache.name)
    args = [_resolve(arg, scope) for arg in mustache.args]
    options = {key: _resolve(value, scope) for key, value in mustache.options}
    if callable(target):
        return target(args, options)
    if args or options:
        raise TagRuleError(
            f"unknown helper {mustache.name!r} in {source!r}",
            hint="only date and commit_date take arguments",
        )
    return target


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(_to_text(item) for item in value)
    return str(value)
