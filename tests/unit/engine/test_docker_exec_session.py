"""The attached exec session over a real TLS connection, as a tcp:// engine gives one.

A server on 127.0.0.1 plays the engine: it frames what it reads back, as
dockerd frames a command's output, while the client writes from one thread
and reads in another, as a forward does.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockroll.engine.docker import DockerExecSession
from dockroll.router.tls import self_signed


class _Response:
    closed = False

    def close(self) -> None:
        self.closed = True


def _server_context(directory: Path) -> ssl.SSLContext:
    cert, key = self_signed("engine", days=1)
    (directory / "cert.pem").write_bytes(cert)
    (directory / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def _frame(payload: bytes) -> bytes:
    return b"\x01\x00\x00\x00" + len(payload).to_bytes(4, "big") + payload


@pytest.fixture
def engine_side(tmp_path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A TLS server that frames back what it reads (``echo``) or stays silent."""
    context = _server_context(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    behaviour: dict[str, Any] = {"echo": True}

    def serve() -> None:
        with listener:
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as conn:
                while data := conn.recv(65536):
                    if behaviour["echo"]:
                        conn.sendall(_frame(data))
                behaviour["done"] = True

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], behaviour
    thread.join(timeout=5)


def _session(port: int, timeout: float = 10) -> tuple[DockerExecSession, _Response]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port))
    response = _Response()
    return DockerExecSession(context.wrap_socket(raw), response, timeout=timeout), response


def test_writes_and_reads_from_two_threads_lose_nothing(
    engine_side: tuple[int, dict[str, Any]],
) -> None:
    port, _ = engine_side
    session, response = _session(port)
    sent = [f"line {n} ".encode() * 50 for n in range(2000)]

    def write() -> None:
        for data in sent:
            session.send(data)

    writer = threading.Thread(target=write)
    writer.start()
    received = b""
    expected = b"".join(sent)
    while len(received) < len(expected):
        received += session.receive()
    writer.join(timeout=10)
    session.close()
    assert received == expected
    assert response.closed


def test_nothing_arriving_within_the_timeout_is_a_timeout(
    engine_side: tuple[int, dict[str, Any]],
) -> None:
    port, behaviour = engine_side
    behaviour["echo"] = False
    session, _ = _session(port, timeout=0.3)
    session.send(b"hello")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"0\.3s"):
        session.receive()
    assert time.monotonic() - started < 3
    session.close()


def test_a_session_closed_from_another_thread_ends_the_reader(
    engine_side: tuple[int, dict[str, Any]],
) -> None:
    port, behaviour = engine_side
    behaviour["echo"] = False
    session, _ = _session(port, timeout=30)
    ended: list[object] = []

    def read() -> None:
        try:
            ended.append(session.receive())
        except OSError as exc:
            ended.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    session.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert ended == [b""] or isinstance(ended[0], OSError), ended
