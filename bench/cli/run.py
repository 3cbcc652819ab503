"""CLI start-up benchmark: whole-process wall time of the commands people wait for.

Each command runs as its own process, --runs times (default 5), after one
unmeasured warm-up run (it writes the bytecode caches a first run after a
change would pay for); the table shows the median, the fastest and slowest
run, and the median CPU time (user + system, from the kernel's accounting of
the child), which a busy machine inflates less than the wall time:

  dockroll --help                  every command's help line, nothing else loaded
  dockroll status --env bench      labels, router and ledger of an environment
                                   running one release, a blue-green standby beside it
  dockroll rollback --env bench    the blue-green switch back to the standby slot,
                                   the whole command: ledger, lock, router weights,
                                   environment tags in the registry
  docker-compose --help            for comparison: another Python CLI
  docker --help                    and a Go one

The rollbacks alternate between the two releases, so each one is the instant
switch (the table says when one was not). Targets: --help < 0.3 s, status
< 0.5 s, rollback < 0.6 s (medians of the wall time); the exit code is 1
when one is missed.

    .venv/bin/python bench/cli/run.py [--runs 5] [--no-rollback]

--no-rollback skips the build and deploys: status then runs on an environment
with nothing deployed, and there is no rollback row.

Set-up (not measured), all in a temp directory: a copy of examples/flask-app
becomes a git repository tagged v1.0.0 and v1.1.0 under a fresh service name;
its own DOCKROLL_STATE_DIR (SQLite ledger) gets a copy of
~/.local/state/dockroll/base-images.json; both versions are built, pushed and
deployed blue-green. Everything it started is removed at the end: containers,
router, network, registry manifests, local images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# One copy of the helpers the benchmarks share with the tests (tests/support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import quiet, run

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "flask-app"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))
ENV = "bench"
VERSIONS = ("v1.0.0", "v1.1.0")
INSTANT = "switched back to the standby slot"
"""The message of a rollback that only moved the router's weights."""
TARGETS = {"help": 0.3, "status": 0.5, "rollback": 0.6}
"""Seconds, median wall time, by row key."""


@dataclass
class Row:
    key: str
    """help, status, rollback (dockroll's, with a target), or a comparison."""
    command: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    """The 1-minute load average before each measured run."""
    note: str = ""

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.key)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def missed(self) -> bool:
        return self.target is not None and self.median >= self.target


def measure(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Run ``argv`` once: wall seconds, CPU seconds (user + system), stdout.

    The CPU time is the child's own, from ``os.wait4``. Output goes to files, so
    no pipe can fill up while the child runs. Fails (SystemExit) when the command does.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({process.returncode}):\n{(stdout + stderr)[-3000:]}"
        )
    return wall, usage.ru_utime + usage.ru_stime, stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def ensure_docker_compose() -> str | None:
    """docker-compose's path, installed the way `dockroll dev up` installs packages.

    None (the row is skipped) when it is missing and cannot be installed here.
    """
    found = shutil.which("docker-compose")
    if found:
        return found
    from dockroll.devenv._apt import apt_install, can_install  # noqa: PLC0415 - only if missing
    from dockroll.devenv.system import LocalSystem  # noqa: PLC0415
    from dockroll.errors import DevEnvError  # noqa: PLC0415

    system = LocalSystem()
    if not can_install(system):
        print("docker-compose is missing and cannot be installed here: no row", file=sys.stderr)
        return None
    try:
        apt_install(system, ["docker-compose"], lambda event: None)
    except DevEnvError as exc:
        print(f"docker-compose: {exc}: no row", file=sys.stderr)
        return None
    return shutil.which("docker-compose")


