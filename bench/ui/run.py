"""Dashboard benchmark: server time of each page with 1,000 deployments in the ledger.

Seeds a fresh SQLite ledger (in a temp directory) with one service's history over
the last 90 days: 1,000 deployments across dev, staging and prod (each with its
plan, weight and pause steps; one in ten rolled back with its cost, some
rollbacks), 200 releases with commit times, promotions, audit events, and one
canary deployment with 600 analysis samples. Then serves the dashboard with
uvicorn on 127.0.0.1 in a process of its own and requests every page --runs times
(default 20) after one warm-up request, and prints the median and the p95 of the
server time (``Server-Timing: app;dur=…``: from the request reaching the app to
its response, ledger queries and rendering included; the overview also reads the
local Docker engine, where this service runs nothing) and the server process's
CPU time per request (user + system, from /proc), which a busy machine inflates
far less than the wall time. Target: median server time < 200 ms for every page;
the exit code is 1 when one misses it.

    .venv/bin/python bench/ui/run.py [--runs 20] [--deployments 1000] [--keep DIR]

--keep DIR keeps the seeded ledger in DIR and reuses it on the next run (its
service name is kept beside it), so a page can be measured again without seeding.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import free_port  # noqa: E402

from dockroll.analysis import AnalysisSettings  # noqa: E402
from dockroll.config import Config  # noqa: E402
from dockroll.ledger import DeploymentKind, DeploymentStatus, Ledger, open_ledger  # noqa: E402
from dockroll.refs import Digest  # noqa: E402

TARGET_MS = 200.0
ENVS = ("dev", "staging", "prod")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _digest(n: int) -> Digest:
    return Digest("sha256:" + f"{n:064x}")


def seed(ledger: Ledger, clock: Clock, service: str, deployments: int) -> int:
    """The history; returns the id of the canary deployment with many samples."""
    start = clock.now
    span = timedelta(days=89)
    releases = []
    for n in range(200):
        clock.now = start + span * n / 200
        releases.append(
            ledger.record_release(
                service=service, version=f"1.{n}.0", digest=_digest(n), registry="127.0.0.1:5000",
                repository=f"bench/{service}", tags=[f"1.{n}.0", f"git-{n:07x}"],
                git_sha=f"{n:040x}", committed_at=clock.now - timedelta(hours=2),
                labels={"org.opencontainers.image.version": f"1.{n}.0"},
            )
        )  # fmt: skip
    sampled = 0
    for n in range(deployments):
        clock.now = start + span * n / deployments
        env = ENVS[n % 3]
        release = releases[min(199, n * 200 // deployments)]
        if env != "dev" and n % 3 == 1:
            ledger.record_promotion(release, from_env=ENVS[n % 3 - 1], to_env=env, tags=[env])
        kind = DeploymentKind.ROLLBACK if n % 25 == 24 else DeploymentKind.DEPLOY
        deployment = ledger.start_deployment(release, env, strategy="canary", kind=kind)
        ledger.record_step(deployment, 0, "plan", "succeeded", detail={"plan": {"steps": []}})
        weights = {f"{service}-{env}-canary-1": 10, f"{service}-{env}-stable-1": 90}
        ledger.record_step(deployment, 1, "set-weights", "succeeded", detail={"weights": weights})
        ledger.record_step(deployment, 2, "pause", "succeeded")
        clock.now += timedelta(minutes=3)
        if n == deployments // 2:
            sampled = deployment.id
            settings = AnalysisSettings().model_dump(mode="json")
            for tick in range(1, 601):
                clock.now += timedelta(seconds=1)
                ledger.record_sample(
                    deployment, step_index=2, tick=tick, elapsed=float(tick), percent=10,
                    action="continue", reason="collecting data", canary_weight=10,
                    baseline_weight=90, canary=(30.0, 0.0, 12.0), baseline=(270.0, 1.0, 11.0),
                    detail={"sampled": "measured", "settings": settings} if tick == 1 else {},
                )  # fmt: skip
        if n % 10 == 9 and kind is DeploymentKind.DEPLOY:
            ledger.record_cost(
                deployment, served_requests=120, failed_requests=30, traffic_seconds=9
            )
            ledger.finish_deployment(deployment, DeploymentStatus.ROLLED_BACK, message="analysis")
        else:
            ledger.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)
        ledger.audit(kind.value, service=service, env=env, target=release.version)
    clock.now = start + span + timedelta(hours=1)
    return sampled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dockroll-bench-ui-") as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{tmp / 'ledger.db'}"
        os.environ["DOCKROLL_STATE_DIR"] = str(tmp)
        marker = tmp / "service"
        if marker.is_file():
            service, sampled_text = marker.read_text(encoding="utf-8").split()
            sampled = int(sampled_text)
            print(f"reusing the ledger in {tmp}")
        else:
            service = f"bench-ui-{uuid.uuid4().hex[:8]}"
            clock = Clock(datetime.now(UTC) - timedelta(days=89, hours=2))
            started = time.monotonic()
            with open_ledger(url, actor="bench", clock=clock) as ledger:
                sampled = seed(ledger, clock, service, args.deployments)
                count = len(ledger.deployments(service))
            print(f"seeded {count} deployments in {time.monotonic() - started:.0f}s")
            marker.write_text(f"{service} {sampled}\n", encoding="utf-8")
        config = Config.model_validate(
            {
                "service": service,
                "image": f"127.0.0.1:5000/bench/{service}",
                "environments": {
                    env: {"port": 39100 + n, **({"promote_from": ENVS[n - 1]} if n else {})}
                    for n, env in enumerate(ENVS)
                },
            }
        )
        pages = {
            "overview /": "/",
            "history (200 newest)": "/history",
            "history ?status=rolled_back": "/history?status=rolled_back",
            "deployment (600 samples)": f"/deployments/{sampled}",
            "samples JSON": f"/api/deployments/{sampled}",
            "release": "/releases/1.100.0",
            "audit": "/audit",
            "report 90 days": "/report?days=90",
        }
        with open_ledger(url) as ledger:
            print(
                f"{len(ledger.deployments(service))} deployments in the ledger; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        missed = []
        with _server(config, url) as (base, pid), httpx.Client(base_url=base, timeout=30) as client:
            print(f"{'page':<30} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'cpu ms':>8}")
            for name, path in pages.items():
                client.get(path).raise_for_status()
                times = []
                cpu = _cpu_seconds(pid)
                for _ in range(args.runs):
                    response = client.get(path)
                    response.raise_for_status()
                    times.append(_app_ms(response.headers["server-timing"]))
                cpu_ms = (_cpu_seconds(pid) - cpu) * 1e3 / args.runs
                times.sort()
                p95 = times[max(0, round(0.95 * len(times)) - 1)]
                median = statistics.median(times)
                print(f"{name:<30} {median:>10.1f} {p95:>8.1f} {times[-1]:>8.1f} {cpu_ms:>8.1f}")
                if median >= TARGET_MS:
                    missed.append(name)
        if missed:
            print(f"missed the {TARGET_MS:.0f} ms target: {', '.join(missed)}")
            return 1
        print(f"every page under {TARGET_MS:.0f} ms (median server time)")
        return 0


_SERVE = """
import json, sys
from dockroll.config import Config
from dockroll.web import Tokens, create_app, serve
config = Config.model_validate(json.loads(sys.argv[1]))
serve(create_app(config, Tokens(), ledger_url=sys.argv[2]), port=int(sys.argv[3]))
"""


@contextmanager
def _server(config: Config, url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, config.model_dump_json(), url, str(port)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/static/app.css", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("the dashboard did not start") from None
                time.sleep(0.2)
        yield base, child.pid
    finally:
        child.terminate()
        child.wait(10)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _app_ms(header: str) -> float:
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name == "app":
            return float(duration)
    raise ValueError(f"no app timing in {header!r}")


if __name__ == "__main__":
    sys.exit(main())
