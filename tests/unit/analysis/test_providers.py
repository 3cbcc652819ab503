"""Providers over recorded answers: Prometheus and HTTP through MockTransport, router diffs."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from dockroll.analysis.providers import (
    HttpProvider,
    PrometheusProvider,
    PrometheusTraffic,
    RouterProvider,
    interval_sample,
)
from dockroll.analysis.selectors import parse_selector
from dockroll.analysis.settings import PrometheusSettings
from dockroll.errors import AnalysisError, RouterError
from dockroll.router.port import (
    BackendServer,
    Counters,
    RequestLog,
    RequestTiming,
    RouterStats,
    ServerHealth,
    ServerState,
)


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _prometheus(body: object, status: int = 200) -> PrometheusProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        return httpx.Response(status, json=body)

    return PrometheusProvider("http://prom:9090/", http=_client(answer))


def _vector(*values: str) -> dict[str, object]:
    result = [{"metric": {"instance": f"i{n}"}, "value": [1.7e9, v]} for n, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_prometheus_vector_of_one() -> None:
    assert _prometheus(_vector("0.25")).query("x").value == 0.25


def test_prometheus_scalar() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "3"]}}
    assert _prometheus(body).query("scalar(x)").value == 3.0


def test_prometheus_empty_vector_is_no_value() -> None:
    reading = _prometheus(_vector()).query("x")
    assert reading.value is None
    assert "no samples" in reading.note


def test_prometheus_nan_is_nan() -> None:
    value = _prometheus(_vector("NaN")).query("x").value
    assert isinstance(value, float)
    assert math.isnan(value)


def test_prometheus_sends_the_query() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["query"])
        return httpx.Response(200, json=_vector("1"))

    PrometheusProvider("http://prom:9090", http=_client(answer)).query('sum(up{job="a"})')
    assert seen == ['sum(up{job="a"})']


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_vector("1", "2"), 200, "returned 2 series"),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            400,
            "bad_data: parse error",
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            200,
            "returned a matrix",
        ),
        ([1, 2], 200, "not an API reply"),
        (_vector("many"), 200, "not a number"),
    ],
)
def test_prometheus_errors_are_clear(body: object, status: int, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        _prometheus(body, status).query("x")


def test_prometheus_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(AnalysisError, match="did not answer") as caught:
        PrometheusProvider("http://prom:9090", http=_client(refuse)).query("x")
    assert caught.value.exit_code == 13
    assert "analysis.prometheus.url" in str(caught.value)


def test_prometheus_not_json() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(AnalysisError, match="not JSON"):
        PrometheusProvider("http://prom:9090", http=_client(html)).query("x")


def test_prometheus_traffic_fills_the_templates() -> None:
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        queries.append(query)
        if "code=" in query:
            return httpx.Response(200, json=_vector("2"))
        if "histogram_quantile" in query:
            return httpx.Response(200, json=_vector("0.25"))
        return httpx.Response(200, json=_vector("100"))

    provider = PrometheusProvider("http://prom:9090", http=_client(answer))
    traffic = PrometheusTraffic(provider, PrometheusSettings(), interval=1.0)
    samples = traffic.sample({"canary": ["web.g2-1"], "baseline": []})
    assert samples is not None
    canary = samples["canary"]
    assert (canary.requests, canary.errors, canary.latency_ms) == (100.0, 2.0, 250.0)
    assert samples["baseline"].requests == 0
    assert all("[2s]" in query for query in queries)
    assert all('server=~"web\\\\.g2-1"' in query for query in queries)


def _http(body: object, status: int = 200) -> HttpProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return HttpProvider(http=_client(answer))


def test_http_reads_the_selected_value() -> None:
    body = {"checks": {"db": {"ok": True, "ms": 3}}, "v": "1.2"}
    provider = _http(body)
    assert provider.read("http://127.0.0.1:8083/h", parse_selector("$.checks.db.ok")).value is True
    assert provider.read("http://127.0.0.1:8083/h", parse_selector("$.checks.db.ms")).value == 3.0
    assert provider.read("http://127.0.0.1:8083/h", parse_selector("$.v")).value == "1.2"
    missing = provider.read("http://127.0.0.1:8083/h", parse_selector("$.nope"))
    assert missing.value is None
    assert "matched nothing" in missing.note


def test_http_errors() -> None:
    with pytest.raises(AnalysisError, match="HTTP 503"):
        _http({"x": 1}, 503).read("http://127.0.0.1:1/h", parse_selector("$.x"))
    with pytest.raises(AnalysisError, match="not one value"):
        _http({"x": [1]}).read("http://127.0.0.1:1/h", parse_selector("$.x"))

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(AnalysisError, match="did not answer"):
        HttpProvider(http=_client(refuse)).read("http://127.0.0.1:1/h", parse_selector("$"))

    def text(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="ok")

    with pytest.raises(AnalysisError, match="not JSON"):
        HttpProvider(http=_client(text)).read("http://127.0.0.1:1/h", parse_selector("$"))


# -- router counters -------------------------------------------------------------------


def _server(
    name: str, requests: int, e5xx: int = 0, econ: int = 0, rtime: float = 40
) -> BackendServer:
    return BackendServer(
        name=name,
        address="10.0.0.2",
        port=5000,
        weight=10,
        state=ServerState.READY,
        health=ServerHealth.UP,
        total_requests=requests,
        http_2xx=requests - e5xx,
        http_5xx=e5xx,
        connection_errors=econ,
        response_time_ms=rtime,
    )


def _stats(*servers: BackendServer) -> RouterStats:
    return RouterStats(datetime.now(UTC), Counters(), servers)


def _timing(server: str, response_ms: float | None, at_ns: int = 1) -> RequestTiming:
    return RequestTiming(
        at_ns=at_ns, server=server, status=200, response_ms=response_ms, total_ms=1.0
    )


def test_interval_sample_diffs_snapshots_per_group() -> None:
    before = _stats(_server("c1", 100, 1), _server("b1", 1000, 2), _server("b2", 900))
    after = _stats(
        _server("c1", 120, 21, rtime=300), _server("b1", 1100, 2), _server("b2", 1000, rtime=60)
    )
    log = [_timing("c1", 10), _timing("b1", 40), _timing("b2", 60), _timing("c1", None)]
    canary = interval_sample(before, after, ["c1"], log)
    assert (canary.requests, canary.errors) == (20, 20)
    baseline = interval_sample(before, after, ["b1", "b2"], log)
    assert (baseline.requests, baseline.errors) == (200, 0)
    # Latency is the interval's requests, not HAProxy's moving average (rtime).
    assert canary.latencies_ms == (10,)
    assert canary.latency_ms == 10
    assert baseline.latencies_ms == (40, 60)
    assert baseline.latency_ms == 50


def test_interval_sample_counts_connection_errors_and_new_servers() -> None:
    before = _stats(_server("c1", 50))
    after = _stats(_server("c1", 50, econ=5), _server("c2", 7))
    sample = interval_sample(before, after, ["c1", "c2", "gone"])
    assert (sample.requests, sample.errors) == (12, 5)


def test_interval_sample_survives_a_router_restart() -> None:
    before = _stats(_server("c1", 5000, 40))
    after = _stats(_server("c1", 30, 3))  # totals dropped: the router restarted
    sample = interval_sample(before, after, ["c1"])
    assert (sample.requests, sample.errors) == (30, 3)


def test_interval_sample_without_requests_has_no_latency() -> None:
    before = _stats(_server("c1", 50))
    sample = interval_sample(before, before, ["c1"])
    assert (sample.requests, sample.latency_ms) == (0, None)


class _ScriptedRouter:
    """Counters and request logs in turn; an exception is raised instead."""

    def __init__(self, *script: tuple[RouterStats, RequestLog] | Exception) -> None:
        self.script = list(script)
        self.cursors: list[int | None] = []
        self._log: RequestLog | None = None

    def stats(self) -> RouterStats:
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        stats, self._log = item
        return stats

    def request_log(self, after: int | None) -> RequestLog:
        self.cursors.append(after)
        assert self._log is not None
        return self._log


def test_router_provider_primes_then_diffs() -> None:
    router = _ScriptedRouter(
        (_stats(_server("c1", 10)), RequestLog((), cursor=100)),
        (
            _stats(_server("c1", 30, 1), _server("b1", 20)),
            RequestLog(
                (_timing("c1", 12, 150), _timing("b1", 7, 160), _timing("other", 900, 170)),
                cursor=170,
            ),
        ),
        (_stats(_server("c1", 30, 1)), RequestLog((), cursor=170)),
        RouterError("the runtime API socket is gone"),
    )
    provider = RouterProvider(router)  # type: ignore[arg-type]  # stats() and request_log()
    groups = {"canary": ["c1"], "baseline": ["b1"]}
    assert provider.sample(groups) is None
    samples = provider.sample(groups)
    assert samples is not None
    assert (samples["canary"].requests, samples["canary"].errors) == (20, 1)
    assert samples["canary"].latencies_ms == (12,)
    assert samples["baseline"].latencies_ms == (7,)  # "other" is in no group
    quiet = provider.sample(groups)
    assert quiet is not None
    # No log line: no latency (no data), whatever the counters say.
    assert (quiet["canary"].latency_ms, quiet["canary"].latencies_ms) == (None, ())
    assert router.cursors == [None, 100, 170]
    with pytest.raises(AnalysisError, match="runtime API socket"):
        provider.sample(groups)
