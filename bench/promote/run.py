"""Promotion benchmark: dockroll's registry retag vs docker pull/tag/push vs skopeo copy.

One image of at least 200 MB (the local python base plus 200 MiB of random
data, so nothing compresses away) is pushed once to the local registry under a
fresh repository and recorded as a release. Then it is promoted three times
(1.0.0 → dev → staging → prod) by each method, in the same run:

  dockroll  plan_promotion + execute_promotion: HEADs, one manifest GET and PUT per tag
  dockroll CLI
            `dockroll promote 1.0.0 --to ENV --registry-only` as a user runs it: the
            whole process, start-up, dockroll.yml, the ledger and the engine check
            included (its own service and environment tags, so it writes every time)
  docker    docker pull + docker tag + docker push, from a cold cache each time
            (the image is removed locally before each pull, as on a fresh CI runner;
            base layers the engine has for other images stay cached)
  skopeo    skopeo copy docker://… docker://… (registry to registry, no engine)

Bytes are measured on the wire: every method talks to the registry through a
small counting TCP proxy on 127.0.0.1 written here, which counts every byte in
each direction (HTTP headers included). For dockroll the client's own counter
of body bytes sent is shown as well; the target is on that one: at most twice
the manifest size per promotion, in well under a second.

    .venv/bin/python bench/promote/run.py [--registry 127.0.0.1:5000] [--size-mb 200]

Afterwards the repository's manifests are deleted and the local images removed;
the blobs stay in the registry's storage until its garbage collection runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dockroll.config import Config
from dockroll.devenv import ensure_commands
from dockroll.errors import DevEnvError
from dockroll.events import Progress
from dockroll.ledger import Ledger, Release, open_ledger
from dockroll.pipeline.promote import execute_promotion, plan_promotion
from dockroll.refs import Digest
from dockroll.registry import RegistryClient

BASE_IMAGE = "dockroll.local/python:3.11-slim"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))
PROMOTIONS = (("1.0.0", "dev"), ("dev", "staging"), ("staging", "prod"))
SECONDS_TARGET = 1.0
# What the three methods run (command → Debian package), installed when missing.
TOOLS = {"docker": "docker.io", "skopeo": "skopeo", "tar": "tar"}


# -- a counting TCP proxy -------------------------------------------------------


class CountingProxy:
    """Forwards 127.0.0.1:<port> to the registry, counting bytes in each direction."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.to_registry = 0
        self.from_registry = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def counters(self) -> tuple[int, int]:
        with self._lock:
            return self.to_registry, self.from_registry

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        try:
            while True:
                n = src.recv_into(buffer)
                if n == 0:
                    break
                # Counted before forwarding: when a command has finished, its bytes are in.
                with self._lock:
                    if up:
                        self.to_registry += n
                    else:
                        self.from_registry += n
                dst.sendall(view[:n])
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stopped = True
        self._server.close()


# -- measurements ---------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    promotion: str
    seconds: float
    wire_sent: int
    wire_received: int
    body_sent: int | None
    digest_kept: bool
    cpu: float | None = None
    """User + system CPU seconds of the command's processes (the peers' and the CLI's)."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured(proxy: CountingProxy) -> Iterator[Callable[[], tuple[float, int, int, float]]]:
    """Wall time, bytes each way through the proxy, and CPU time of the commands run meanwhile."""
    sent0, received0 = proxy.counters()
    cpu0 = _children_cpu()
    started = time.perf_counter()
    result: list[tuple[float, int, int, float]] = []

    def done() -> tuple[float, int, int, float]:
        return result[0]

    yield done
    elapsed = time.perf_counter() - started
    sent1, received1 = proxy.counters()
    result.append((elapsed, sent1 - sent0, received1 - received0, _children_cpu() - cpu0))


def run(argv: list[str], *, quiet: bool = True) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SystemExit(f"{argv[0]} is not installed (needed for `{' '.join(argv)}`)") from None
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if not quiet:
        print(done.stdout, end="")
    return done.stdout


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- set-up ---------------------------------------------------------------------


def say(event: Progress) -> None:
    if not event.detail:
        print(event.message, file=sys.stderr)


def output(argv: list[str]) -> str:
    """A clean-up command's stdout; "" when it failed or is not installed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return done.stdout if done.returncode == 0 else ""


