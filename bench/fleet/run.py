"""Fleet benchmark: rollouts on a three-node Docker Swarm under 200 req/s, beside Swarm's own.

It runs on the Docker-in-Docker Swarm of `dockroll dev up --with swarm`
(a manager and two workers, brought up the same idempotent way when missing;
never `docker swarm init` on this machine's engine) and reuses the
zero-downtime benchmark's load generator, rows, set-up (the sample service,
v1.0.0 and v1.1.0 built and pushed once) and its Swarm peer.

dockroll rows: an environment whose engine is the Swarm's manager (a `swarm:`
section placing the replicas on the workers, 2 replicas, the registry as the
nodes reach it). The load goes through the environment's router, which runs
on the manager, published on the manager's address on the cluster's bridge
network (dockroll's shared edge runs on local engines only, so the router is
the way in here). Every deploy is v1.0.0 → v1.1.0; a rollback not measured
puts v1.0.0 back between rows.

  baseline dockroll  nothing changes: what the box sustains through the router
  rolling            dockroll deploy --strategy rolling (batch 1, surge 1)
  blue-green         dockroll deploy --strategy blue-green (2 + 2 replicas, one switch)
  canary             dockroll deploy --strategy canary (10% → 50% → 100%, 3 s pauses)
  rolling + drain    a rolling deploy, and once its first new replica exists a
                     worker running a replica is drained (`docker node update
                     --availability drain` on the manager); the row's command ends
                     when that node runs none of the environment's tasks. The
                     worker is made active again after the row.

peer rows (the zero-downtime benchmark's): one Swarm service of 2 tasks on the
workers, endpoint mode dnsrr, behind HAProxy on the manager with the router's
image and proxy settings finding the tasks through the overlay's DNS:
a no-change baseline, `docker service update --update-order start-first`
(v1.0.0 → v1.1.0) and `--update-order stop-first` (back to v1.0.0).

    .venv/bin/python bench/fleet/run.py [--rate 200] [--duration 15]

Exits 1 when a dockroll row failed a request or never reached its target
version. Removes everything it started: on the Swarm the environment's
services, router, lock containers and overlay network, the peer service, its
proxy and network, the benchmark's images on every node, every worker made
active again (the Swarm itself stays up, as `dockroll dev up` left it); on
this machine the registry manifests, local images and the temp directory.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dockroll.devenv import ensure_commands
from dockroll.devenv.cluster import ensure_swarm
from dockroll.errors import DevEnvError

# One copy of the helpers the benchmarks share with the tests (tests/support.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support import load_bench, quiet, say

zd: Any = load_bench("zero-downtime")

ENV = zd.ENV
V1, V2 = zd.VERSIONS
TOOLS = {"docker": "docker.io", "git": "git"}
"""command → Debian package, installed when missing (as `dockroll dev up` does)."""


@dataclass
class FleetBench(zd.Bench):  # type: ignore[misc]
    drained: list[str] = field(default_factory=list)
    """Workers this run drained and has not made active again."""

    @property
    def service(self) -> str:
        return f"fleetbench{self.run_id}"

    @property
    def host(self) -> str:
        """The manager's address on the cluster's bridge network: the load goes there."""
        if self.swarm is None:
            raise SystemExit("the Swarm is not up")
        address: str = self.swarm.manager.address
        return address

    # -- set-up ---------------------------------------------------------------------

    def on_the_swarm(self) -> None:
        """Point the benchmark's environment at the Swarm's manager (after prepare)."""
        self.swarm = ensure_swarm(progress=say)  # as `dockroll dev up --with swarm`
        path = self.app / "dockroll.yml"
        config = yaml.safe_load(path.read_text())
        config["environments"][ENV].update(
            engine=self.swarm.engine,
            registry=self.swarm.registry,  # this machine's registry as the nodes pull from it
            router_bind="0.0.0.0",  # on the manager's own addresses, not its loopback
            swarm={"constraints": ["node.role==worker"]},
            drain_timeout="5s",
        )
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    # -- the Swarm's nodes ----------------------------------------------------------

    def tasks_on(self, node: str) -> int:
        """How many of the environment's tasks run (or are to run) on ``node``."""
        names = self.on_swarm(
            "node", "ps", node, "--filter", "desired-state=running", "--format", "{{.Name}}"
        ).split()
        return sum(1 for name in names if name.startswith(f"{self.service}-{ENV}-"))

    def replica_services(self) -> set[str]:
        listed = self.on_swarm(
            "service", "ls", "-q", "--filter", f"label=dev.dockroll.service={self.service}"
        )
        return set(listed.split())

    def worker_to_drain(self) -> tuple[str, str]:
        """The worker running the fewest of the environment's tasks but one at least; a note."""
        if self.swarm is None:
            raise SystemExit("the Swarm is not up")
        counts = {worker.name: self.tasks_on(worker.name) for worker in self.swarm.workers}
        running = {name: count for name, count in counts.items() if count}
        if not running:
            raise SystemExit(f"no worker runs a replica of {self.service}: {counts}")
        name = min(running, key=lambda worker: (running[worker], worker))
        placed = f"ran {running[name]} of {sum(counts.values())} tasks"
        if len(running) == 1:  # no spreading of one-task services: docs/architecture.md
            placed += ", every replica on it"
        return name, placed

    def rolling_with_drain(self, worker: str) -> float | None:
        """A rolling deploy of v1.1.0; ``worker`` drained once the first new replica exists."""
        before = self.replica_services()
        with ThreadPoolExecutor(1) as pool:
            deploy = pool.submit(self.deploy, V2, "--strategy", "rolling")
            deadline = time.monotonic() + 120
            while not self.replica_services() - before and not deploy.done():
                if time.monotonic() > deadline:
                    raise SystemExit("the rolling deploy started no new replica within 120 s")
                time.sleep(0.2)
            self.drained.append(worker)
            self.on_swarm("node", "update", "--availability", "drain", worker)
            seconds: float | None = deploy.result()
        deadline = time.monotonic() + 120
        while self.tasks_on(worker):
            if time.monotonic() > deadline:
                raise SystemExit(f"{worker} still runs a task of {self.service} after 120 s")
            time.sleep(0.5)
        return seconds

    def activate_drained(self) -> None:
        while self.drained:
            worker = self.drained.pop()
            if self.swarm is not None:
                quiet(["docker", "--host", self.swarm.engine, "node", "update",
                       "--availability", "active", worker])  # fmt: skip

    # -- rows -------------------------------------------------------------------------

    def bench_dockroll_fleet(self) -> list[Any]:
        port, host = self.router_port, self.host
        self.deploy(V1)
        zd.answering_version(port, host=host, timeout=120)

        def row(scenario: str, command: Callable[[], float | None], note: str) -> Any:
            return self.measure(scenario, port, command, V2, note=note, host=host)

        def deploy(strategy: str) -> Callable[[], float | None]:
            return lambda: self.deploy(V2, "--strategy", strategy)

        rows = [
            self.measure("baseline dockroll (no change)", port, lambda: None, V1, host=host,
                         note="the router on the manager → 2 replicas on the workers"),
            row("dockroll rolling", deploy("rolling"), "2 replicas, batch 1, surge 1"),
        ]  # fmt: skip
        self.rollback()  # back to v1.0.0, not measured
        rows.append(row("dockroll blue-green", deploy("blue-green"), "2 + 2 replicas, one switch"))
        self.rollback()
        rows.append(row("dockroll canary", deploy("canary"), "10% → 50% → 100%, 3 s pauses"))
        self.rollback()
        worker, placed = self.worker_to_drain()
        try:
            rows.append(
                row(
                    "dockroll rolling + drain",
                    lambda: self.rolling_with_drain(worker),
                    f"{worker} ({placed}) drained mid-rollout",
                )
            )
        finally:
            self.activate_drained()
        return rows

    def cleanup(self) -> None:
        self.activate_drained()
        if self.swarm is not None:
            manager = ["docker", "--host", self.swarm.engine]
            label = f"label=dev.dockroll.service={self.service}"
            services = quiet([*manager, "service", "ls", "-q", "--filter", label]).split()
            if services:
                quiet([*manager, "service", "rm", *services])
            # the router and lock containers on the manager carry the service's name
            containers = quiet([*manager, "ps", "-aq", "--filter", f"name={self.service}"]).split()
            if containers:
                quiet([*manager, "rm", "-f", *containers])
            volumes = quiet([*manager, "volume", "ls", "-q", "--filter", label]).split()
            if volumes:
                quiet([*manager, "volume", "rm", *volumes])
            network = f"dockroll-{self.service}-{ENV}"
            for _ in range(40):  # the tasks' containers leave the network a moment later
                quiet([*manager, "network", "rm", network])
                if not quiet([*manager, "network", "ls", "-q", "--filter", f"name={network}"]):
                    break
                time.sleep(0.5)
        # the peer service, the images on every node, then everything on this machine
        zd.Bench.cleanup(self)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--duration", type=float, default=15, help="seconds of load per row")
    parser.add_argument("--lead", type=float, default=2, help="seconds of load before the command")
    parser.add_argument("--tail", type=float, default=3, help="least seconds of load after it")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="the local registry")
    args = parser.parse_args()
    if args.registry.rpartition(":")[0] not in ("127.0.0.1", "localhost"):
        raise SystemExit("the benchmark talks to a registry on 127.0.0.1 only")
    if not 1 <= args.rate <= 1000 or not 1 <= args.duration <= 120:
        raise SystemExit("--rate must be 1..1000 and --duration 1..120")
    try:
        ensure_commands(TOOLS, progress=say)
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    bench = FleetBench(args.rate, args.duration, args.lead, args.tail, args.registry)
    rows: list[Any] = []
    setup_failures: list[str] = []
    try:
        print(f"building {bench.image} {V1} and {V2} …", file=sys.stderr)
        bench.prepare()
        bench.on_the_swarm()
        for phase in (bench.bench_swarm, bench.bench_dockroll_fleet):
            try:
                rows += phase()
            except SystemExit as exc:  # a set-up step failed: the other phase still runs
                print(exc, file=sys.stderr)
                setup_failures.append(str(exc).strip().splitlines()[0])
        zd.print_table(rows, args.rate)
        for row in rows:
            if row.failed:
                failed = [s.sent - row.command_start for s in row.samples if s.status != 200]
                print(
                    f"  {row.scenario}: failures from {min(failed):+.1f}s to {max(failed):+.1f}s "
                    "after the command's start"
                )
        print(f"the load goes to the Swarm's manager at {bench.host} (a container of this machine)")
    finally:
        bench.cleanup()

    dockroll_rows = [row for row in rows if row.scenario.startswith("dockroll")]
    return zd.verdict(
        dockroll_rows, setup_failures, "no dockroll row on the Swarm failed a request"
    )


if __name__ == "__main__":
    sys.exit(main())
