"""Automatic rollback on the real engine, registry, HAProxy router (and Prometheus).

Each test runs a rollout of a release with a fault baked into its image while a
bounded load thread sends ``GET /`` to the environment's router, and checks what
the user is promised: a bad release is stopped within seconds and the stable
one serves everything again, with the reason and numbers in the ledger; a good
release is promoted early without a failed request; ``no_data: pause``,
``dockroll pause`` and ``dockroll resume`` hold and continue; hooks run at
their points. Decision times are measured from the moment the release got
traffic to the moment the executor gave up on it, and printed (``-rP``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest

from dockroll import labels
from dockroll.analysis import AnalysisSettings
from dockroll.analysis.replay import replay
from dockroll.config import Config
from dockroll.errors import RolloutError
from dockroll.events import Progress
from dockroll.hooks import Hooks
from dockroll.ledger import Deployment, DeploymentStatus, StepStatus
from dockroll.pipeline.deploy import deploy_release, open_environment
from dockroll.rollout.executor import RolloutOutcome
from tests.integration.canary_support import PacedLoad, seed_releases
from tests.integration.prometheus_support import run_prometheus
from tests.integration.rollout_support import Seeded, cli_env, state_of, wait_serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STABLE, HEALTHY, ERRORS, SLOW = "v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"
RELEASES: dict[str, dict[str, str]] = {
    STABLE: {},
    HEALTHY: {},
    ERRORS: {"FAULT_ERROR_RATE": "1"},
    SLOW: {"FAULT_LATENCY_MS": "300"},
}
# A 1 s interval and a low request floor so ~80 req/s at a 10 % step is enough data.
ANALYSIS = {"interval": "1s", "min_requests": 5, "watch": "0s"}
# Tests about something other than latency judge errors only: a cold canary on a busy
# machine is slower for a while (the router's latency is an average over the last 1024
# requests), and that is the latency test's subject, not theirs.
ERRORS_ONLY = {**ANALYSIS, "baseline": {"max_latency_ratio": 100.0, "min_latency_delta": "30s"}}
CANARY = {"strategy": "canary", "replicas": 1, "canary": {"steps": [10, 50, 100], "pause": "30s"}}
# Only the custom check decides in the Prometheus test (its URL is set at run time).
PROMETHEUS_ANALYSIS = {
    "interval": "1s",
    "watch": "0s",
    "success_rate": None,
    "baseline": None,
    "sequential": {"enabled": False},
}
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "errors": {**CANARY, "analysis": ANALYSIS},
    "latency": {**CANARY, "analysis": ANALYSIS},
    "health": {**CANARY, "analysis": ANALYSIS},
    "oldsick": {**CANARY, "replicas": 2, "canary": {"steps": [10, 50, 100], "pause": "15s"}},
    "prom": {**CANARY, "analysis": PROMETHEUS_ANALYSIS},
    "healthy": {**CANARY, "analysis": ERRORS_ONLY},
    "watch": {
        "strategy": "rolling",
        "replicas": 1,
        "analysis": {**ANALYSIS, "watch": "20s"},
    },
    "nodata": {
        **CANARY,
        # Long enough for the analysis to pass once traffic comes (the latency rank test
        # alone needs 5 intervals): a step that ends undecided would hold again.
        "canary": {"steps": [10, 50, 100], "pause": "15s"},
        "analysis": {**ANALYSIS, "no_data": "pause"},
    },
    "quiet": {
        **CANARY,
        "canary": {"steps": [10, 100], "pause": "3s"},
        "analysis": {**ERRORS_ONLY, "min_sample": 100, "max_extension": "6s"},
    },
    "hookfail": CANARY,
    "hooks": {
        **CANARY,
        "canary": {"steps": [50, 100], "pause": "20s"},
        "analysis": ERRORS_ONLY,
    },
    # Long enough that `dockroll pause` (a CLI start-up on a busy machine) lands in step one.
    "manual": {**CANARY, "canary": {"steps": [10, 50, 100], "pause": "20s"}},
}
# The canary's router server (the first release of each environment runs in slot "stable").
CANARY_SERVER = "{service}-{env}-canary-1"


def canary_5xx_ratio(server: str) -> str:
    """PromQL: the share of the canary server's answers that were 5xx, over 5 s."""
    responses = f'haproxy_server_http_responses_total{{proxy="app",server="{server}"'
    failed = f'sum(rate({responses},code="5xx"}}[5s])) or vector(0)'
    return f"({failed}) / sum(rate({responses}}}[5s]))"


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_releases(tmp_path_factory, registry, ENVIRONMENTS, RELEASES, prefix="canary")


