"""Metric providers: where analysis reads numbers. All network I/O is injectable.

- :class:`RouterProvider` turns the router's ever-growing counters into
  per-interval :class:`~dockroll.analysis.judges.GroupSample` values per group
  of servers, by diffing consecutive snapshots (a counter that went down means
  the router restarted: its current value is what happened since), and reads
  each request's latency of the interval from the router's request log.
- :class:`PrometheusProvider` runs instant queries; :class:`PrometheusTraffic`
  gives the same per-group samples from query templates.
- :class:`HttpProvider` reads one value out of a JSON document.

Failures raise :class:`~dockroll.errors.AnalysisError` with what to check.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from dockroll.analysis.judges import GroupSample
from dockroll.checks.conditions import Value
from dockroll.checks.selectors import MISSING, Selector
from dockroll.checks.settings import PrometheusSettings
from dockroll.errors import AnalysisError, RouterError

if TYPE_CHECKING:
    # Only for annotations: importing dockroll.router at run time would import
    # dockroll.config, which imports these settings (a cycle).
    from dockroll.router.port import BackendServer, RequestTiming, Router, RouterStats

__all__ = [
    "BASELINE",
    "CANARY",
    "Groups",
    "HttpProvider",
    "PrometheusProvider",
    "PrometheusTraffic",
    "Reading",
    "RouterProvider",
    "TrafficSource",
    "group_latencies",
    "interval_sample",
]

CANARY = "canary"
"""The group of servers running the release under analysis."""
BASELINE = "baseline"
"""The group running the stable release, compared in the same intervals (may be empty)."""

Groups = Mapping[str, Sequence[str]]
"""Group name → router server names, e.g. ``{"canary": ["web-g2-1"], "baseline": [...]}``."""


@dataclass(frozen=True)
class Reading:
    """One value read from a provider; ``None`` with a ``note`` when there was none."""

    value: Value
    note: str = ""


class TrafficSource(Protocol):
    """Requests, errors and latency per group for the interval since the last call."""

    def sample(self, groups: Groups) -> Mapping[str, GroupSample] | None:
        """Samples per group; ``None`` on the first call of a source that needs a start."""
        ...


_COUNTERS = ("total_requests", "http_5xx", "connection_errors", "response_errors")


def _server_delta(previous: BackendServer | None, current: BackendServer) -> dict[str, int]:
    now = {name: int(getattr(current, name)) for name in _COUNTERS}
    if previous is None:
        return now  # a server added during the interval: all it counted is new
    before = {name: int(getattr(previous, name)) for name in _COUNTERS}
    if any(now[name] < before[name] for name in _COUNTERS):
        return now  # the router restarted: totals began again from zero
    return {name: now[name] - before[name] for name in _COUNTERS}


def group_latencies(requests: Sequence[RequestTiming], servers: Sequence[str]) -> tuple[float, ...]:
    """The response times (ms) of the requests ``servers`` answered; those without one left out."""
    names = set(servers)
    return tuple(r.response_ms for r in requests if r.server in names and r.response_ms is not None)


def interval_sample(
    previous: RouterStats,
    current: RouterStats,
    servers: Sequence[str],
    requests: Sequence[RequestTiming] = (),
) -> GroupSample:
    """What ``servers`` together answered between two router snapshots.

    Requests and errors come from the counters; latency from ``requests``, the
    request log's lines of the same interval (none: no latency this interval).
    """
    answered = errors = 0
    for name in servers:
        now = current.server(name)
        if now is None:
            continue
        delta = _server_delta(previous.server(name), now)
        failed = delta["http_5xx"] + delta["connection_errors"] + delta["response_errors"]
        answered += max(delta["total_requests"], failed)
        errors += failed
    latencies = group_latencies(requests, servers)
    latency = statistics.fmean(latencies) if latencies else None
    return GroupSample(requests=answered, errors=errors, latency_ms=latency, latencies_ms=latencies)


class RouterProvider:
    """Per-interval samples from the router: counters from :meth:`Router.stats`, latency
    from :meth:`Router.request_log`.

    Each request's response time (HAProxy's ``Tr``: until the server's response
    headers) counts in the interval its log line arrived in, so latency samples
    of one interval are that interval's requests only, not a moving average.
    Log lines of servers in no group (and of requests no server took) are left
    out; an interval whose log has no line of a group has no latency for it.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._previous: RouterStats | None = None
        self._cursor: int | None = None

    def sample(self, groups: Groups) -> Mapping[str, GroupSample] | None:
        try:
            current = self.router.stats()
            log = self.router.request_log(self._cursor)
        except RouterError as error:
            raise AnalysisError(
                f"cannot read the router's counters or request log: {error.message}"
            ) from None
        previous, self._previous = self._previous, current
        first, self._cursor = self._cursor is None, log.cursor
        if previous is None or first:
            return None
        return {
            group: interval_sample(previous, current, names, log.requests)
            for group, names in groups.items()
        }


