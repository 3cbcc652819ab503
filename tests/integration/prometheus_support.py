"""A real Prometheus for integration tests: Debian's package, installed when missing.

Locally a missing Prometheus that cannot be installed skips the test; in CI
(``CI=true``) it fails instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, free_port

__all__ = ["prometheus_binary", "run_prometheus", "wait_for"]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run; root may apt-get install prometheus)")
    pytest.skip(f"{reason}; install Debian's prometheus package to run it")


def wait_for(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
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


def prometheus_binary() -> str:
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


@contextlib.contextmanager
def run_prometheus(config_yaml: str, workdir: Path) -> Iterator[str]:
    """Run Prometheus with ``config_yaml`` on a free port of 127.0.0.1; yields its URL."""
    binary = prometheus_binary()
    config = workdir / "prometheus.yml"
    config.write_text(config_yaml, encoding="utf-8")
    port = free_port()
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
        wait_for(f"{url}/-/ready", 60, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
