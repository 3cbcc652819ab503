"""A scripted stand-in for HAProxy's runtime API socket, served from a thread.

It speaks the non-interactive protocol: read one line, run the ``;``-separated
commands in order, write every answer, close. ``answer`` decides what each
command gets back; every line received is recorded.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Answer = Callable[[str], str]


class FakeCli:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.lines: list[str] = []

    @property
    def commands(self) -> list[str]:
        return [cmd for line in self.lines for cmd in line.split(";")]

    @property
    def changes(self) -> list[str]:
        """The lines that change something (reads such as ``show map`` left out)."""
        return [line for line in self.lines if not line.startswith("show ")]

    def handle(self, line: str) -> str:
        self.lines.append(line)
        return "".join(self.answer(cmd) for cmd in line.split(";"))


def _handler(cli: FakeCli) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline().decode().rstrip("\n")
            self.wfile.write(cli.handle(line).encode())

    return Handler


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve_unix(path: Path, cli: FakeCli) -> Iterator[Path]:
    server = _UnixServer(str(path), _handler(cli))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_tcp(cli: FakeCli) -> Iterator[int]:
    server = _TcpServer(("127.0.0.1", 0), _handler(cli))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