@pytest.fixture
def env(seeded: Seeded) -> Iterator[Seeded]:
    with state_of(seeded):
        yield seeded


@dataclass
class Timeline:
    """Progress messages of a rollout with the moment each was said."""

    said: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Progress) -> None:
        with self._lock:
            self.said.append((time.monotonic(), event.message))

    def first(self, fragment: str, timeout: float = 0.0) -> float:
        """When a message containing ``fragment`` was first said (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = next((at for at, message in self.said if fragment in message), None)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                shown = "\n".join(message for _, message in self.said)
                raise AssertionError(f"never said {fragment!r}; said:\n{shown}")
            time.sleep(0.05)


def _deploy(
    seeded: Seeded, environment: str, version: str, config: Config | None = None, **kw: Any
) -> RolloutOutcome | None:
    with seeded.ledger() as ledger:
        return deploy_release(
            config or seeded.config(), environment, seeded.releases[version], ledger, **kw
        )


def _stable(seeded: Seeded, environment: str) -> None:
    outcome = _deploy(seeded, environment, STABLE)
    assert outcome is not None
    assert outcome.status == "succeeded"
    wait_serving(seeded.url(environment), STABLE)


def _latest(seeded: Seeded, environment: str) -> Deployment:
    with seeded.ledger() as ledger:
        return ledger.deployment(ledger.deployments(seeded.service, environment, limit=1)[0].id)


def _cli(seeded: Seeded, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dockroll")), "--json", *args],
        env=cli_env(seeded),
        cwd=seeded.repo,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _with_env(config: Config, environment: str, **changes: Any) -> Config:
    updated = config.environments[environment].model_copy(update=changes)
    return config.model_copy(update={"environments": {**config.environments, environment: updated}})


def _only_stable_serves(seeded: Seeded, environment: str, load: PacedLoad) -> None:
    """After the rollback every answer comes from the stable release, and status says so."""
    settled = time.monotonic()
    load.wait_for(len(load.replies) + 80)
    assert load.versions(since=settled) == {STABLE: len(load.since(settled))}
    status = _cli(seeded, "status", "--env", environment)
    shown = status["environments"][0] if "environments" in status else status
    assert shown["serving"] == [seeded.releases[STABLE].digest], shown
    assert shown["unfinished"] is None
    assert {r["version"] for r in shown["replicas"]} == {STABLE}


def _rolled_back_by_analysis(seeded: Seeded, environment: str, version: str) -> dict[str, Any]:
    """The ledger's failed step carries the analysis summary; history shows the reason."""
    deployment = _latest(seeded, environment)
    assert deployment.version == version
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    failed = [s for s in deployment.steps if s.status is StepStatus.FAILED]
    assert len(failed) == 1, deployment.steps
    analysis: dict[str, Any] = dict(failed[0].detail["analysis"])
    assert analysis["action"] == "fail"
    assert analysis["numbers"], analysis
    history = _cli(seeded, "history", "--env", environment, "--limit", "1")["history"]
    assert history[0]["status"] == "rolled_back"
    assert history[0]["version"] == version
    assert "analysis failed" in history[0]["notes"]
    return analysis


# -- triggers ------------------------------------------------------------------------------


def test_error_rate_rolls_back_within_seconds(env: Seeded) -> None:
    _stable(env, "errors")
    timeline = Timeline()
    with PacedLoad(env.url("errors")) as load:
        load.wait_for(100)
        with pytest.raises(RolloutError) as raised:
            _deploy(env, "errors", ERRORS, progress=timeline)
        traffic = timeline.first("10% to the new release")
        decided = timeline.first("failed; rolling back")
        _only_stable_serves(env, "errors", load)

    seconds = decided - traffic
    bad = [r for r in load.failed() if traffic <= r.sent <= decided + 1]
    print(f"error rate: decided {seconds:.2f}s after the canary got 10%; {len(bad)} failed")
    assert raised.value.exit_code == 11
    assert seconds < 5.0
    analysis = _rolled_back_by_analysis(env, "errors", ERRORS)
    assert "sequential-errors" in analysis["reason"] or "success-rate" in analysis["reason"]
    failing = analysis["reason"].split(":")[0]
    assert any(key.startswith(f"{failing}.") for key in analysis["numbers"]), analysis
    deployment = _latest(env, "errors")
    assert [s.kind for s in deployment.steps if s.status is StepStatus.FAILED] == ["pause"]
    # Every tick of the step is in the ledger, enough to reach the same decisions again;
    # the router's counters say what the bad release cost before its rollback.
    with env.ledger() as ledger:
        samples = ledger.samples(deployment)
    assert samples[-1].action == "fail"
    assert sum(s.canary_errors or 0 for s in samples) > 0
    assert all(s.canary_weight and s.baseline_weight for s in samples)
    assert not replay(samples, {}).differs
    assert deployment.failed_requests is not None
    assert deployment.served_requests is not None
    assert 0 < deployment.failed_requests <= deployment.served_requests
    assert deployment.traffic_seconds is not None
    assert 0 < deployment.traffic_seconds < 0.1 * (seconds + 5)
    replayed = _cli(env, "analysis", "replay", str(deployment.id), "--set", "confidence=0.6")
    assert replayed["deployment"] == deployment.id