@dataclass
class Bench:
    runs: int
    registry: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockroll-cli-")))
    pushed: bool = False

    @property
    def service(self) -> str:
        return f"clibench{self.run_id}"

    @property
    def repository(self) -> str:
        return f"bench/{self.service}"

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def app(self) -> Path:
        return self.workdir / "app"

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DOCKROLL_LEDGER_URL", "DOCKROLL_CONFIG")
        }
        env.update(DOCKROLL_STATE_DIR=str(self.state), DOCKROLL_ACTOR="bench", NO_COLOR="1")
        # Compiled modules cached as an installed dockroll has them (the warm-up run
        # writes them), without writing into the source tree; a shell that forbids
        # writing bytecode would otherwise have every run compile dockroll afresh.
        env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def dockroll(self, *args: str) -> dict[str, object]:
        out = run(
            [DOCKROLL, "--config", str(self.app / "dockroll.yml"), "--json", *args],
            env=self.env(),
            cwd=self.app,
        )
        data: dict[str, object] = json.loads(out)
        return data

    # -- set-up ---------------------------------------------------------------------

    def prepare(self, *, deploy: bool) -> None:
        shutil.copytree(
            EXAMPLE,
            self.app,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "tests"),
        )
        self.state.mkdir()
        config = yaml.safe_load((self.app / "dockroll.yml").read_text())
        config["service"] = self.service
        config["image"] = self.image
        config["environments"] = {
            ENV: {
                "port": free_port(),
                "strategy": "blue-green",
                "replicas": 1,
                "blue_green": {"keep_previous": "3600s"},
            }
        }
        (self.app / "dockroll.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        if not deploy:
            return
        home_state = Path.home() / ".local" / "state" / "dockroll" / "base-images.json"
        if not home_state.exists():
            raise SystemExit(f"{home_state} is missing: run `dockroll dev up` first")
        shutil.copy(home_state, self.state / "base-images.json")

        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        run([*git, "init", "-q", "-b", "main"], cwd=self.app)
        run([*git, "add", "-A"], cwd=self.app)
        run([*git, "commit", "-q", "-m", "v1"], cwd=self.app)
        run([*git, "tag", VERSIONS[0]], cwd=self.app)
        with (self.app / "README.md").open("a") as readme:
            readme.write("\nSecond version of the benchmark's copy.\n")
        run([*git, "commit", "-q", "-am", "v2"], cwd=self.app)
        run([*git, "tag", VERSIONS[1]], cwd=self.app)

        digests: dict[str, str] = {}
        for version in VERSIONS:
            run(["git", "checkout", "-q", version], cwd=self.app)
            started = time.monotonic()
            self.dockroll("build")
            self.pushed = True
            digests[version] = str(self.dockroll("push")["digest"])
            print(
                f"built and pushed {version} in {time.monotonic() - started:.1f}s", file=sys.stderr
            )
        for version in VERSIONS:
            outcome = self.dockroll("deploy", digests[version], "--env", ENV)
            if outcome.get("status") != "succeeded":
                raise SystemExit(f"deploying {version} did not succeed: {outcome}")
        print(f"deployed {' then '.join(VERSIONS)} blue-green to {ENV}", file=sys.stderr)

    # -- measured -------------------------------------------------------------------

    def row(self, key: str, argv: Sequence[str], shown: str) -> Row:
        print(f"measuring {shown} …", file=sys.stderr)
        row = Row(key, shown)
        measure(argv, self.env(), self.app)  # warm-up: bytecode caches, page cache
        for _ in range(self.runs):
            row.loads.append(os.getloadavg()[0])
            wall, cpu, _ = measure(argv, self.env(), self.app)
            row.walls.append(wall)
            row.cpus.append(cpu)
        return row

    def rollbacks(self) -> Row:
        print(f"measuring dockroll rollback --env {ENV} …", file=sys.stderr)
        config = str(self.app / "dockroll.yml")
        argv = [DOCKROLL, "--config", config, "--json", "rollback", "--env", ENV]
        row = Row("rollback", f"dockroll rollback --env {ENV}")
        self.dockroll("rollback", "--env", ENV)  # warm-up, and the first switch
        slow = 0
        for _ in range(self.runs):
            row.loads.append(os.getloadavg()[0])
            wall, cpu, out = measure(argv, self.env(), self.app)
            result = json.loads(out)
            if result.get("status") != "succeeded":
                raise SystemExit(f"rollback did not succeed: {result}")
            # The instant switch says so; otherwise the standby was not healthy in the
            # router at that moment and the rollback went through a full rollout.
            if result.get("message") != INSTANT:
                slow += 1
            row.walls.append(wall)
            row.cpus.append(cpu)
        if slow:
            row.note = f"{slow} of {self.runs} were full rollouts, not the instant switch"
        return row

    def cleanup(self) -> None:
        containers = run(["docker", "ps", "-aq", "--filter", f"name={self.service}"]).split()
        if containers:
            quiet(["docker", "rm", "-f", *containers])
        networks = run(["docker", "network", "ls", "-q", "--filter", f"name={self.service}"])
        for network in networks.split():
            quiet(["docker", "network", "rm", network])
        if self.pushed:
            try:
                from dockroll.registry import RegistryClient  # noqa: PLC0415 - clean-up only

                with RegistryClient(self.registry, lookup_credentials=False) as client:
                    digests = {
                        digest
                        for tag in client.list_tags(self.repository)
                        if (digest := client.manifest_digest(self.repository, tag)) is not None
                    }
                    for digest in digests:
                        client.delete_manifest(self.repository, digest)
            except Exception as exc:  # cleanup reports and goes on
                print(
                    f"cleanup: could not delete {self.repository}'s manifests: {exc}",
                    file=sys.stderr,
                )
            images = run(["docker", "images", "-q", "--filter", f"reference={self.image}"]).split()
            images += run(
                ["docker", "images", "-q", "--filter", f"reference={self.image}:*"]
            ).split()
            if images:
                quiet(["docker", "rmi", "-f", *set(images)])
        shutil.rmtree(self.workdir, ignore_errors=True)


def print_table(rows: Sequence[Row], runs: int) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(f"whole process, {runs} runs after a warm-up; {os.cpu_count()} CPUs, load {load}")
    header = (
        f"{'command':<34} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8} {'load':>5} "
        f"{'target':>8}  result"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        target = f"{row.target:.2f}s" if row.target is not None else "-"
        result = ("MISSED" if row.missed else "ok") if row.target is not None else ""
        if row.note:
            result = f"{result} ({row.note})".strip()
        print(
            f"{row.command:<34} {row.median:>7.3f}s {min(row.walls):>7.3f}s "
            f"{max(row.walls):>7.3f}s {statistics.median(row.cpus):>7.3f}s "
            f"{statistics.median(row.loads):>5.1f} {target:>8}  {result}"
        )
    print()
    print(
        "median/min/max = wall time of the whole process; cpu = median user+system time;\n"
        "load = median 1-minute load average before each run; "
        "targets apply to the median wall time"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per command")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="the local registry")
    parser.add_argument(
        "--no-rollback",
        action="store_true",
        help="skip building and deploying: status on an empty environment, no rollback row",
    )
    args = parser.parse_args()
    if args.registry.rpartition(":")[0] not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark talks to a registry on 127.0.0.1 only")
    if not 1 <= args.runs <= 50:
        raise SystemExit("--runs must be 1..50")

    bench = Bench(args.runs, args.registry)
    rows: list[Row] = []
    try:
        if not args.no_rollback:
            print(
                f"building and deploying {bench.image} {' and '.join(VERSIONS)} …", file=sys.stderr
            )
        bench.prepare(deploy=not args.no_rollback)
        config = ["--config", str(bench.app / "dockroll.yml")]
        rows.append(bench.row("help", [DOCKROLL, "--help"], "dockroll --help"))
        rows.append(
            bench.row(
                "status",
                [DOCKROLL, *config, "status", "--env", ENV],
                f"dockroll status --env {ENV}",
            )
        )
        if not args.no_rollback:
            rows.append(bench.rollbacks())
        compose = ensure_docker_compose()
        if compose:
            rows.append(bench.row("compose", [compose, "--help"], "docker-compose --help"))
        docker = shutil.which("docker")
        if docker:
            rows.append(bench.row("docker", [docker, "--help"], "docker --help"))
        print_table(rows, args.runs)
    finally:
        bench.cleanup()

    missed = [row for row in rows if row.missed]
    if missed:
        print(
            "TARGET MISSED:\n  "
            + "\n  ".join(f"{r.command}: {r.median:.3f}s >= {r.target:.2f}s" for r in missed)
        )
        return 1
    print("targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
