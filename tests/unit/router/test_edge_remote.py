"""The remote edge's pieces that need no engine: the relay script (run here by perl, as the
engine runs it in the edge container), the volume seeding, the runtime socket's pointer,
and reading a bind failure from HAProxy's output."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from dockroll.router.edge import bind_failures
from dockroll.router.edge_remote import UnixSocketRelay, point_command, seed_command
from dockroll.router.runtime_api import AdminAddress, RuntimeApi


class _LocalSession:
    """A command run here with its stdin and stdout attached, as an exec session is."""

    def __init__(self, command: Sequence[str]) -> None:
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, data: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(data)
        self._process.stdin.flush()

    def receive(self) -> bytes:
        assert self._process.stdout is not None
        return os.read(self._process.stdout.fileno(), 65536)

    def close(self) -> None:
        self._process.kill()
        self._process.communicate()


class _Engine:
    """An engine whose containers are this machine: exec runs the command here."""

    endpoint = "ssh://edge.invalid"

    def __init__(self) -> None:
        self.sessions: list[_LocalSession] = []

    def open_exec(self, container: str, command: Sequence[str], *, timeout: float) -> _LocalSession:
        session = _LocalSession(command)
        self.sessions.append(session)
        return session


@pytest.fixture
def api_socket(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A unix socket answering like HAProxy's non-interactive API: one request per
    connection (up to an empty line after a payload), then it closes."""
    path = tmp_path / "admin.sock"
    received: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while not data.endswith(b"\n") or (b" <<\n" in data and not data.endswith(b"\n\n")):
                    data += conn.recv(4096)
                received.append(data)
                conn.sendall(b"answer to " + data.split(b"\n")[0] + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join()
    server.close()


def test_the_relay_carries_commands_and_payloads_to_a_unix_socket(
    api_socket: tuple[Path, list[bytes]],
) -> None:
    path, received = api_socket
    engine = _Engine()
    relay = UnixSocketRelay(engine, "edge", str(path))  # type: ignore[arg-type]
    api = RuntimeApi(AdminAddress(path=path, container="edge"), owner="the edge", transport=relay)

    assert api.execute("show info") == "answer to show info\n"
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert api.execute_payload("set ssl cert /x.pem", pem) == "answer to set ssl cert /x.pem <<\n"
    assert api.execute("show map /m") == "answer to show map /m\n"
    relay.close()

    assert received == [
        b"show info\n",
        b"set ssl cert /x.pem <<\n" + pem.encode() + b"\n",
        b"show map /m\n",
    ]
    assert len(engine.sessions) == 1  # one relay for every exchange


def test_the_relay_says_when_nothing_listens(tmp_path: Path) -> None:
    relay = UnixSocketRelay(_Engine(), "edge", str(tmp_path / "gone.sock"))  # type: ignore[arg-type]
    with pytest.raises(OSError, match=r"nothing listens on .*gone\.sock in edge"):
        relay("show info")
    relay.close()


def test_seeding_makes_missing_files_and_keeps_existing_ones(tmp_path: Path) -> None:
    (tmp_path / "routes.map").write_text("a.test 10.0.0.2\n")
    (tmp_path / "default.pem.seed").write_text("new default\n")
    command = seed_command(
        str(tmp_path), ["routes.map", "owners.map"], "default.pem", ["cat", "routes.map"]
    )

    ran = subprocess.run(command, capture_output=True, text=True, check=True)

    assert ran.stdout == "a.test 10.0.0.2\n"  # the command ran after the seeding, in place
    assert (tmp_path / "owners.map").read_text() == ""
    assert (tmp_path / "default.pem").read_text() == "new default\n"
    assert (tmp_path / "certs").is_dir()
    (tmp_path / "default.pem").write_text("kept\n")
    subprocess.run(command, capture_output=True, check=True)
    assert (tmp_path / "default.pem").read_text() == "kept\n"
    assert (tmp_path / "routes.map").read_text() == "a.test 10.0.0.2\n"


def test_pointing_replaces_the_symlink_in_one_step(tmp_path: Path) -> None:
    subprocess.run(point_command(str(tmp_path), "admin-aa.sock"), check=True)
    assert os.readlink(tmp_path / "admin.sock") == "admin-aa.sock"
    subprocess.run(point_command(str(tmp_path), "admin-bb.sock"), check=True)
    assert os.readlink(tmp_path / "admin.sock") == "admin-bb.sock"
    assert not (tmp_path / "admin.sock.link").exists()


def test_a_bind_failure_names_the_address_taken() -> None:
    logs = (
        "[NOTICE]   (1) : haproxy version is 2.6.12\n"
        "[ALERT]    (1) : Starting frontend edge: cannot bind socket (Address already in use) "
        "[0.0.0.0:8443]\n"
        "[ALERT]    (1) : [haproxy.main()] Some protocols failed to start their listeners! "
        "Exiting.\n"
    )
    assert bind_failures(logs) == ["0.0.0.0:8443"]
    assert bind_failures("[ALERT] (1) : Starting frontend edge: cannot bind socket "
                         "(Permission denied) [0.0.0.0:80]\n") == []  # fmt: skip
    assert bind_failures("") == []
