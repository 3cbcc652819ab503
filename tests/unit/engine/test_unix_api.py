"""The light engine client's HTTP: requests it sends and answers it reads, against a small
HTTP server on a unix socket standing in for the engine."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dockroll.engine.port import Health
from dockroll.engine.unix_api import UnixSocketEngine, parse_response
from dockroll.errors import EngineError, EngineUnavailable

ATTRS: dict[str, Any] = {
    "Id": "abc123",
    "Name": "/web-1",
    "Image": "sha256:feed",
    "Created": "2026-01-02T03:04:05.123456789Z",
    "RestartCount": 2,
    "State": {
        "Status": "running",
        "StartedAt": "2026-01-02T03:04:06Z",
        "Health": {"Status": "healthy"},
    },
    "Config": {"Image": "app:1", "Labels": {"dockroll.service": "web"}},
    "NetworkSettings": {
        "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}], "9000/tcp": None},
        "Networks": {"web-net": {"IPAddress": "172.18.0.5"}},
    },
}


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    requests: list[str]
    close_after_first: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Engine

    def address_string(self) -> str:  # a unix socket has no client address
        return "local"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        url = urlsplit(self.path)
        status, body = 404, {"message": "No such container: missing"}
        if url.path == "/version":
            status, body = 200, {"Version": "27.1.0"}
        elif url.path == "/info":
            status, body = 200, {"SystemTime": "2026-01-02T03:04:05.5+01:00"}
        elif url.path == "/containers/json":
            filters = json.loads(parse_qs(url.query)["filters"][0])
            status, body = 200, []
            if filters == {"label": ["dockroll.service=web"]}:
                body = [{"Id": "abc123"}, {"Id": "gone"}]
        elif url.path in {"/containers/abc123/json", "/containers/web-1/json"}:
            status, body = 200, ATTRS
        elif url.path == "/containers/broken/json":
            status, body = 500, {"message": "something broke\nsecond line"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.close_after_first:
            # hangs up without saying so, as an engine does with an idle kept-alive connection
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append(f"POST {self.path} {json.dumps(sent)}")
        url = urlsplit(self.path)
        answers: dict[str, tuple[int, Any]] = {
            "/containers/create": (409, {"message": "Conflict. The name is in use"})
            if parse_qs(url.query).get("name") == ["taken"]
            else (201, {"Id": "abc123", "Warnings": []}),
            "/containers/abc123/stop": (304, None),
            "/containers/missing/stop": (404, {"message": "No such container: missing"}),
            "/containers/broken/stop": (500, {"message": "cannot stop"}),
        }
        self._answer(*answers.get(url.path, (404, {"message": "page not found"})))

    def do_DELETE(self) -> None:
        self.server.requests.append(f"DELETE {self.path}")
        self._answer(204, None)

    def _answer(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Engine, UnixSocketEngine]]:
    path = tmp_path / "engine.sock"
    server = _Engine(str(path), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    engine = UnixSocketEngine(f"unix://{path}", timeout=5)
    yield server, engine
    engine.close()
    server.shutdown()
    server.server_close()


def test_reads_containers_by_label_and_skips_the_removed(
    served: tuple[_Engine, UnixSocketEngine],
) -> None:
    server, engine = served
    [info] = engine.containers({"dockroll.service": "web"})
    assert info.name == "web-1"
    assert info.id == "abc123"
    assert info.health is Health.HEALTHY
    assert info.status == "running"
    assert info.ports == {8080: 49153}
    assert info.networks == {"web-net": "172.18.0.5"}
    assert info.labels == {"dockroll.service": "web"}
    assert info.restart_count == 2
    assert info.created is not None
    listing = urlsplit(server.requests[0])
    assert listing.path == "/containers/json"
    assert parse_qs(listing.query)["all"] == ["1"]
    assert server.requests[1:] == ["/containers/abc123/json", "/containers/gone/json"]


def test_ping_clock_and_inspect(served: tuple[_Engine, UnixSocketEngine]) -> None:
    _, engine = served
    assert engine.ping() == "27.1.0"
    assert engine.now().isoformat() == "2026-01-02T02:04:05.500000+00:00"
    found = engine.container("web-1")
    assert found is not None
    assert found.id == "abc123"
    assert engine.container("missing") is None
    assert engine.node_names() == {}
    assert engine.endpoint.startswith("unix://")
    assert engine.local


def test_an_engine_error_carries_the_engines_message(
    served: tuple[_Engine, UnixSocketEngine],
) -> None:
    _, engine = served
    with pytest.raises(EngineError, match=r"inspecting container broken failed: something broke$"):
        engine.container("broken")
    # the connection is still usable afterwards
    assert engine.ping() == "27.1.0"


def test_a_closed_keep_alive_connection_is_opened_again(
    served: tuple[_Engine, UnixSocketEngine],
) -> None:
    server, engine = served
    server.close_after_first = True
    assert engine.ping() == "27.1.0"
    assert engine.ping() == "27.1.0"
    assert engine.container("abc123") is not None
    assert server.requests == ["/version", "/version", "/containers/abc123/json"]


def test_no_socket_is_engine_unavailable(tmp_path: Path) -> None:
    engine = UnixSocketEngine(f"unix://{tmp_path}/none.sock")
    with pytest.raises(EngineUnavailable, match="no Docker engine answers at unix://"):
        engine.ping()


def test_only_unix_endpoints() -> None:
    with pytest.raises(ValueError, match="not a unix socket"):
        UnixSocketEngine("tcp://127.0.0.1:2375")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"a": 1}', {"a": 1}),
        (204, b"", None),
        (404, b'{"message": "no such container"}', None),
    ],
)
def test_parse_response(status: int, body: bytes, expected: object) -> None:
    assert parse_response(status, body, "x") == expected


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b'{"message": "boom\\nmore"}', "x failed: boom"),
        (409, b"plain text conflict", "x failed: plain text conflict"),
        (503, b"", "x failed: HTTP 503"),
        (200, b"<html>", "x failed: the engine answered no JSON"),
    ],
)
def test_parse_response_failures(status: int, body: bytes, message: str) -> None:
    with pytest.raises(EngineError) as error:
        parse_response(status, body, "x")
    assert error.value.message == message


def test_reserve_creates_once(served: tuple[_Engine, UnixSocketEngine]) -> None:
    server, engine = served
    reserved = engine.reserve("lock", "haproxy:2.6", {"dockroll.role": "lock"})
    assert reserved is not None
    assert reserved.id == "abc123"
    assert server.requests[0] == (
        'POST /containers/create?name=lock {"Image": "haproxy:2.6", '
        '"Labels": {"dockroll.role": "lock"}, "Cmd": ["true"]}'
    )
    assert engine.reserve("taken", "haproxy:2.6", {}) is None


def test_remove_stops_then_deletes(served: tuple[_Engine, UnixSocketEngine]) -> None:
    server, engine = served
    engine.remove("abc123", grace=3)
    assert server.requests == [
        "POST /containers/abc123/stop?t=3 null",
        "DELETE /containers/abc123?force=1",
    ]
    engine.remove("missing", grace=0)  # nothing to remove: no DELETE either
    assert server.requests[-1] == "POST /containers/missing/stop?t=0 null"
    with pytest.raises(EngineError, match="removing container broken failed: cannot stop"):
        engine.remove("broken", grace=0)


def test_a_write_is_not_sent_twice_on_a_closed_connection(
    served: tuple[_Engine, UnixSocketEngine],
) -> None:
    server, engine = served
    server.close_after_first = True
    assert engine.ping() == "27.1.0"
    with pytest.raises(EngineUnavailable, match="closed the connection"):
        engine.reserve("lock", "haproxy:2.6", {})
    assert not any(request.startswith("POST") for request in server.requests)


def test_a_socket_that_does_not_speak_http_is_engine_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "other.sock"

    class _Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(1024)
            self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    server = socketserver.UnixStreamServer(str(path), _Garbage)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    engine = UnixSocketEngine(f"unix://{path}", timeout=5)
    try:
        with pytest.raises(EngineUnavailable, match="does not answer HTTP"):
            engine.ping()
    finally:
        engine.close()
        server.shutdown()
        server.server_close()
