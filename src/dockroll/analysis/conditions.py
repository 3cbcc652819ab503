"""Moved below :mod:`dockroll.config` to :mod:`dockroll.checks.conditions`; names stay."""

from __future__ import annotations

from dockroll.checks.conditions import (
    Condition,
    ConditionSyntaxError,
    Value,
    parse_condition,
)

__all__ = [
    "Condition",
    "ConditionSyntaxError",
    "Value",
    "parse_condition",
]
