"""Reaching an HAProxy runtime API that listens inside its own container only.

A router on a remote engine serves its runtime API on the container's own
loopback (``127.0.0.1:9999`` in the container's network namespace): no other
container on the environment's network and nothing outside the container can
connect to it. dockroll reaches it through the engine connection it already
has (ssh or TLS): one ``bash`` started in the router container with its
stdin and output attached here relays each line of commands to the API and
the answer back, followed by an end marker that carries the exchange's
status. The engine's own authentication guards the router, and nothing
listens for it. The session is opened on first use, reopened when the router
was replaced, and closed with :meth:`ExecTransport.close`.
"""

from __future__ import annotations

import secrets
import threading
import weakref

from dockroll.engine.port import Engine, ExecSession
from dockroll.errors import EngineError

__all__ = ["LOOPBACK_ADMIN_PORT", "ExecTransport"]

LOOPBACK_ADMIN_PORT = 9999
"""The runtime API's port on the router container's own 127.0.0.1."""

# $1: the API's port, $2: the end marker. Per line read: connect, send, copy the
# answer, then "\n<marker> <status>\n" (status 111: nothing listens yet).
_RELAY = (
    "while IFS= read -r line; do "
    'if exec 3<>"/dev/tcp/127.0.0.1/$1"; then '
    "printf '%s\\n' \"$line\" >&3; cat <&3; exec 3<&-; printf '\\n%s 0\\n' \"$2\"; "
    "else printf '\\n%s 111\\n' \"$2\"; fi; "
    "done 2>/dev/null"
)


class ExecTransport:
    """Runtime API exchanges through a relay attached to the router container."""

    def __init__(
        self,
        engine: Engine,
        container: str,
        *,
        port: int = LOOPBACK_ADMIN_PORT,
        timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.container = container
        self.port = port
        self.timeout = timeout
        # In a list the finalizer shares: a transport dropped without close() still
        # ends its relay when it is collected.
        self._sessions: list[ExecSession] = []
        self._marker = b""
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._sessions)

    def __str__(self) -> str:
        return f"exec:{self.container}:127.0.0.1:{self.port}"

    def __call__(self, line: str) -> str:
        """Send one line of commands; raise OSError when the API cannot be reached."""
        with self._lock:
            try:
                return self._exchange(line)
            except (OSError, EOFError) as first:
                # The router may have been replaced since the relay started: one new relay.
                self._close()
                if isinstance(first, _Refused):
                    raise
            try:
                return self._exchange(line)
            except (OSError, EOFError) as exc:
                self._close()
                raise OSError(0, str(exc) or type(exc).__name__) from None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> ExecSession:
        if not self._sessions:
            token = secrets.token_hex(8)
            try:
                session = self.engine.open_exec(
                    self.container,
                    ["bash", "-c", _RELAY, "dockroll-runtime-api", str(self.port), token],
                    timeout=self.timeout,
                )
            except EngineError as exc:
                raise OSError(0, exc.message) from None
            self._sessions.append(session)
            self._marker = f"\n{token} ".encode()
        return self._sessions[0]

    def _exchange(self, line: str) -> str:
        session = self._open()
        session.send(line.encode() + b"\n")
        answer = b""
        while True:
            end = answer.find(self._marker)
            if end >= 0 and answer.endswith(b"\n"):
                status = answer[end + len(self._marker) :].strip()
                if status == b"111":
                    raise _Refused(
                        0, f"nothing listens on 127.0.0.1:{self.port} in {self.container}"
                    )
                return answer[:end].decode("utf-8", errors="replace")
            chunk = session.receive()
            if not chunk:
                raise EOFError(f"the relay in {self.container} ended")
            answer += chunk

    def _close(self) -> None:
        _close_all(self._sessions)


def _close_all(sessions: list[ExecSession]) -> None:
    while sessions:
        sessions.pop().close()


class _Refused(OSError):
    """The relay runs, but nothing listens on the API's port (yet)."""
