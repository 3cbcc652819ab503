"""The integration tests' load generators fail on a stalled load instead of passing it."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.canary_support import PacedLoad
from tests.integration.rollout_support import Load


class _Version(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"version": "v1.0.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    """A server on 127.0.0.1 answering every GET at once."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


class _Stalled:
    """Accepts connections on 127.0.0.1 and never answers, until :meth:`close`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        # shutdown() wakes the blocked accept(); closing the held connections then
        # ends the load's pending requests at once, and new ones are refused.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(5)
        for conn in self.held:
            conn.close()


@pytest.fixture
def stalled() -> Iterator[_Stalled]:
    server = _Stalled()
    yield server
    server.close()


def test_load_wait_for_returns_once_enough_answers_arrived(answering: str) -> None:
    with Load(answering, threads=2) as load:
        load.wait_for(20, timeout=10)

    assert len(load.answers) >= 20
    assert load.failures == []


def test_load_wait_for_fails_when_the_load_stalls(stalled: _Stalled) -> None:
    with Load(stalled.url, threads=2) as load:
        with pytest.raises(pytest.fail.Exception, match=r"stalled: 0 of 20 answers after 0.3s"):
            load.wait_for(20, timeout=0.3)
        stalled.close()

    assert load.answers == [] or all(a.version is None for a in load.answers)


def test_paced_load_wait_for_returns_once_enough_replies_arrived(answering: str) -> None:
    with PacedLoad(answering, rate=200, threads=2) as load:
        load.wait_for(20, timeout=10)

    assert len(load.replies) >= 20
    assert load.failed() == []


def test_paced_load_wait_for_fails_when_the_load_stalls(stalled: _Stalled) -> None:
    with PacedLoad(stalled.url, rate=200, threads=2) as load:
        with pytest.raises(pytest.fail.Exception, match=r"stalled: 0 of 20 replies after 0.3s"):
            load.wait_for(20, timeout=0.3)
        stalled.close()

    assert all(r.status != 200 for r in load.replies)
