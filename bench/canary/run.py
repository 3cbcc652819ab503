"""Canary analysis benchmark: how fast bad releases are stopped, how often good ones are not.

A copy of the sample service (examples/flask-app) becomes its own git repository
with five tagged releases, each with its fault knobs baked into the image as
``ENV`` lines (so the fault is part of the release, as in real life):

  v1.0.0  baseline   FAULT_ERROR_RATE=0.001
  v1.1.0  healthy    FAULT_ERROR_RATE=0.001 (the same behaviour as the baseline)
  v1.2.0  gross      FAULT_ERROR_RATE=1
  v1.3.0  subtle     FAULT_ERROR_RATE=0.05
  v1.4.0  slow       FAULT_ERROR_RATE=0.001, FAULT_LATENCY_MS=300

The copy also adds one response header, ``X-App-Version``, so the load generator
knows which release answered even a 5xx (the sample's error body names none).

Under constant open-loop load (``--rate``, default 250 req/s of ``GET /`` on the
router, every request recorded with its send time, status and answering
release), each bad release is deployed as a canary over the baseline (2
replicas; steps 10/50/100 %, 30 s pauses, analysis every 1 s with dockroll's
default judges). For each: time to decision (from the moment the canary got
its first weight to the executor's rollback decision), failed user requests
answered by the canary, and exposure in traffic-seconds (the share of answers
that came from the canary, integrated over time in 100 ms bins).

The same recorded requests are judged by the fixed-schedule threshold analyses
of the peers (``PEERS``): Flagger at its code defaults (interval 60 s, threshold
1), at its fastest (10 s, threshold 1) and as its tutorial sets it (60 s, 5),
and Argo Rollouts at its analysis defaults (one measurement per analysis step,
failureLimit 0), each checking success rate >= 99 % and p99 latency <= 500 ms.
They are *simulated*: each check is computed on a bootstrap resample of the
canary's recorded requests (as many as the canary's weight of --rate gives in
one interval), because dockroll stopped the canary after seconds and the peers
need minutes.

False rollbacks: ``--healthy-runs`` real canary deploys of the healthy release
over the baseline, each with fresh (cold) replicas and the environment's
analysis, the baseline put back by a rolling deploy and warmed up for
``--warm-up`` seconds between runs; each peer judges every run's recorded
canary answers too. Reported per judge with the 95 % upper bound of the
false-rollback rate (Clopper-Pearson; 0/20 gives 14 %).

    .venv/bin/python bench/canary/run.py [--rate 250] [--healthy-runs 20] [--warm-up 5]
                                         [--only-healthy]

Exits non-zero when a target is missed. Removes everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dockroll.devenv import ensure_commands
from dockroll.errors import DevEnvError

# One copy of the helpers the benchmarks share with the tests (tests/support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import free_port_pair, quiet, run, say

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "flask-app"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))
ENV = "bench"

BASELINE, HEALTHY, GROSS, SUBTLE, SLOW = "v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"
RELEASES: dict[str, dict[str, str]] = {
    BASELINE: {"FAULT_ERROR_RATE": "0.001"},
    HEALTHY: {"FAULT_ERROR_RATE": "0.001"},
    GROSS: {"FAULT_ERROR_RATE": "1"},
    SUBTLE: {"FAULT_ERROR_RATE": "0.05"},
    SLOW: {"FAULT_ERROR_RATE": "0.001", "FAULT_LATENCY_MS": "300"},
}
SCENARIOS = (
    ("100% 5xx", GROSS, "gross"),
    ("5% 5xx vs 0.1%", SUBTLE, "subtle"),
    ("+300 ms latency", SLOW, "subtle"),
    ("healthy", HEALTHY, "healthy"),
)
TARGETS = {"gross": 5.0, "subtle": 60.0, "exposure": 1.2}
# What the benchmark runs besides dockroll (command → Debian package), installed when missing.
TOOLS = {"docker": "docker.io", "git": "git"}

# The metrics every peer judge checks, Flagger's built-in ones as its tutorial sets them:
# request-success-rate min 99 %, request-duration max 500 ms (p99).
PEER_MIN_SUCCESS = 0.99
PEER_MAX_P99 = 0.5


@dataclass(frozen=True)
class PeerJudge:
    """A fixed-schedule threshold analysis, as Flagger and Argo Rollouts run one."""

    name: str
    interval: float
    """Seconds between checks; each check reads the canary's last ``interval`` seconds."""
    threshold: int
    """Failed checks that roll back (a failed check keeps the weight where it is)."""
    weights: tuple[int, ...]
    """The canary's weight at each step; after a passed check at the last one it is promoted."""


