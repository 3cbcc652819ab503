"""A custom analysis check against a real Prometheus scraping the real sample service.

Prometheus (Debian's package, installed here when missing and allowed) scrapes the
sample app every second; the app runs from this checkout with the venv's Flask.
The check passes while the app is healthy and fails once it restarts with
FAULT_ERROR_RATE=1. Locally it skips when Prometheus cannot be installed; in CI
(``CI=true``) that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from dockroll.analysis import CANARY, Action, Analysis, AnalysisSettings, providers_for
from tests.conftest import free_port
from tests.integration.prometheus_support import run_prometheus, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "flask-app"
ERROR_RATIO = (
    '(sum(rate(http_requests_total{path="/",status=~"5.."}[5s])) or vector(0))'
    ' / sum(rate(http_requests_total{path="/"}[5s]))'
)


_SERVE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from werkzeug.serving import make_server
    from app import create_app
    make_server("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True).serve_forever()
    """
)


@dataclass
class SampleApp:
    """The sample service on 127.0.0.1, restartable with other fault knobs."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    stop_load: threading.Event = field(default_factory=threading.Event)

    def start(self, **knobs: str) -> None:
        self.stop()
        env = {**os.environ, "APP_VERSION": "test", **knobs}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.port), str(APP_DIR)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"http://127.0.0.1:{self.port}/health", 20, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def load(self) -> threading.Thread:
        """Send about 50 requests a second to ``/`` until :attr:`stop_load` is set."""

        def send() -> None:
            with httpx.Client(timeout=2) as client:
                while not self.stop_load.is_set():
                    with contextlib.suppress(httpx.HTTPError):  # the app is restarting
                        client.get(f"http://127.0.0.1:{self.port}/")
                    time.sleep(0.02)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread


@pytest.fixture(scope="module")
def sample_app() -> Iterator[SampleApp]:
    app = SampleApp(free_port())
    app.start()
    loader = app.load()
    yield app
    app.stop_load.set()
    loader.join(timeout=5)
    app.stop()


@pytest.fixture(scope="module")
def prometheus_url(
    sample_app: SampleApp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = textwrap.dedent(
        f"""
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: sample-app
            static_configs:
              - targets: ["127.0.0.1:{sample_app.port}"]
        """
    )
    with run_prometheus(config, tmp_path_factory.mktemp("prometheus")) as url:
        yield url


def _run_until(analysis: Analysis, wanted: Action, timeout: float) -> list[str]:
    """Tick every second until ``wanted``; the reasons seen, for the failure message."""
    reasons: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decision = analysis.tick(time.monotonic())
        reasons.append(f"{decision.action.value}: {decision.reason}")
        if decision.action is wanted:
            return reasons
        time.sleep(1)
    pytest.fail(f"no {wanted.value} within {timeout:g}s; saw:\n" + "\n".join(reasons[-10:]))


def test_custom_check_passes_on_good_data_and_fails_on_errors(
    sample_app: SampleApp, prometheus_url: str
) -> None:
    settings = AnalysisSettings.model_validate(
        {
            "prometheus": {"url": prometheus_url},
            "no_data": "inconclusive",
            "checks": [
                {
                    "name": "error-ratio",
                    "provider": "prometheus",
                    "query": ERROR_RATIO,
                    "success": "< 0.05",
                    "failure": ">= 0.5",
                    "interval": "1s",
                    # While the rate window slides from good data to bad, a value in
                    # between is inconclusive; a few of those must not hold the run.
                    "inconclusive_limit": 30,
                }
            ],
        }
    )
    groups = {CANARY: ["flask-app"]}

    healthy = Analysis(settings, providers_for(settings, None), groups)
    try:
        _run_until(healthy, Action.PASS, timeout=45)
    finally:
        healthy.providers.close()

    sample_app.start(FAULT_ERROR_RATE="1")
    broken = Analysis(settings, providers_for(settings, None), groups)
    try:
        _run_until(broken, Action.FAIL, timeout=45)
    finally:
        broken.providers.close()
    summary = broken.summary()
    assert summary.action is Action.FAIL
    assert summary.numbers["error-ratio.result"] >= 0.5
    assert "meets failure >= 0.5" in summary.reason
