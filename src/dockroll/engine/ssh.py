"""Engines at ``ssh://[user@]host[:port]``, through the system ``ssh`` client.

:class:`EngineTunnel` runs one ``ssh -N -L`` that forwards a private unix
socket here to the host's Docker socket, and the Docker SDK talks to that
socket as to a local engine (streams, attach and exec included). The system
ssh client is used, so the user's ssh configuration, agent and known_hosts
apply exactly as for ``ssh`` itself; it runs in batch mode, so an unknown
host key or a refused key becomes an :class:`~dockroll.errors.EngineError`
that says what to do (:func:`failure`), instead of a prompt.

:class:`SshTunnel` forwards a port on this machine's 127.0.0.1 to an address
the remote host reaches (a replica on its Docker network), for as long as a
command needs it, and closes it afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from dockroll.errors import EngineError, EngineUnavailable

__all__ = [
    "DOCKER_SOCKET",
    "EngineTunnel",
    "SshTarget",
    "SshTunnel",
    "failure",
    "parse_ssh_endpoint",
]

DOCKER_SOCKET = "/var/run/docker.sock"
_BATCH = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None

    @property
    def argv(self) -> list[str]:
        """``ssh`` options naming the user and port, before ``--`` and the host."""
        argv = []
        if self.user:
            argv += ["-l", self.user]
        if self.port:
            argv += ["-p", str(self.port)]
        return argv

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts spells it: ``[host]:port`` off port 22."""
        return f"[{self.host}]:{self.port}" if self.port and self.port != 22 else self.host

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


def parse_ssh_endpoint(endpoint: str) -> SshTarget:
    """``ssh://[user@]host[:port]`` → its parts; anything else is an EngineError."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
        bad = True
    else:
        bad = False
    if bad or parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/"):
        raise EngineError(
            f"{endpoint!r} is not an ssh engine address",
            hint="write it as ssh://[user@]host[:port], e.g. ssh://deploy@app1.example.com",
        )
    return SshTarget(host=parts.hostname, user=parts.username, port=port)


def _ssh_binary() -> str:
    found = shutil.which("ssh")
    if found is None:
        raise EngineUnavailable(
            "an ssh:// engine needs the `ssh` client, which is not installed",
            hint="install it (Debian/Ubuntu: `apt-get install openssh-client`)",
        )
    return found


def failure(target: SshTarget, stderr: str, returncode: int | None) -> EngineError:
    """The EngineError for an ssh that exited with ``stderr``: what went wrong, what to do."""
    error = stderr.strip()
    lowered = error.lower()
    last = error.splitlines()[-1] if error else f"ssh exited {returncode}"
    if "host key verification failed" in lowered or "no matching host key" in lowered:
        changed = "remote host identification has changed" in lowered
        port = f"-p {target.port} " if target.port else ""
        return EngineError(
            f"ssh refuses {target}: its host key "
            + ("changed since it was recorded" if changed else "is not in known_hosts"),
            hint=(
                f"check the new key with the host's owner, then `ssh-keygen -R "
                f"'{target.known_hosts_name}'` and record it again"
                if changed
                else f"check its fingerprint, then record it: `ssh-keyscan {port}{target.host} "
                ">> ~/.ssh/known_hosts` (or `ssh` to it once and answer yes)"
            ),
        )
    if "permission denied" in lowered:
        return EngineError(
            f"ssh refused the login to {target}: {last}",
            hint="load a key the host accepts into ssh-agent, or name it with IdentityFile "
            "in ~/.ssh/config",
        )
    return EngineUnavailable(
        f"ssh to {target} failed: {last}",
        hint="`ssh " + " ".join([*target.argv, target.host]) + "` shows the whole story",
    )


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A tunnel must not outlive the dockroll that opened it, even after kill -9.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EngineTunnel:
    """``ssh -L`` from a private unix socket here to the host's Docker socket.

    The Docker SDK then talks to a local unix socket: one ssh connection per
    engine, opened on first use and closed with the engine (or when the
    process exits). Batch mode: an unknown host key or a refused login fails
    at once with an EngineError naming the fix, instead of a prompt.
    """

    def __init__(
        self, endpoint: str, *, remote_socket: str = DOCKER_SOCKET, timeout: float = 30.0
    ) -> None:
        self.target = parse_ssh_endpoint(endpoint)
        self.remote_socket = remote_socket
        self.timeout = timeout
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        if self._directory is None:
            raise EngineError(f"the ssh tunnel to {self.target} is not open")
        return self._directory / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    def open(self) -> str:
        """Open the tunnel; returns the ``unix://`` URL of its end here."""
        if self._process is not None and self._process.poll() is None:
            return self.base_url
        self._directory = Path(tempfile.mkdtemp(prefix="dockroll-ssh-"))
        argv = [
            _ssh_binary(),
            *_BATCH,
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "StreamLocalBindUnlink=yes",
            "-o",
            "ServerAliveInterval=15",
            "-N",
            "-L",
            f"{self.socket_path}:{self.remote_socket}",
            *self.target.argv,
            "--",
            self.target.host,
        ]
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the parent-death signal
        )
        _OPEN.add(self)
        deadline = time.monotonic() + self.timeout
        while not self.socket_path.exists():
            code = self._process.poll()
            if code is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                self.close()
                raise failure(self.target, stderr, code)
            if time.monotonic() >= deadline:
                self.close()
                raise EngineUnavailable(
                    f"ssh to {self.target} did not open its tunnel within {self.timeout:g}s",
                    hint="is the host up and its sshd reachable from here?",
                )
            time.sleep(0.02)
        return self.base_url

    def close(self) -> None:
        process, self._process = self._process, None
        _OPEN.discard(self)
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stderr is not None:
                process.stderr.close()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


_OPEN: set[EngineTunnel] = set()


@atexit.register
def _close_all() -> None:
    for tunnel in list(_OPEN):
        tunnel.close()


class SshTunnel:
    """``ssh -L`` from a free port on 127.0.0.1 to ``address:port`` as the remote host sees it."""

    def __init__(self, endpoint: str, address: str, port: int, *, timeout: float = 15.0) -> None:
        self.target = parse_ssh_endpoint(endpoint)
        self.address = address
        self.port = port
        self.timeout = timeout
        self.local_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def __enter__(self) -> SshTunnel:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.local_port = int(probe.getsockname()[1])
        argv = [
            _ssh_binary(),
            *_BATCH,
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-L",
            f"127.0.0.1:{self.local_port}:{self.address}:{self.port}",
            *self.target.argv,
            "--",
            self.target.host,
        ]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                self.close()
                raise EngineError(
                    f"ssh could not forward a port to {self.address}:{self.port} on "
                    f"{self.target}: {error.strip() or 'ssh exited'}",
                    hint="the host's sshd must allow TCP forwarding (AllowTcpForwarding yes)",
                )
            try:
                socket.create_connection(("127.0.0.1", self.local_port), 1).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    self.close()
                    raise EngineError(
                        f"the ssh tunnel to {self.address}:{self.port} on {self.target} did "
                        f"not open within {self.timeout:g}s"
                    ) from None
                time.sleep(0.05)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