def test_latency_rolls_back_within_a_minute(env: Seeded) -> None:
    _stable(env, "latency")
    timeline = Timeline()
    with PacedLoad(env.url("latency")) as load:
        load.wait_for(100)
        with pytest.raises(RolloutError):
            _deploy(env, "latency", SLOW, progress=timeline)
        traffic = timeline.first("10% to the new release")
        decided = timeline.first("failed; rolling back")
        _only_stable_serves(env, "latency", load)

    seconds = decided - traffic
    print(f"latency +300 ms: decided {seconds:.2f}s after the canary got 10%")
    assert seconds < 60.0
    assert len(load.replies) >= 180
    assert not load.failed()
    analysis = _rolled_back_by_analysis(env, "latency", SLOW)
    assert "latency" in analysis["reason"]
    numbers = analysis["numbers"]
    latency = {k: v for k, v in numbers.items() if k.endswith("latency_ms")}
    assert latency, numbers


def test_a_canary_failing_its_health_checks_mid_step_rolls_back(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    _stable(env, "health")
    timeline = Timeline()
    canary = CANARY_SERVER.format(service=env.service, env="health")
    stopped: list[float] = []

    def stop_canary_once_it_serves() -> None:
        timeline.first("analysing at 10%", timeout=120)
        time.sleep(3)  # it takes traffic for a while, then dies
        docker_client.containers.get(canary).stop(timeout=1)
        stopped.append(time.monotonic())

    with PacedLoad(env.url("health")) as load, ThreadPoolExecutor(1) as pool:
        load.wait_for(100)
        killer: Future[None] = pool.submit(stop_canary_once_it_serves)
        with pytest.raises(RolloutError) as raised:
            _deploy(env, "health", HEALTHY, progress=timeline)
        killer.result(timeout=5)
        decided = timeline.first("failed; rolling back")
        _only_stable_serves(env, "health", load)

    seconds = decided - stopped[0]
    print(f"canary stopped mid-step: rolled back {seconds:.2f}s after it went")
    assert "failed its health checks" in raised.value.message
    assert seconds < 10.0
    deployment = _latest(env, "health")
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    # Filtered by name: listing every container races with other users of the engine
    # removing theirs (the SDK inspects each one it lists).
    listed = docker_client.containers.list(all=True, filters={"name": f"^{canary}$"})
    assert not [c for c in listed if c.name == canary]


def test_a_flapping_old_replica_is_taken_out_and_the_canary_goes_on(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    _stable(env, "oldsick")
    timeline = Timeline()
    old = f"{env.service}-oldsick-stable-1"
    container = docker_client.containers.get(old)

    def signal_the_app(signal: str) -> None:
        # Every process but PID 1 (gunicorn's master): its worker stops or goes on. (Not
        # `docker pause`: the cgroup freezer fails now and then on a busy machine.)
        script = f"import os, signal; os.kill(-1, signal.{signal})"
        done = container.exec_run(["python3", "-c", script])
        assert done.exit_code == 0, done.output

    def flap_once_the_canary_serves() -> None:
        timeline.first("watching health at 10%", timeout=120)
        signal_the_app("SIGSTOP")  # the router's checks time out: down
        try:
            timeline.first(f"{old} of the previous release failed its health checks", 30)
        finally:
            signal_the_app("SIGCONT")  # and up again: it flaps

    with PacedLoad(env.url("oldsick"), rate=20) as load, ThreadPoolExecutor(1) as pool:
        load.wait_for(40)
        flapper: Future[None] = pool.submit(flap_once_the_canary_serves)
        outcome = _deploy(env, "oldsick", HEALTHY, progress=timeline)
        flapper.result(timeout=5)
        settled = time.monotonic()
        load.wait_for(len(load.replies) + 40)

    assert outcome is not None
    assert outcome.status == "succeeded", timeline.said
    assert not [m for _, m in timeline.said if "rolling back" in m]
    assert load.versions(since=settled) == {HEALTHY: len(load.since(settled))}
    deployment = _latest(env, "oldsick")
    assert deployment.status is DeploymentStatus.SUCCEEDED
    steps = sorted(deployment.steps, key=lambda s: s.index)
    assert next(s for s in steps if s.kind == "pause").detail["out_of_rotation"] == [old]
    # Back up by the 50 % step, it still got no traffic: out for the rest of the rollout.
    fifty = [s for s in steps if s.kind == "set-weights"][1]
    assert fifty.detail["weights"][old] == 0, fifty.detail


def test_a_failing_prometheus_check_rolls_back(
    env: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> None:
    metrics = env.ports["prom"] + 1000  # the router's exporter
    scrape = textwrap.dedent(
        f"""
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: router
            static_configs:
              - targets: ["127.0.0.1:{metrics}"]
        """
    )
    with run_prometheus(scrape, tmp_path_factory.mktemp("prometheus")) as prometheus:
        server = CANARY_SERVER.format(service=env.service, env="prom")
        settings = AnalysisSettings.model_validate(
            {
                **PROMETHEUS_ANALYSIS,
                "prometheus": {"url": prometheus},
                "checks": [
                    {
                        "name": "canary-5xx-ratio",
                        "provider": "prometheus",
                        "query": canary_5xx_ratio(server),
                        "success": "< 0.05",
                        "failure": ">= 0.5",
                    }
                ],
            }
        )
        config = _with_env(env.config(), "prom", analysis=settings)
        _deploy(env, "prom", STABLE, config)
        wait_serving(env.url("prom"), STABLE)
        timeline = Timeline()
        with PacedLoad(env.url("prom")) as load:
            load.wait_for(100)
            with pytest.raises(RolloutError):
                _deploy(env, "prom", ERRORS, config, progress=timeline)
            traffic = timeline.first("10% to the new release")
            decided = timeline.first("failed; rolling back")
            _only_stable_serves(env, "prom", load)

    seconds = decided - traffic
    print(f"prometheus check: decided {seconds:.2f}s after the canary got 10%")
    assert seconds < 20.0
    analysis = _rolled_back_by_analysis(env, "prom", ERRORS)
    assert "canary-5xx-ratio" in analysis["reason"]
    assert analysis["numbers"]["canary-5xx-ratio.result"] >= 0.5


def test_a_healthy_canary_is_promoted_early_without_a_failed_request(env: Seeded) -> None:
    _stable(env, "healthy")
    timeline = Timeline()
    with PacedLoad(env.url("healthy")) as load:
        load.wait_for(100)
        started = time.monotonic()
        outcome = _deploy(env, "healthy", HEALTHY, progress=timeline)
        seconds = time.monotonic() - started
        settled = time.monotonic()
        load.wait_for(len(load.replies) + 80)

    print(f"healthy canary promoted in {seconds:.1f}s (the pauses alone would take 60s)")
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert len(load.replies) >= 180
    assert load.failed() == [], load.failed()[:5]
    assert load.versions(since=settled) == {HEALTHY: len(load.since(settled))}
    # At 10 % of ~80 req/s the SPRT may need most of the 30 s to accept; at 50 % it is quick.
    timeline.first("analysis passed at 50%")
    assert seconds < 60.0  # less than the two 30 s pauses
    deployment = _latest(env, "healthy")
    pauses = [s for s in deployment.steps if s.kind == "pause"]
    assert pauses[-1].detail["analysis"]["action"] == "pass"
    assert all(s.detail["analysis"]["action"] in ("pass", "continue") for s in pauses)


def test_the_watch_window_after_a_rolling_rollout_catches_a_bad_release(env: Seeded) -> None:
    _stable(env, "watch")
    timeline = Timeline()
    with PacedLoad(env.url("watch")) as load:
        load.wait_for(100)
        with pytest.raises(RolloutError):
            _deploy(env, "watch", ERRORS, progress=timeline)
        watching = timeline.first("analysing at the full rollout")
        decided = timeline.first("failed; rolling back")
        back = timeline.first("rolled back: the previous release serves all traffic")
        _only_stable_serves(env, "watch", load)

    print(
        f"watch window: decided {decided - watching:.2f}s into the watch, "
        f"stable alone {back - decided:.2f}s later"
    )
    assert decided - watching < 5.0
    assert back - decided < 10.0
    analysis = _rolled_back_by_analysis(env, "watch", ERRORS)
    assert analysis["action"] == "fail"
    assert [s.kind for s in _latest(env, "watch").steps if s.status is StepStatus.FAILED] == [
        "watch"
    ]


# -- holding and going on ------------------------------------------------------------------


def test_no_data_pauses_the_canary_and_resume_goes_on(env: Seeded) -> None:
    _stable(env, "nodata")
    # No traffic at all: the analysis cannot see, and the policy says hold.
    outcome = _deploy(env, "nodata", HEALTHY)
    assert outcome is not None
    assert outcome.status == "paused"
    assert outcome.paused_at == 10
    status = _cli(env, "status", "--env", "nodata")
    shown = status["environments"][0] if "environments" in status else status
    assert shown["unfinished"]["status"] == "running"
    assert "pause (running)" in shown["unfinished"]["step"]
    assert set(shown["serving"]) == {env.releases[STABLE].digest, env.releases[HEALTHY].digest}

    with PacedLoad(env.url("nodata")) as load:
        load.wait_for(100)
        resumed = _cli(env, "resume", "--env", "nodata")
        settled = time.monotonic()
        load.wait_for(len(load.replies) + 80)
    assert resumed["status"] == "succeeded", resumed
    assert len(load.replies) >= 180
    assert load.failed() == []
    assert load.versions(since=settled) == {HEALTHY: len(load.since(settled))}


def test_a_quiet_canary_step_is_extended_then_goes_on_saying_it_had_no_pass(env: Seeded) -> None:
    _stable(env, "quiet")
    timeline = Timeline()
    # 4 requests a second: about 0.4 a second reach the 10 % canary, far from 100.
    with PacedLoad(env.url("quiet"), rate=4, threads=2) as load:
        load.wait_for(8)
        outcome = _deploy(env, "quiet", HEALTHY, progress=timeline)

    assert outcome is not None
    assert outcome.status == "succeeded"
    extending = timeline.first("insufficient data, extending the step at 10%")
    going_on = timeline.first("going on without a pass (no_data: inconclusive)")
    print(f"quiet canary: extended {going_on - extending:.2f}s (max_extension 6s)")
    assert 5.0 <= going_on - extending <= 10.0
    pause = next(s for s in _latest(env, "quiet").steps if s.kind == "pause")
    evidence = pause.detail["evidence"]
    assert evidence["ending"] == "proceed", evidence
    assert 0 < evidence["canary_requests"] < 100, evidence  # counted from HAProxy's counters
    assert evidence["extended_seconds"] == pytest.approx(6.0, abs=1.5)
    assert load.failed() == []


def test_dockroll_pause_holds_a_running_canary_and_resume_continues(env: Seeded) -> None:
    _stable(env, "manual")
    timeline = Timeline()
    with PacedLoad(env.url("manual")) as load, ThreadPoolExecutor(1) as pool:
        running = pool.submit(_deploy, env, "manual", HEALTHY, progress=timeline)
        timeline.first("10% to the new release", timeout=120)
        _cli(env, "pause", "--env", "manual", "--reason", "looking at a dashboard")
        asked = time.monotonic()  # the request is in the ledger (the CLI's start-up not counted)
        outcome = running.result(timeout=60)
        held = time.monotonic() - asked
        assert outcome is not None
        assert outcome.status == "paused"
        assert outcome.paused_at == 10
        # Held: both releases keep answering at the 10 % split.
        time.sleep(7)
        since = time.monotonic()
        load.wait_for(len(load.replies) + 200)
        assert set(load.versions(since=since)) == {STABLE, HEALTHY}
        assert _latest(env, "manual").status is DeploymentStatus.RUNNING

        resumed = _cli(env, "resume", "--env", "manual")
        settled = time.monotonic()
        load.wait_for(len(load.replies) + 80)

    print(f"`dockroll pause` held the canary {held:.2f}s after the request")
    assert held < 5.0
    assert resumed["status"] == "succeeded", resumed
    assert len(load.replies) >= 280
    assert load.failed() == []
    assert load.versions(since=settled) == {HEALTHY: len(load.since(settled))}


# -- hooks ---------------------------------------------------------------------------------


def test_a_failing_pre_rollout_hook_changes_nothing(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    _stable(env, "hookfail")
    with env.ledger() as ledger:
        router = open_environment(env.config(), "hookfail", ledger).router
    weights = {s.name: s.weight for s in router.servers()}
    selector = [f"{labels.SERVICE}={env.service}", f"{labels.ENVIRONMENT}=hookfail"]
    before = {c.id for c in docker_client.containers.list(all=True, filters={"label": selector})}
    timeline = Timeline()
    freeze = Hooks.model_validate(
        {"pre-rollout": [{"name": "change-freeze", "command": ["sh", "-c", "exit 7"]}]}
    )
    config = _with_env(env.config(), "hookfail", hooks=freeze)

    with pytest.raises(RolloutError) as raised:
        _deploy(env, "hookfail", HEALTHY, config, progress=timeline)

    assert "pre-rollout hook `change-freeze` failed (exit 7)" in raised.value.message
    assert not [m for _, m in timeline.said if m.startswith("started ")]
    assert {s.name: s.weight for s in router.servers()} == weights
    after = {c.id for c in docker_client.containers.list(all=True, filters={"label": selector})}
    assert after == before
    assert _latest(env, "hookfail").status is DeploymentStatus.ROLLED_BACK


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(
            {
                "content_type": self.headers.get("Content-Type"),
                "body": json.loads(self.rfile.read(length)),
            }
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Recorder", (_Recorder,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/deployed", bodies
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


_FETCH_TARGET = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    url = os.environ["DOCKROLL_TARGET_URL"]
    with urllib.request.urlopen(url + "/version", timeout=5) as answer:
        version = json.load(answer)["version"]
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps({"url": url, "answered": version,
                              "version": os.environ["DOCKROLL_VERSION"]}) + "\\n")
    """
)
_RECORD_ENV = textwrap.dedent(
    """
    import json, os, sys
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps({k: v for k, v in os.environ.items()
                              if k.startswith("DOCKROLL_")}) + "\\n")
    """
)


def test_hooks_run_at_their_points(
    env: Seeded, tmp_path: Path, hook_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = hook_server
    pre_traffic, rollback = tmp_path / "pre-traffic.jsonl", tmp_path / "rollback.jsonl"
    hooks = Hooks.model_validate(
        {
            "pre-traffic": [{"command": [sys.executable, "-c", _FETCH_TARGET, str(pre_traffic)]}],
            "post-rollout": [{"name": "notify", "http": url, "timeout": "5s"}],
            "rollback": [{"command": [sys.executable, "-c", _RECORD_ENV, str(rollback)]}],
        }
    )
    config = _with_env(env.config(), "hooks", hooks=hooks)
    assert _deploy(env, "hooks", STABLE, config) is not None
    with PacedLoad(env.url("hooks")) as load:
        load.wait_for(100)
        healthy = _deploy(env, "hooks", HEALTHY, config)
        assert healthy is not None
        assert healthy.status == "succeeded"
        with pytest.raises(RolloutError):
            _deploy(env, "hooks", ERRORS, config)

    # pre-traffic: the hook reached the new replica itself before it got any weight.
    fetched = [json.loads(line) for line in pre_traffic.read_text().splitlines()]
    assert [(f["version"], f["answered"]) for f in fetched] == [
        (STABLE, STABLE),
        (HEALTHY, HEALTHY),
        (ERRORS, ERRORS),
    ]
    assert all(f["url"].startswith("http://") and f["url"].endswith(":5000") for f in fetched)
    # post-rollout: a JSON POST for each rollout that finished, none for the rolled back one.
    assert [b["body"]["version"] for b in bodies] == [STABLE, HEALTHY]
    assert bodies[1]["content_type"] == "application/json"
    assert bodies[1]["body"] == {
        "service": env.service,
        "environment": "hooks",
        "version": HEALTHY,
        "digest": env.releases[HEALTHY].digest,
        "hook": "post-rollout",
    }
    # rollback: after the automatic rollback, with the reason.
    (recorded,) = [json.loads(line) for line in rollback.read_text().splitlines()]
    assert recorded["DOCKROLL_HOOK"] == "rollback"
    assert recorded["DOCKROLL_VERSION"] == ERRORS
    assert "analysis failed" in recorded["DOCKROLL_REASON"]
    assert os.environ.get("DOCKROLL_HOOK") is None
