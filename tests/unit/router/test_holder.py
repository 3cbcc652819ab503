"""The holder's watch, run with the real perl and sh against an engine API on a unix socket.

The engine here answers ``GET /containers/<name>/json`` from a script of
states and records every request; the integration test (an engine restarted
under a remote router, tests/integration/test_remote_tls.py) proves the rest.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path

from dockroll.router.holder import ENGINE_SOCKET, holder_entrypoint, socket_mount


class Engine:
    """An engine API that says the container is stopped until it is started (or never is)."""

    def __init__(self, path: Path, *, exists: bool = True, starts: bool = True) -> None:
        self.path = path
        self.exists = exists
        self.starts = starts
        self.running = False
        self.requests: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with client:
                request = client.recv(4096).decode()
                line = request.split("\r\n", 1)[0]
                self.requests.append(line)
                method, path, _ = line.split(" ")
                if method == "POST" and path.endswith("/start"):
                    self.running = self.starts
                    client.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
                elif not self.exists:
                    client.sendall(b'HTTP/1.1 404 Not Found\r\n\r\n{"message":"No such container"}')
                else:
                    state = {"State": {"Status": "running" if self.running else "exited"}}
                    state["State"]["Running"] = self.running  # type: ignore[assignment]
                    body = json.dumps(state, separators=(",", ":")).encode()
                    client.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + body)

    def close(self) -> None:
        self._server.close()


def _watch(engine: Engine, *, watch: float = 3) -> subprocess.Popen[bytes]:
    command = holder_entrypoint(
        "dockroll-router-web-prod", watch=watch, poll=0.05, engine_socket=str(engine.path)
    )
    return subprocess.Popen(command, stderr=subprocess.PIPE)


def _stop(process: subprocess.Popen[bytes]) -> bytes:
    process.kill()
    _, err = process.communicate(timeout=5)
    return err


def test_a_haproxy_the_engine_left_stopped_is_started_once_and_the_holder_sleeps_on(
    tmp_path: Path,
) -> None:
    engine = Engine(tmp_path / "engine.sock")
    process = _watch(engine)
    try:
        for _ in range(100):
            if engine.running:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["sleep", "0.5"], check=True)
        assert process.poll() is None  # it goes on holding the namespace
    finally:
        err = _stop(process)
        engine.close()
    starts = [r for r in engine.requests if r.startswith("POST")]
    assert starts == ["POST /containers/dockroll-router-web-prod/start HTTP/1.0"]
    # Seen running: it asks no more.
    assert engine.requests[-1] == "GET /containers/dockroll-router-web-prod/json HTTP/1.0"
    assert len(engine.requests) == 3
    assert b"starting dockroll-router-web-prod" in err


def test_no_container_yet_is_waited_for_and_never_created(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "engine.sock", exists=False)
    process = _watch(engine, watch=1)
    try:
        subprocess.run(["sleep", "0.5"], check=True)
        engine.exists = True  # dockroll created it meanwhile, and starts it itself
        engine.running = True
        subprocess.run(["sleep", "0.3"], check=True)
    finally:
        _stop(process)
        engine.close()
    assert len(engine.requests) > 3
    assert not [r for r in engine.requests if r.startswith("POST")]


def test_the_watch_ends_after_its_window_even_if_haproxy_never_runs(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "engine.sock", starts=False)  # a config that cannot start
    process = _watch(engine, watch=1)
    try:
        subprocess.run(["sleep", "3.5"], check=True)  # a 1 s window ends within 2 s
        asked = len(engine.requests)
        subprocess.run(["sleep", "0.5"], check=True)
        assert process.poll() is None
    finally:
        _stop(process)
        engine.close()
    assert asked > 4
    assert len(engine.requests) == asked  # past the window: only sleeping


def test_without_an_engine_socket_the_holder_only_holds(tmp_path: Path) -> None:
    missing = Engine(tmp_path / "engine.sock")
    missing.close()
    (tmp_path / "engine.sock").unlink()
    process = _watch(missing, watch=1)
    try:
        subprocess.run(["sleep", "0.5"], check=True)
        assert process.poll() is None
    finally:
        _stop(process)


def test_the_socket_comes_from_the_local_engine_or_the_usual_path_on_a_remote_host() -> None:
    local = socket_mount("unix:///run/user/1000/docker.sock")
    assert (local.source, local.target, local.kind) == (
        "/run/user/1000/docker.sock",
        ENGINE_SOCKET,
        "bind",
    )
    assert socket_mount("ssh://deploy@app1").source == ENGINE_SOCKET
    assert socket_mount("tcp://10.0.0.5:2376").source == ENGINE_SOCKET