def build_image(workdir: Path, tag: str, size_mb: int) -> None:
    """The base image plus ``size_mb`` MiB of random data (incompressible) in one layer."""
    context = workdir / "context"
    context.mkdir()
    with (context / "payload.bin").open("wb") as payload:
        for _ in range(size_mb):
            payload.write(os.urandom(1 << 20))
    has_base = subprocess.run(
        ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False
    )
    if has_base.returncode == 0:
        (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY payload.bin /payload.bin\n")
        run(["docker", "build", "-q", "-t", tag, str(context)])
    else:
        print(f"{BASE_IMAGE} is missing (`dockroll dev up` makes it); random data only")
        tar = workdir / "payload.tar"
        run(["tar", "-C", str(context), "-cf", str(tar), "payload.bin"])
        run(["docker", "import", str(tar), tag])


def image_bytes(tag: str) -> int:
    return int(run(["docker", "image", "inspect", "-f", "{{.Size}}", tag]).strip())


def bench_config(image: str) -> Config:
    return Config.model_validate(
        {
            "service": "bench-promote",
            "image": image,
            "environments": {
                "dev": {"port": 28080, "tags": ["dev"]},
                "staging": {"port": 28081, "promote_from": "dev", "tags": ["staging"]},
                "prod": {"port": 28082, "promote_from": "staging", "tags": ["prod"]},
            },
        }
    )


# -- the three methods ----------------------------------------------------------


def bench_dockroll(
    proxy: CountingProxy, config: Config, ledger: Ledger, release: Release
) -> list[Row]:
    rows = []
    with RegistryClient(proxy.address, lookup_credentials=False) as client:
        for source, target in PROMOTIONS:
            reference = release.version if source == "1.0.0" else release.digest
            before = client.traffic
            with measured(proxy) as result:
                plan = plan_promotion(config, ledger, client, reference, target, notes="bench")
                execute_promotion(plan, client, ledger, config)
            seconds, sent, received, _ = result()
            body = (client.traffic - before).bytes_sent
            kept = client.resolve(release.repository, target) == release.digest
            rows.append(
                Row("dockroll", f"{source} → {target}", seconds, sent, received, body, kept)
            )
    return rows


def bench_dockroll_cli(
    proxy: CountingProxy, workdir: Path, repo: str, repository: str, digest: Digest
) -> list[Row]:
    """The `dockroll promote` command, start-up included, with a config and ledger of its own."""
    app = workdir / "cli"
    app.mkdir()
    config = bench_config(repo).model_dump(mode="json", exclude_defaults=True)
    config["service"] = "bench-promote-cli"
    for name, environment in config["environments"].items():
        environment["tags"] = [f"cli-{name}"]
    # Promoted to once, unmeasured, before the three promotions (see below).
    config["environments"]["warm-up"] = {"port": 28083, "tags": ["cli-warm-up"]}
    (app / "dockroll.yml").write_text(json.dumps(config), encoding="utf-8")
    (app / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    ledger_url = f"sqlite:///{app / 'ledger.db'}"
    with open_ledger(ledger_url) as ledger:
        ledger.record_release(
            service="bench-promote-cli",
            version="1.0.0",
            digest=digest,
            registry=proxy.address,
            repository=repository,
            tags=["1.0.0"],
            pushed_at=datetime.now(UTC),
        )
    env = {
        **os.environ,
        "DOCKROLL_CONFIG": str(app / "dockroll.yml"),
        "DOCKROLL_LEDGER_URL": ledger_url,
        "DOCKROLL_STATE_DIR": str(app / "state"),
        "NO_COLOR": "1",
        # Compiled modules cached as an installed dockroll has them, without writing
        # into the source tree.
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # One unmeasured promotion fills that cache (as the first run after an install does).
    warm = [DOCKROLL, "promote", "1.0.0", "--to", "warm-up", "--registry-only"]
    subprocess.run(warm, capture_output=True, env=env, check=False)
    rows = []
    with RegistryClient(proxy.address, lookup_credentials=False) as client:
        for source, target in PROMOTIONS:
            argv = [DOCKROLL, "promote", "1.0.0", "--to", target, "--registry-only"]
            with measured(proxy) as result:
                done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
            seconds, sent, received, cpu = result()
            kept = client.resolve(repository, f"cli-{target}") == digest
            rows.append(
                Row(
                    "dockroll CLI", f"{source} → {target}", seconds, sent, received, None, kept, cpu
                )
            )
    return rows


def bench_docker(proxy: CountingProxy, repo: str, digest: Digest) -> list[Row]:
    rows = []
    with RegistryClient(proxy.address, lookup_credentials=False) as client:
        for source, target in PROMOTIONS:
            src = f"{repo}:{source if source == '1.0.0' else 'docker-' + source}"
            dst = f"{repo}:docker-{target}"
            with measured(proxy) as result:
                run(["docker", "pull", "-q", src])
                run(["docker", "tag", src, dst])
                run(["docker", "push", "-q", dst])
            seconds, sent, received, cpu = result()
            run(["docker", "rmi", src, dst])  # the next promotion starts cold again
            kept = client.resolve(repo.split("/", 1)[1], f"docker-{target}") == digest
            rows.append(
                Row("docker", f"{source} → {target}", seconds, sent, received, None, kept, cpu)
            )
    return rows


def bench_skopeo(proxy: CountingProxy, repo: str, digest: Digest) -> list[Row]:
    rows = []
    with RegistryClient(proxy.address, lookup_credentials=False) as client:
        for source, target in PROMOTIONS:
            src = f"{repo}:{source if source == '1.0.0' else 'skopeo-' + source}"
            dst = f"{repo}:skopeo-{target}"
            with measured(proxy) as result:
                run(
                    [
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        "--dest-tls-verify=false",
                        f"docker://{src}",
                        f"docker://{dst}",
                    ]
                )
            seconds, sent, received, cpu = result()
            kept = client.resolve(repo.split("/", 1)[1], f"skopeo-{target}") == digest
            rows.append(
                Row("skopeo", f"{source} → {target}", seconds, sent, received, None, kept, cpu)
            )
    return rows


# -- main -----------------------------------------------------------------------


def print_table(rows: list[Row], manifest_size: int, image_size: int) -> None:
    print()
    print(f"image: {human(image_size)} uncompressed; manifest: {manifest_size} bytes")
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs")
    header = (
        f"{'method':<12} {'promotion':<18} {'wall':>8} {'cpu':>7} {'sent (wire)':>12} "
        f"{'received (wire)':>16} {'body sent':>10} {'digest kept':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        body = str(row.body_sent) if row.body_sent is not None else "-"
        cpu = f"{row.cpu:.2f}s" if row.cpu is not None else "-"
        print(
            f"{row.method:<12} {row.promotion:<18} {row.seconds:>7.3f}s {cpu:>7} "
            f"{human(row.wire_sent):>12} {human(row.wire_received):>16} {body:>10} "
            f"{'yes' if row.digest_kept else 'NO':>11}"
        )
    print()
    print(
        "wire = every byte through the counting proxy, headers included; "
        "body sent = dockroll's client counter (request bodies only);\n"
        "cpu = user + system time of the command's processes (docker: the CLI only, "
        "not the engine; dockroll: the library in this process, so -)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="127.0.0.1:5000", help="the local registry")
    parser.add_argument("--size-mb", type=int, default=200, help="MiB of random data to add")
    args = parser.parse_args()
    host, _, port = args.registry.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        parser.error("--registry must be 127.0.0.1:PORT: the benchmark talks to it only")
    if args.size_mb < 1:
        parser.error("--size-mb must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    host, _, port = args.registry.rpartition(":")
    try:
        ensure_commands(TOOLS, progress=say)
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    proxy = CountingProxy((host, int(port)))
    run_id = uuid.uuid4().hex[:8]
    repository = f"bench/promote-{run_id}"
    repo = f"{proxy.address}/{repository}"
    built = f"dockroll-bench/promote:{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="dockroll-bench-"))
    os.environ["DOCKROLL_ACTOR"] = "bench"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the start: {load}", file=sys.stderr)
    try:
        print(f"building a ≥{args.size_mb} MiB image …", file=sys.stderr)
        build_image(workdir, built, args.size_mb)
        size = image_bytes(built)
        run(["docker", "tag", built, f"{repo}:1.0.0"])
        print(f"pushing {repo}:1.0.0 once …", file=sys.stderr)
        started = time.perf_counter()
        run(["docker", "push", "-q", f"{repo}:1.0.0"])
        push_seconds = time.perf_counter() - started
        run(["docker", "rmi", built, f"{repo}:1.0.0"])
        with RegistryClient(proxy.address, lookup_credentials=False) as client:
            manifest = client.get_manifest(repository, "1.0.0")
        print(f"pushed in {push_seconds:.1f}s as {manifest.digest}", file=sys.stderr)

        config = bench_config(repo)
        with open_ledger(f"sqlite:///{workdir / 'ledger.db'}") as ledger:
            release = ledger.record_release(
                service=config.service,
                version="1.0.0",
                digest=manifest.digest,
                registry=proxy.address,
                repository=repository,
                tags=["1.0.0"],
                pushed_at=datetime.now(UTC),
            )
            rows = bench_dockroll(proxy, config, ledger, release)
        print("dockroll promote (the CLI) …", file=sys.stderr)
        rows += bench_dockroll_cli(proxy, workdir, repo, repository, manifest.digest)
        print("docker pull/tag/push …", file=sys.stderr)
        rows += bench_docker(proxy, repo, manifest.digest)
        print("skopeo copy …", file=sys.stderr)
        rows += bench_skopeo(proxy, repo, manifest.digest)
        print_table(rows, manifest.size, size)

        failures = [
            f"{row.promotion}: {row.body_sent} bytes sent > 2x {manifest.size}"
            for row in rows
            if row.method == "dockroll" and (row.body_sent or 0) > 2 * manifest.size
        ]
        failures += [
            f"{row.promotion}: {row.seconds:.3f}s, not under {SECONDS_TARGET}s"
            for row in rows
            if row.method == "dockroll" and row.seconds >= SECONDS_TARGET
        ]
        failures += [
            f"{r.method} {r.promotion} changed the digest" for r in rows if not r.digest_kept
        ]
        if failures:
            print("TARGET MISSED:\n  " + "\n  ".join(failures))
            return 1
        print(
            f"target met: dockroll sent at most 2x the manifest ({2 * manifest.size} bytes) "
            f"per promotion, each under {SECONDS_TARGET}s"
        )
        return 0
    finally:
        cleanup(proxy, repository, repo, built, workdir)


def cleanup(proxy: CountingProxy, repository: str, repo: str, built: str, workdir: Path) -> None:
    try:
        with RegistryClient(proxy.address, lookup_credentials=False) as client:
            digests = {
                digest
                for tag in client.list_tags(repository)
                if (digest := client.manifest_digest(repository, tag)) is not None
            }
            for digest in digests:
                client.delete_manifest(repository, digest)
    except Exception as exc:  # cleanup reports and goes on
        print(f"cleanup: could not delete {repository}'s manifests: {exc}", file=sys.stderr)
    local = output(["docker", "images", "-q", "--filter", f"reference={repo}"]).split()
    local += output(["docker", "images", "-q", "--filter", f"reference={built}"]).split()
    if local:
        output(["docker", "rmi", "-f", *set(local)])
    shutil.rmtree(workdir, ignore_errors=True)
    proxy.close()


if __name__ == "__main__":
    sys.exit(main())
