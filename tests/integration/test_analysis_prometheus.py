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
import shutil
import socket
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
from tests.conftest import IN_CI

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "flask-app"
ERROR_RATIO = (
    '(sum(rate(http_requests_total{path="/",status=~"5.."}[5s])) or vector(0))'
    ' / sum(rate(http_requests_total{path="/"}[5s]))'
)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run; root may apt-get install prometheus)")
    pytest.skip(f"{reason}; install Debian's prometheus package to run it")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process behind {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s")


def _prometheus_binary() -> str:
    """The prometheus binary, installing Debian's package when root may (idempotent)."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable("prometheus is not installed and this user cannot apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    done = subprocess.run(install, env=env, capture_output=True, timeout=900, check=False)
    if done.returncode != 0:
        subprocess.run(
            ["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False
        )
        done = subprocess.run(install, env=env, capture_output=True, timeout=900, check=False)
    found = shutil.which("prometheus")
    if done.returncode != 0 or not found:
        _unavailable(f"apt-get install prometheus failed: {done.stderr.decode()[-500:]}")
    assert found is not None
    return found


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
        _wait_for(f"http://127.0.0.1:{self.port}/health", 20, self.process)

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
    app = SampleApp(_free_port())
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
    binary = _prometheus_binary()
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: sample-app
                static_configs:
                  - targets: ["127.0.0.1:{sample_app.port}"]
            """
        ),
        encoding="utf-8",
    )
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/-/ready", 60, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


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