PEERS = (
    # Flagger's code defaults (interval 60 s, threshold 1) with the tutorial's steps
    # (stepWeight 10, maxWeight 50): stepWeight has no default.
    PeerJudge("Flagger defaults 60s/1", 60.0, 1, (10, 20, 30, 40, 50)),
    # The shortest interval Flagger accepts (it raises anything shorter to 10 s),
    # the metric windows shortened to match.
    PeerJudge("Flagger fastest 10s/1", 10.0, 1, (10, 20, 30, 40, 50)),
    # Flagger's tutorial, the judge this benchmark compared against first.
    PeerJudge("Flagger tutorial 60s/5", 60.0, 5, (10, 20, 30, 40, 50)),
    # Argo Rollouts' analysis defaults: no interval, so one measurement per analysis
    # (count 1), failureLimit 0 (the first failed measurement aborts); run as an
    # analysis step at the end of each of dockroll's canary steps (10 %, 50 %, with
    # the environment's 30 s pauses) before full promotion.
    PeerJudge("Argo defaults, failureLimit 0", 30.0, 1, (10, 50)),
)

_HEADER_PATCH = """
    @app.after_request
    def served_by(response: Response) -> Response:
        response.headers["X-App-Version"] = build.version
        return response

    @app.get("/")
"""


# -- load generator -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    sent: float
    """Scheduled send time, time.monotonic()."""
    seconds: float
    status: int
    """HTTP status; 0 for a connection error or timeout."""
    version: str
    """X-App-Version of the answer ("" when none came)."""


