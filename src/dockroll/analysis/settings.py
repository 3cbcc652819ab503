"""Moved below :mod:`dockroll.config`: see :mod:`dockroll.checks.settings`; the names stay here."""

from __future__ import annotations

from dockroll.checks.settings import (
    AnalysisSettings,
    BaselineSettings,
    CheckProvider,
    CheckSettings,
    LatencySettings,
    NoDataPolicy,
    PrometheusSettings,
    SequentialSettings,
    SuccessRateSettings,
    TrafficProvider,
)

__all__ = [
    "AnalysisSettings",
    "BaselineSettings",
    "CheckProvider",
    "CheckSettings",
    "LatencySettings",
    "NoDataPolicy",
    "PrometheusSettings",
    "SequentialSettings",
    "SuccessRateSettings",
    "TrafficProvider",
]