class PrometheusProvider:
    """Instant queries against a Prometheus server's HTTP API."""

    def __init__(self, url: str, *, http: httpx.Client | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout)
        self._owned = http is None

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def query(self, expression: str) -> Reading:
        """The single number ``expression`` yields now.

        An empty vector is a reading without value (no data); NaN comes back as
        NaN. A vector of several series, a range vector or an API error raises
        :class:`AnalysisError`.
        """
        endpoint = f"{self.url}/api/v1/query"
        try:
            response = self._http.get(endpoint, params={"query": expression})
        except httpx.HTTPError as error:
            raise AnalysisError(
                f"Prometheus at {self.url} did not answer: {error}",
                hint="check analysis.prometheus.url and that Prometheus runs",
            ) from None
        body = _json_body(response, f"Prometheus at {self.url}")
        if not isinstance(body, dict):
            raise AnalysisError(f"Prometheus at {self.url} answered {body!r}, not an API reply")
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {response.status_code}")
            raise AnalysisError(
                f"Prometheus rejected {expression!r}: {kind}: {body.get('error', 'no reason')}",
                hint="try the query in Prometheus' web UI",
            )
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return Reading(_number(result[1], expression))
        if kind == "vector" and isinstance(result, list):
            if not result:
                return Reading(None, "the query returned no samples")
            if len(result) > 1:
                labels = ", ".join(json.dumps(item.get("metric", {})) for item in result[:3])
                raise AnalysisError(
                    f"{expression!r} returned {len(result)} series ({labels} …), not one number",
                    hint="aggregate it, e.g. sum(...) or max(...)",
                )
            return Reading(_number(result[0].get("value", [None, None])[1], expression))
        raise AnalysisError(
            f"{expression!r} returned a {kind}, not one number",
            hint="an instant query needs an instant vector: wrap range selectors in rate() etc.",
        )


def _number(raw: object, expression: str) -> float:
    try:
        return float(str(raw))  # "NaN", "+Inf" included
    except ValueError:
        raise AnalysisError(f"{expression!r} returned {raw!r}, not a number") from None


def _json_body(response: httpx.Response, who: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AnalysisError(
            f"{who} answered HTTP {response.status_code} with something that is not JSON: "
            f"{response.text[:200]!r}"
        ) from None


def _servers_regex(names: Sequence[str]) -> str:
    # Escaped for a regex inside a PromQL double-quoted string.
    return "|".join(name.replace(".", "\\\\.") for name in names)


class PrometheusTraffic:
    """Per-group samples from the query templates of :class:`PrometheusSettings`."""

    def __init__(
        self, prometheus: PrometheusProvider, settings: PrometheusSettings, interval: float
    ) -> None:
        self.prometheus = prometheus
        self.settings = settings
        self.window = f"{max(2, math.ceil(interval))}s"

    def _query(self, template: str, names: Sequence[str]) -> float | None:
        expression = template.replace("$servers", _servers_regex(names)).replace(
            "$window", self.window
        )
        value = self.prometheus.query(expression).value
        return value if isinstance(value, float) else None

    def sample(self, groups: Groups) -> Mapping[str, GroupSample] | None:
        samples = {}
        for group, names in groups.items():
            if not names:
                samples[group] = GroupSample(0, 0)
                continue
            requests = self._query(self.settings.requests, names)
            errors = self._query(self.settings.errors, names)
            latency = self._query(self.settings.latency, names)
            samples[group] = GroupSample(
                requests=requests if requests is not None and math.isfinite(requests) else 0.0,
                errors=errors if errors is not None and math.isfinite(errors) else 0.0,
                latency_ms=None if latency is None or not math.isfinite(latency) else latency * 1e3,
            )
        return samples


class HttpProvider:
    """GET a JSON document and pick one value out of it."""

    def __init__(self, *, http: httpx.Client | None = None, timeout: float = 5.0) -> None:
        self._http = http or httpx.Client(timeout=timeout)
        self._owned = http is None

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def read(self, url: str, selector: Selector) -> Reading:
        """The value at ``selector``; a reading without value when the path is absent."""
        try:
            response = self._http.get(url)
        except httpx.HTTPError as error:
            raise AnalysisError(f"{url} did not answer: {error}") from None
        if response.status_code >= 400:
            raise AnalysisError(f"{url} answered HTTP {response.status_code}")
        value = selector.select(_json_body(response, url))
        if value is MISSING:
            return Reading(None, f"{selector} matched nothing in {url}'s answer")
        if value is None or isinstance(value, bool | str):
            return Reading(value)
        if isinstance(value, int | float):
            return Reading(float(value))
        raise AnalysisError(
            f"{selector} in {url}'s answer is a {type(value).__name__}, not one value",
            hint="select a number, boolean or text inside it",
        )
