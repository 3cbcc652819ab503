"""A Docker engine of the chaos suite's own, so restarting it disturbs nobody else.

:class:`PrivateEngine` runs a second ``dockerd`` beside the machine's engine:
its own unix socket, ``--data-root``, ``--exec-root``, pidfile, daemon.json and
address pool, a default bridge interface of its own, and no iptables rules of
its own (its rules would share chains with the host engine's and could wipe
them). One ACCEPT rule in FORWARD, for its addresses only, lets its containers
talk to each other through the host's DROP policy.

Never ``--bridge=none``: a dockerd started so deletes the ``docker0``
interface, which is the host engine's default bridge. The bridge is made here
(``ip link add``) under a name of this engine's own and handed to dockerd.
And always ``--live-restore``: without it, a dockerd restarted with an address
pool deletes ``docker0`` as well (its clean-up of a stale default network).

Images come from the host engine by ``docker save | docker load`` (the saved
archive cached by image id), releases from the registry on 127.0.0.1.

:meth:`PrivateEngine.close` removes everything it made: containers, the
dockerd and containerd processes, their mounts, the FORWARD rule, the bridge
and the directory; it also runs after a failed round, and :func:`clean_leftovers`
removes what a killed test run left behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import docker

from dockroll import devenv
from dockroll.statedir import state_dir

PREFIX = "dockroll-chaos-engine-"
"""Directory name prefix under /tmp (short: unix socket paths are limited to 108 bytes)."""
_RULE_COMMENT = "dockroll chaos engine {root}"


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True)
    found = []
    for line in routes.stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        with contextlib.suppress(ValueError):
            found.append(ipaddress.IPv4Network(word, strict=False))
    return found


def _free_pool() -> ipaddress.IPv4Network:
    """A 10.x.0.0/16 no route of this machine overlaps (checked, then picked at random)."""
    used = _used_networks()
    rules = _iptables("-S", "FORWARD").stdout
    candidates = [ipaddress.IPv4Network(f"10.{n}.0.0/16") for n in range(200, 250)]
    free = [
        net
        for net in candidates
        if not any(net.overlaps(other) for other in used if other.prefixlen > 0)
        and str(net) not in rules
    ]
    if not free:
        raise RuntimeError("no free 10.x.0.0/16 for the chaos engine's address pool")
    return random.SystemRandom().choice(free)


def _processes_under(root: Path) -> list[int]:
    """Pids whose command line names ``root`` (dockerd, containerd, shims, proxies)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if str(root) in _command(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _unmount_under(root: Path) -> None:
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _bridge_name(root: Path) -> str:
    """This engine's own bridge interface (at most 15 characters, never ``docker0``)."""
    return f"drc{root.name[-8:]}"


def _remove_root(root: Path) -> None:
    """Stop whatever still runs from ``root``, unmount, drop its FORWARD rule and bridge,
    delete it."""
    for pid in _processes_under(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _unmount_under(root)
    subprocess.run(["ip", "link", "del", _bridge_name(root)], capture_output=True, check=False)
    comment = _RULE_COMMENT.format(root=root)
    for rule in _iptables("-S", "FORWARD").stdout.splitlines():
        if comment in rule:
            _iptables(*_rule_args(rule))
    shutil.rmtree(root, ignore_errors=True)


def _rule_args(rule: str) -> list[str]:
    """``-A FORWARD ... --comment "x y"`` as the argv that deletes it."""
    parts = shlex.split(rule)
    return ["-D", *parts[1:]]


def clean_leftovers() -> None:
    """Remove the engines of earlier runs whose dockerd is gone (a killed test run)."""
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pidfile = root / "docker.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text(encoding="utf-8").strip())
            if Path(f"/proc/{pid}").exists():
                continue  # another run's engine, alive
        _remove_root(root)


class PrivateEngine:
    """A second dockerd this suite starts, restarts, kills and removes."""

    def __init__(self, host: docker.DockerClient) -> None:
        self.host = host
        """The machine's engine, which images are copied from and which is never touched."""
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        addresses = _free_pool()
        self.addresses = addresses
        """Everything this engine uses: its networks' pool and its default bridge."""
        self.pool = next(addresses.subnets(new_prefix=17))
        """Where its networks get their /24s (the lower half)."""
        self.bridge = _bridge_name(self.root)
        bridge_subnet = list(addresses.subnets(new_prefix=24))[-1]
        self.bridge_address = f"{bridge_subnet.network_address + 1}/24"
        self.endpoint = f"unix://{self.root}/docker.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._client: docker.DockerClient | None = None
        (self.root / "daemon.json").write_text("{}\n", encoding="utf-8")
        self._rule = [
            "FORWARD",
            "-s",
            str(addresses),
            "-d",
            str(addresses),
            "-m",
            "comment",
            "--comment",
            _RULE_COMMENT.format(root=self.root),
            "-j",
            "ACCEPT",
        ]
        for argv in (
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", self.bridge_address, "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                _remove_root(self.root)
                raise RuntimeError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
        added = _iptables("-I", *self._rule[:1], "1", *self._rule[1:])
        if added.returncode != 0:
            _remove_root(self.root)
            raise RuntimeError(f"iptables refused the chaos engine's rule: {added.stderr}")

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.endpoint, timeout=120)
        return self._client

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def namespace(self) -> str:
        """This engine's own part of the containerd namespaces: letters and digits only."""
        return self.root.name[-8:].replace("_", "0")

    def _argv(self) -> list[str]:
        root = self.root
        return [
            "dockerd",
            "--host",
            self.endpoint,
            "--config-file",
            str(root / "daemon.json"),
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "--default-address-pool",
            f"base={self.pool},size=24",
            "--bridge",
            self.bridge,
            # Without live-restore, a dockerd restarted with an address pool deletes the
            # `docker0` interface (Docker 20.10's clean-up of a stale default bridge network).
            "--live-restore",
            "--iptables=false",
            "--ip-masq=false",
            # Used only if a system containerd runs; otherwise dockerd supervises its own.
            # containerd takes letters and digits there, and a temporary name may hold "_".
            "--containerd-namespace",
            f"chaos-{self.namespace}",
            "--containerd-plugins-namespace",
            f"chaos-{self.namespace}-plugins",
        ]

    def start(self, wait: float = 90.0) -> float:
        """Start dockerd and wait until it answers; returns the seconds that took."""
        started = time.monotonic()
        if self._log is None:
            self._log = (self.root / "dockerd.log").open("ab")
        self._process = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = started + wait
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the chaos dockerd exited {self._process.returncode}:\n{self.log_tail()}"
                )
            if self._answers():
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the chaos dockerd does not answer after {wait:g}s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def _answers(self) -> bool:
        """Whether ``GET /_ping`` on the socket answers OK (a raw request: nothing left open)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(5)
                probe.connect(str(self.root / "docker.sock"))
                probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return probe.recv(64).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
        except OSError:
            return False

    def _wait_for_containerd_exit(self, wait: float = 30.0) -> None:
        """The containerd dockerd supervised dies with it, but not at once, and may stay a
        zombie for a while. A dockerd started while its pidfile names a live (or zombie)
        process adopts it and then waits for it in vain, so wait, then drop the pidfile."""
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        try:
            pid = int(pidfile.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return
        deadline = time.monotonic() + wait
        while _running(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    def stop(self, sig: signal.Signals = signal.SIGTERM, wait: float = 120.0) -> None:
        """Send ``sig`` to dockerd and wait until it has exited."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
        try:
            self._process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
            raise RuntimeError(
                f"the chaos dockerd did not stop on {sig.name} within {wait:g}s"
            ) from None
        finally:
            self._process = None
        self._wait_for_containerd_exit()

    def restart(self, sig: signal.Signals) -> float:
        """Stop dockerd with ``sig`` and start it again; returns the seconds it was down."""
        down = time.monotonic()
        self.stop(sig)
        self.start()
        return time.monotonic() - down

    def load(self, names: Iterable[str]) -> list[str]:
        """Copy images from the host engine (``docker save | docker load``); the archive is
        cached by image id, and an image already here is left alone. Returns those copied."""
        cache = state_dir() / "cache" / "chaos-engine-images"
        cache.mkdir(parents=True, exist_ok=True)
        copied = []
        for name in names:
            try:
                image = self.host.images.get(name)
            except docker.errors.ImageNotFound:
                continue
            with contextlib.suppress(docker.errors.ImageNotFound):
                if self.client.images.get(name).id == image.id:
                    continue
            archive = cache / f"{image.id.removeprefix('sha256:')}.tar"
            if not archive.is_file():
                partial = archive.with_suffix(".partial")
                with partial.open("wb") as out:
                    for chunk in image.save(named=True):
                        out.write(chunk)
                partial.replace(archive)
            with archive.open("rb") as data:
                self.client.images.load(data)
            # The archive names the image by its first tag, which may be another one.
            loaded = self.client.images.get(image.id)
            if name not in loaded.tags:
                loaded.tag(name)
            copied.append(name)
        return copied

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "dockerd.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Remove every container, stop dockerd, and delete all it left on the machine."""
        with contextlib.suppress(docker.errors.DockerException, OSError, RuntimeError):
            if self._process is not None and self._process.poll() is None:
                for container in self.client.containers.list(all=True):
                    with contextlib.suppress(docker.errors.DockerException):
                        container.remove(force=True)
        with contextlib.suppress(RuntimeError):
            self.stop(signal.SIGTERM, wait=60)
        if self._log is not None:
            self._log.close()
            self._log = None
        _remove_root(self.root)


def ensure_tools() -> None:
    """dockerd (docker.io) and iptables, installed from Debian as `dev up` does."""
    devenv.ensure_commands({"dockerd": "docker.io", "iptables": "iptables", "ip": "iproute2"})
