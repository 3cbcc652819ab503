"""Success and failure conditions over a measured ``result``, parsed safely.

The grammar is deliberately tiny and never evaluated by Python::

    condition  := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := ("not" | "!") not | "(" condition ")" | comparison
    comparison := [operand] op operand        # a missing left operand means `result`
    op         := "<" | "<=" | ">" | ">=" | "==" | "!="
    operand    := "result" | number | "true" | "false" | "null" | 'text' | "text"

``"< 0.5"``, ``"result >= 0.99"``, ``"== true"`` and ``"result > 1 and result < 5"`` are
conditions; anything else (names, calls, attributes, arithmetic) is a
:class:`ConditionSyntaxError` when the settings load. Numbers compare as numbers;
``==``/``!=`` also compare booleans, text and null; an ordering between values that
have none (text < number) is simply false.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Condition", "ConditionSyntaxError", "Value", "parse_condition"]

Value = float | bool | str | None
"""What a measurement yields: a number, a boolean, text or null (from JSON)."""

_MAX_LENGTH = 500
_MAX_DEPTH = 16
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>'[^'\\]*'|"[^"\\]*")
      | (?P<op><=|>=|==|!=|<|>|&&|\|\||!|\(|\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}
_RESULT = object()


class ConditionSyntaxError(ValueError):
    """A condition does not follow the grammar of :mod:`dockroll.checks.conditions`."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    value: Value = None


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            shown = text[position : position + 20]
            raise ConditionSyntaxError(f"unexpected {shown!r} at position {position}")
        position = match.end()
        if number := match.group("number"):
            tokens.append(_Token("value", number, float(number)))
        elif string := match.group("string"):
            tokens.append(_Token("value", string, string[1:-1]))
        elif op := match.group("op"):
            kind = {"&&": "and", "||": "or", "!": "not"}.get(op, op)
            tokens.append(_Token(kind if kind in {"and", "or", "not", "(", ")"} else "cmp", op))
        else:
            word = match.group("word")
            lowered = word.lower()
            if lowered in {"and", "or", "not"}:
                tokens.append(_Token(lowered, word))
            elif lowered == "result":
                tokens.append(_Token("result", word))
            elif lowered in _LITERALS:
                tokens.append(_Token("value", word, _LITERALS[lowered]))
            else:
                raise ConditionSyntaxError(
                    f"unknown name {word!r}; a condition may only mention `result`, "
                    "numbers, true, false, null and quoted text"
                )
    return tokens


# An evaluable node: a function of the measured result.
_Node = Callable[[Value], bool]


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind:
            found = "the end" if token is None else repr(token.text)
            raise ConditionSyntaxError(f"expected {kind!r} but found {found}")
        self.index += 1
        return token

    def parse(self) -> _Node:
        node = self.disjunction()
        if (token := self.peek()) is not None:
            raise ConditionSyntaxError(f"unexpected {token.text!r} after a complete condition")
        return node

    def disjunction(self) -> _Node:
        parts = [self.conjunction()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.index += 1
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda result: any(part(result) for part in parts)

    def conjunction(self) -> _Node:
        parts = [self.negation()]
        while (token := self.peek()) is not None and token.kind == "and":
            self.index += 1
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda result: all(part(result) for part in parts)

    def negation(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ConditionSyntaxError(f"a condition nests at most {_MAX_DEPTH} levels deep")
        try:
            return self._negation()
        finally:
            self.depth -= 1

    def _negation(self) -> _Node:
        token = self.peek()
        if token is not None and token.kind == "not":
            self.index += 1
            inner = self.negation()
            return lambda result: not inner(result)
        if token is not None and token.kind == "(":
            self.index += 1
            inner = self.disjunction()
            self.take(")")
            return inner
        return self.comparison()

    def operand(self) -> object:
        token = self.peek()
        if token is None:
            raise ConditionSyntaxError("a comparison needs a value after its operator")
        if token.kind == "result":
            self.index += 1
            return _RESULT
        return self.take("value").value

    def comparison(self) -> _Node:
        token = self.peek()
        left: object = _RESULT
        if token is not None and token.kind != "cmp":
            left = self.operand()
        op = self.take("cmp").text
        right = self.operand()
        compare = _COMPARISONS[op]
        return lambda result: _compare(compare, op, left, right, result)


def _resolve(operand: object, result: Value) -> object:
    return result if operand is _RESULT else operand


def _compare(
    compare: Callable[[Any, Any], bool], op: str, left: object, right: object, result: Value
) -> bool:
    a, b = _resolve(left, result), _resolve(right, result)
    a_number = isinstance(a, float | int) and not isinstance(a, bool)
    b_number = isinstance(b, float | int) and not isinstance(b, bool)
    if a_number and b_number:
        if math.isnan(float(a)) or math.isnan(float(b)):  # type: ignore[arg-type]  # checked numbers
            return op == "!="
        return compare(float(a), float(b))  # type: ignore[arg-type]  # checked numbers
    if op in {"==", "!="}:
        # No coercion: true is not 1, "1" is not 1.
        same = type(a) is type(b) and a == b
        return same if op == "==" else not same
    if isinstance(a, str) and isinstance(b, str):
        return compare(a, b)
    return False


@dataclass(frozen=True)
class Condition:
    """A parsed condition; call :meth:`holds` with the measured result."""

    text: str
    _node: _Node

    def holds(self, result: Value) -> bool:
        """Whether the condition is true for ``result``."""
        return self._node(result)

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str) -> Condition:
    """Parse ``text``; :class:`ConditionSyntaxError` says what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionSyntaxError("a condition cannot be empty; write e.g. '< 0.5' or '== true'")
    if len(text) > _MAX_LENGTH:
        raise ConditionSyntaxError(f"a condition is at most {_MAX_LENGTH} characters")
    tokens = _tokens(text)
    return Condition(text.strip(), _Parser(tokens).parse())