class Load:
    """GET / on 127.0.0.1:<port> at a fixed rate (open loop), one connection per request.

    Bounded: at most ``rate * max_seconds`` requests, never past ``max_seconds``.
    """

    def __init__(self, port: int, rate: float, max_seconds: float, timeout: float = 10.0) -> None:
        self.port = port
        self.rate = rate
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 10)

    async def _main(self) -> None:
        interval = 1.0 / self.rate
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        self._ready.set()
        for index in range(math.ceil(self.rate * self.max_seconds)):
            if self._stop.is_set():
                break
            due = started + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)

    async def _one(self, due: float) -> None:
        status, version = 0, ""
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                await writer.drain()
                raw = await reader.read()
            head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            parts = head[0].split(" ", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                status = int(parts[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "x-app-version":
                    version = value.strip()
        except (TimeoutError, OSError):
            status = 0
        finally:
            if writer is not None:
                writer.close()
        self.samples.append(Sample(due, time.monotonic() - due, status, version))

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in list(self.samples) if start <= s.sent < end]


def exposure(samples: Sequence[Sample], version: str, bin_seconds: float = 0.1) -> float:
    """Share of answers from ``version`` integrated over time, in traffic-seconds."""
    bins: dict[int, list[int]] = {}
    for sample in samples:
        slot = bins.setdefault(int(sample.sent // bin_seconds), [0, 0])
        slot[0] += 1
        slot[1] += sample.version == version
    return sum(bad / total * bin_seconds for total, bad in bins.values() if total)


# -- the fixed-schedule threshold judges (Flagger, Argo Rollouts), simulated -----------------


@dataclass(frozen=True)
class ThresholdResult:
    decision: str
    """rollback, promote."""
    seconds: float
    failed_requests: float
    exposure: float


def peer_check(window: Sequence[Sample]) -> bool:
    """One check of a peer judge: success rate and p99 latency of the window's requests."""
    if not window:
        return True  # no traffic: Flagger and Argo both treat "no data" as no failure here
    errors = sum(s.status != 200 for s in window)
    latencies = sorted(s.seconds for s in window)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return 1 - errors / len(window) >= PEER_MIN_SUCCESS and p99 <= PEER_MAX_P99


def simulate_peer(
    judge: PeerJudge, canary: Sequence[Sample], rate: float, rng: random.Random
) -> ThresholdResult:
    """``judge``'s schedule over bootstrap resamples of the canary's recorded answers.

    Each check reads one interval of canary requests (weight x rate x interval of
    them), drawn with replacement from what the canary really answered.
    """
    failed_checks, step, seconds, failed, exposed = 0, 0, 0.0, 0.0, 0.0
    answers = list(canary)
    while True:
        weight = judge.weights[step]
        count = max(1, round(rate * weight / 100 * judge.interval))
        window = rng.choices(answers, k=count)
        seconds += judge.interval
        exposed += weight / 100 * judge.interval
        failed += sum(s.status != 200 for s in window)
        if not peer_check(window):
            failed_checks += 1
            if failed_checks >= judge.threshold:
                return ThresholdResult("rollback", seconds, failed, exposed)
        elif step == len(judge.weights) - 1:
            return ThresholdResult("promote", seconds, failed, exposed)
        else:
            step += 1


# -- plumbing -------------------------------------------------------------------------------


@dataclass
class Timeline:
    said: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        self.said.append((time.monotonic(), str(event.message)))

    def first(self, fragment: str) -> float | None:
        return next((at for at, message in self.said if fragment in message), None)

    def message(self, fragment: str) -> str | None:
        return next((message for _, message in self.said if fragment in message), None)


@dataclass
class Row:
    scenario: str
    kind: str
    decision: str
    seconds: float | None
    failed: int
    canary_requests: int
    exposure: float
    peers: dict[str, ThresholdResult] = field(default_factory=dict)
    """Each peer judge's result on the same recorded canary answers."""


@dataclass
class HealthyRuns:
    runs: int
    false_rollbacks: int = 0
    promoted: list[float] = field(default_factory=list)
    """Seconds from the canary's first weight to the end of its promotion, per promoted run."""
    peer_false: dict[str, int] = field(default_factory=lambda: {j.name: 0 for j in PEERS})
    """Per peer judge: runs it rolled back, judging the same canary answers."""
    canary_requests: int = 0


def upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen ``failures`` times in ``runs``.

    For no failure it is ``1 - (1 - confidence) ** (1 / runs)`` (the "rule of three",
    about 3 / runs).
    """
    if runs <= 0:
        return 1.0
    if failures >= runs:
        return 1.0

    def at_most(p: float) -> float:
        return sum(math.comb(runs, k) * p**k * (1 - p) ** (runs - k) for k in range(failures + 1))

    low, high = failures / runs, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if at_most(middle) > 1 - confidence else (low, middle)
    return high


@dataclass
class Bench:
    rate: float
    healthy_runs: int
    registry: str
    seed: int
    warm_up: float = 5.0
    record: Path | None = None
    """A directory that gets every cold healthy run's analysis ticks as JSON."""
    last_error: str = ""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockroll-cb-")))
    port: int = 0

    @property
    def service(self) -> str:
        return f"canarybench{self.run_id}"

    @property
    def repository(self) -> str:
        return f"bench/{self.service}"

    @property
    def app(self) -> Path:
        return self.workdir / "app"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_"))}
        env.update(
            DOCKROLL_STATE_DIR=str(self.workdir / "state"),
            DOCKROLL_LEDGER_URL=f"sqlite:///{self.workdir / 'state' / 'ledger.db'}",
            DOCKROLL_CONFIG=str(self.app / "dockroll.yml"),
            DOCKROLL_ACTOR="bench",
            NO_COLOR="1",
        )
        env.pop("DOCKROLL_DOCKER_CLI", None)
        return env

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self) -> None:
        shutil.copytree(
            EXAMPLE,
            self.app,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "tests"),
        )
        state = self.workdir / "state"
        state.mkdir()
        home_state = Path.home() / ".local" / "state" / "dockroll" / "base-images.json"
        if not home_state.exists():
            raise SystemExit(f"{home_state} is missing: run `dockroll dev up` first")
        shutil.copy(home_state, state / "base-images.json")
        self.port = free_port_pair(set())
        config = yaml.safe_load((self.app / "dockroll.yml").read_text())
        config["service"] = self.service
        config["image"] = f"{self.registry}/{self.repository}"
        config["health"] = {
            "path": "/ready",
            "use_docker_healthcheck": False,
            "interval": "500ms",
            "timeout": "2s",
            "start_timeout": "60s",
        }
        config["container"] = {"port": 5000, "stop_grace": "5s"}
        config["environments"] = {
            ENV: {
                "port": self.port,
                "strategy": "canary",
                "replicas": 2,
                "drain_timeout": "5s",
                "canary": {"steps": [10, 50, 100], "pause": "30s"},
                # dockroll's default judges; no watch window, so a run ends at 100 %.
                "analysis": {"interval": "1s", "watch": "0s"},
            }
        }
        (self.app / "dockroll.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        source = (self.app / "app.py").read_text()
        marker = '\n    @app.get("/")\n'
        if marker not in source:
            raise SystemExit(
                f'{EXAMPLE / "app.py"} has no `@app.get("/")` route where the benchmark adds '
                "its X-App-Version header: update _HEADER_PATCH in bench/canary/run.py"
            )
        (self.app / "app.py").write_text(source.replace(marker, _HEADER_PATCH, 1))
        dockerfile = self.app / "Dockerfile"
        pristine = dockerfile.read_text()
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        run([*git, "init", "-q", "-b", "main"], cwd=self.app)
        for version, knobs in RELEASES.items():
            baked = "".join(f"ENV {key}={value}\n" for key, value in knobs.items())
            dockerfile.write_text(pristine.replace("USER app:app", f"{baked}\nUSER app:app"))
            (self.app / "CHANGES").write_text(f"{version}\n")
            run([*git, "add", "-A"], cwd=self.app)
            run([*git, "commit", "-q", "-m", version], cwd=self.app)
            run([*git, "tag", version], cwd=self.app)
            started = time.monotonic()
            run([DOCKROLL, "build"], env=self.env(), cwd=self.app)
            run([DOCKROLL, "push"], env=self.env(), cwd=self.app)
            print(
                f"built and pushed {version} in {time.monotonic() - started:.1f}s", file=sys.stderr
            )

    # -- library calls (in this process, for precise progress timestamps) ----------------------

    def _config(self) -> Any:
        from dockroll.config import load_config  # noqa: PLC0415 - after the env is set

        return load_config(self.app / "dockroll.yml")

    def deploy(
        self, version: str, progress: Callable[[Any], None] | None = None, **over: Any
    ) -> str:
        from dockroll.errors import RolloutError  # noqa: PLC0415
        from dockroll.events import discard  # noqa: PLC0415
        from dockroll.ledger import open_ledger  # noqa: PLC0415
        from dockroll.pipeline.deploy import deploy_release, find_release  # noqa: PLC0415

        config = self._config()
        if over:
            env = config.environments[ENV].model_copy(update=over)
            config = config.model_copy(update={"environments": {ENV: env}})
        with open_ledger() as ledger:
            release = find_release(config, ledger, version)
            try:
                outcome = deploy_release(config, ENV, release, ledger, progress=progress or discard)
            except RolloutError as exc:
                self.last_error = exc.message
                return "rolled_back"
        return outcome.status if outcome else "unchanged"

    def serving(self) -> set[str]:
        with Load(self.port, 50, 2) as load:
            time.sleep(1.5)
        return {s.version for s in load.samples if s.version}

    # -- scenarios ---------------------------------------------------------------------------

    def scenario(self, name: str, version: str, kind: str, rng: random.Random) -> Row:
        print(f"scenario {name} ({version}) …", file=sys.stderr)
        if self.serving() != {BASELINE}:
            restored = self.deploy(BASELINE, strategy=_strategy("rolling"))
            if restored not in ("succeeded", "unchanged"):
                raise SystemExit(
                    f"could not put {BASELINE} back before the {name!r} scenario ({restored})"
                )
        timeline = Timeline()
        with Load(self.port, self.rate, max_seconds=240) as load:
            time.sleep(3)
            start = time.monotonic()
            decision = self.deploy(version, timeline)
            end = time.monotonic()
            time.sleep(3)
        samples = load.between(start, end + 3)
        traffic = timeline.first("% to the new release")
        decided = timeline.first("failed; rolling back")
        seconds = (decided - traffic) if (decided is not None and traffic is not None) else None
        if decision == "succeeded" and traffic is not None:
            seconds = end - traffic
        canary = [s for s in samples if s.version == version]
        failed = [s for s in canary if s.status != 200]
        lost = [s for s in samples if s.status == 0]
        if lost:
            print(f"  {len(lost)} requests got no answer at all", file=sys.stderr)
        # The canary's answers until dockroll decided, for the peer judges' resampling.
        step = [s for s in canary if traffic is None or s.sent < (decided or end)]
        peers = {j.name: simulate_peer(j, step, self.rate, rng) for j in PEERS} if step else {}
        return Row(
            name, kind, decision, seconds, len(failed), len(canary), exposure(samples, version),
            peers,
        )  # fmt: skip

    def cold_healthy_runs(self, rng: random.Random) -> HealthyRuns:
        """False rollbacks among real canary deploys of the healthy release, each one cold.

        Every run deploys the healthy release over the baseline as the executor
        does (fresh replicas, steps 10/50/100 %, the environment's analysis), then
        puts the baseline back with a rolling deploy (fresh replicas again) and
        lets it warm up before the next run.
        """
        print(f"{self.healthy_runs} cold healthy canary deploys …", file=sys.stderr)
        result = HealthyRuns(self.healthy_runs)
        with Load(self.port, self.rate, max_seconds=self.healthy_runs * 180 + 60) as load:
            for index in range(self.healthy_runs):
                if not self._only_baseline_answers(load):
                    reset = self.deploy(BASELINE, strategy=_strategy("rolling"))
                    if reset not in ("succeeded", "unchanged"):
                        raise SystemExit(f"could not put {BASELINE} back ({reset})")
                time.sleep(self.warm_up)  # the stable release has served a while
                timeline = Timeline()
                decision = self.deploy(HEALTHY, timeline)
                end = time.monotonic()
                traffic = timeline.first("% to the new release")
                window = [s for s in load.between(traffic or end, end) if s.version == HEALTHY]
                # The peers judge this very canary: its recorded answers, resampled.
                for judge in PEERS if window else ():
                    if simulate_peer(judge, window, self.rate, rng).decision == "rollback":
                        result.peer_false[judge.name] += 1
                ticks = self._ticks_of_last_deployment()
                if self.record is not None:
                    path = self.record / f"healthy-{index:02d}.json"
                    path.write_text(
                        json.dumps({"decision": decision, "ticks": ticks}, default=dict)
                    )
                if decision == "rolled_back":
                    result.false_rollbacks += 1
                    print(f"  run {index}: rolled back: {self.last_error}", file=sys.stderr)
                    print(f"    {_what_decided(ticks)}", file=sys.stderr)
                elif decision == "succeeded" and traffic is not None:
                    result.promoted.append(end - traffic)
                    print(f"  run {index}: promoted after {end - traffic:.1f}s", file=sys.stderr)
                else:
                    raise SystemExit(f"run {index}: the healthy canary ended {decision}")
                result.canary_requests += len(window)
        return result

    def _ticks_of_last_deployment(self) -> list[dict[str, Any]]:
        """Every analysis tick the ledger holds of the latest deployment, as JSON-ready data."""
        from dockroll.ledger import open_ledger  # noqa: PLC0415

        with open_ledger() as ledger:
            latest = ledger.deployments(self.service, ENV, limit=1)
            samples = ledger.samples(latest[0]) if latest else []
        return [
            {
                "step": s.step_index,
                "tick": s.tick,
                "elapsed": s.elapsed,
                "percent": s.percent,
                "action": s.action,
                "canary": [s.canary_requests, s.canary_errors, s.canary_latency_ms],
                "baseline": [s.baseline_requests, s.baseline_errors, s.baseline_latency_ms],
                "detail": s.detail,
            }
            for s in samples
        ]

    def _only_baseline_answers(self, load: Load) -> bool:
        now = time.monotonic()
        return {s.version for s in load.between(now - 1.0, now) if s.version} == {BASELINE}

    def abort(self) -> None:
        from dockroll.ledger import open_ledger  # noqa: PLC0415
        from dockroll.pipeline.deploy import continue_rollout  # noqa: PLC0415

        with open_ledger() as ledger:
            continue_rollout(self._config(), ENV, ledger, abort=True, reason="bench done")

    def cleanup(self) -> None:
        containers = quiet(["docker", "ps", "-aq", "--filter", f"name={self.service}"]).split()
        if containers:
            quiet(["docker", "rm", "-f", *containers])
        for network in quiet(
            ["docker", "network", "ls", "-q", "--filter", f"name={self.service}"]
        ).split():
            quiet(["docker", "network", "rm", network])
        images = quiet(["docker", "images", "-q", f"{self.registry}/{self.repository}"]).split()
        if images:
            quiet(["docker", "rmi", "-f", *sorted(set(images))])
        try:
            from dockroll.registry import RegistryClient  # noqa: PLC0415

            with RegistryClient(self.registry, lookup_credentials=False) as client:
                digests = {
                    digest
                    for tag in client.list_tags(self.repository)
                    if (digest := client.manifest_digest(self.repository, tag)) is not None
                }
                for digest in digests:
                    client.delete_manifest(self.repository, digest)
        except Exception as exc:  # cleanup reports and goes on
            print(f"could not delete the registry manifests: {exc}", file=sys.stderr)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _what_decided(ticks: Sequence[dict[str, Any]]) -> str:
    """Which judge failed a rolled-back run, at which step and tick, on what numbers."""
    failed = next((t for t in ticks if t["action"] == "fail"), None)
    if failed is None:
        return "no analysis tick failed (a health check or a step failed)"
    step = [t for t in ticks if t["step"] == failed["step"] and t["tick"] <= failed["tick"]]
    canary = sum(t["canary"][0] or 0 for t in step), sum(t["canary"][1] or 0 for t in step)
    baseline = sum(t["baseline"][0] or 0 for t in step), sum(t["baseline"][1] or 0 for t in step)
    judges = "; ".join(
        f"{v['check']}: {v['reason']} {v['numbers']}"
        for v in failed["detail"].get("verdicts", ())
        if v["outcome"] == "fail"
    )
    return (
        f"at {failed['percent']}% (step {failed['step']}), tick {failed['tick']} after "
        f"{failed['elapsed']:.1f}s; the step's canary {canary[0]:g} requests / {canary[1]:g} "
        f"errors, baseline {baseline[0]:g} / {baseline[1]:g}; {judges}"
    )


def _strategy(name: str) -> Any:
    from dockroll.config import Strategy  # noqa: PLC0415

    return Strategy(name)


# -- report ---------------------------------------------------------------------------------


def _fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}s"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def print_table(rows: Sequence[Row], healthy: HealthyRuns, args: Any) -> list[str]:
    misses: list[str] = []
    header = (
        f"{'scenario':<17} | {'judge':<42} {'decision':<11} {'decided':>8} {'failed':>7}"
        f" {'exposure':>9}"
    )
    print(f"\ncanary analysis under {args.rate:g} req/s (canary steps 10/50/100 %, 2 replicas)")
    print(f"{_load()} at the end (figures from a busy machine are noisy)")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.scenario:<17} | {'dockroll (measured)':<42} {row.decision:<11}"
            f" {_fmt(row.seconds):>8} {row.failed:>7} {row.exposure:>7.2f}ts"
        )
        for judge in PEERS:
            t = row.peers.get(judge.name)
            if t is None:
                print(f"{'':<17} | {judge.name + ' (simulated)':<42} {'—':<11}")
                continue
            print(
                f"{'':<17} | {judge.name + ' (simulated)':<42} {t.decision:<11}"
                f" {_fmt(t.seconds):>8} {t.failed_requests:>7.0f} {t.exposure:>7.1f}ts"
            )
        if row.kind == "healthy":
            if row.decision != "succeeded":
                misses.append(f"{row.scenario}: the healthy canary was not promoted")
            continue
        limit = TARGETS[row.kind]
        if row.decision != "rolled_back" or row.seconds is None or row.seconds > limit:
            misses.append(f"{row.scenario}: not rolled back within {limit:g}s")
        if row.exposure > TARGETS["exposure"]:
            misses.append(f"{row.scenario}: exposure {row.exposure:.2f} > {TARGETS['exposure']}")
    runs, false_rollbacks = healthy.runs, healthy.false_rollbacks
    median = f"{statistics.median(healthy.promoted):.1f}s" if healthy.promoted else "never"
    print(
        f"\n{runs} cold healthy canaries (fresh replicas; {healthy.canary_requests} canary "
        f"requests), false rollbacks with the one-sided 95 % upper bound of the rate "
        f"(Clopper-Pearson; 0/n is the rule of three):"
    )
    print(
        f"  {'dockroll (measured)':<42} {false_rollbacks:>3}/{runs}  ≤ "
        f"{upper_bound(false_rollbacks, runs):.0%}  (promoted {len(healthy.promoted)}, "
        f"median {median})"
    )
    for judge in PEERS:
        count = healthy.peer_false[judge.name]
        print(
            f"  {judge.name + ' (simulated)':<42} {count:>3}/{runs}  ≤ "
            f"{upper_bound(count, runs):.0%}"
        )
    print(
        "decided: from the canary's first weight to the rollback decision (promotion: to the"
        " end);\nfailed: requests the canary answered with a 5xx; exposure: share of answers"
        " from the canary x seconds.\nPeers check success rate ≥ 99 % and p99 ≤ 500 ms on"
        " bootstrap resamples of the same recorded canary answers."
    )
    if false_rollbacks:
        misses.append(f"{false_rollbacks} false rollbacks in {runs} cold healthy runs")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--healthy-runs", type=int, default=20)
    parser.add_argument(
        "--warm-up",
        type=float,
        default=5.0,
        help="seconds the baseline serves before each healthy canary deploy",
    )
    parser.add_argument(
        "--only-healthy", action="store_true", help="skip the bad-release scenarios"
    )
    parser.add_argument("--registry", default=os.environ.get("DOCKROLL_REGISTRY", "127.0.0.1:5000"))
    parser.add_argument("--seed", type=int, default=7, help="for the peer judges' resampling")
    parser.add_argument(
        "--record",
        type=Path,
        help="a directory for each cold healthy run's analysis ticks (JSON, for a replay)",
    )
    args = parser.parse_args()
    if args.registry.rpartition(":")[0] not in ("127.0.0.1", "localhost"):
        parser.error("--registry must be on 127.0.0.1: the benchmark talks to it only")
    if args.rate <= 0 or args.healthy_runs < 1 or args.warm_up < 0:
        parser.error("--rate must be > 0, --healthy-runs at least 1, --warm-up not negative")
    try:
        ensure_commands(TOOLS, progress=say)
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.record is not None:
        args.record.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.rate, args.healthy_runs, args.registry, args.seed, args.warm_up, args.record)
    rng = random.Random(args.seed)
    print(f"{_load()} at the start", file=sys.stderr)
    try:
        bench.prepare()
        os.environ.update({k: v for k, v in bench.env().items() if k.startswith("DOCKROLL_")})
        first = bench.deploy(BASELINE)
        if first != "succeeded":
            raise SystemExit(f"the first deploy of {BASELINE} did not succeed ({first})")
        if bench.serving() != {BASELINE}:
            raise SystemExit(
                f"the router on 127.0.0.1:{bench.port} does not answer with {BASELINE}"
            )
        chosen = [s for s in SCENARIOS if not args.only_healthy or s[2] == "healthy"]
        rows = [bench.scenario(name, version, kind, rng) for name, version, kind in chosen]
        healthy = bench.cold_healthy_runs(rng)
    finally:
        with contextlib.suppress(Exception):
            bench.cleanup()
    misses = print_table(rows, healthy, args)
    for miss in misses:
        print(f"MISSED: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
