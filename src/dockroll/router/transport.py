"""Reaching an HAProxy runtime API that listens inside its own container only.

A router on a remote engine serves its runtime API on the container's own
loopback (``127.0.0.1:9999`` in the container's network namespace): no other
container on the environment's network and nothing outside the container can
connect to it. dockroll reaches it through the engine connection it already
has (ssh or TLS): one ``bash`` started in the router container with its
stdin and output attached here relays each line of commands to the API and
the answer back, followed by an end marker that carries the exchange's
status. A line ending with `` <<`` takes the payload lines after it up to an
empty one (``set ssl cert``), so certificates are loaded this way too. The
engine's own authentication guards the router, and nothing listens for it.
The session is opened on first use, reopened when the router was replaced,
and closed with :meth:`ExecTransport.close`.

**Which container, which port.** During an upgrade two HAProxy containers share
one network namespace, so one 127.0.0.1: each listens for its runtime API on a
loopback port of its own, which its container's ``dockroll.router.admin-port``
label names. A transport made without a port reads that label whenever it opens
a relay (9999 when the container has none), and :meth:`ExecTransport.retarget`
points it at another container (the new one of a hand-over, under its
temporary name, then under the router's name).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import weakref
from collections.abc import Callable

from dockroll.engine.port import Engine, ExecSession
from dockroll.errors import EngineError

__all__ = ["ADMIN_PORT_LABEL", "LOOPBACK_ADMIN_PORT", "ExecForward", "ExecTransport"]

LOOPBACK_ADMIN_PORT = 9999
"""The runtime API's port on the router container's own 127.0.0.1."""
ADMIN_PORT_LABEL = "dockroll.router.admin-port"
"""The label naming the loopback port of a container's runtime API, when not 9999."""

# $1: the API's port, $2: the end marker. Per line read (with the payload lines
# up to an empty one when it ends with " <<"): connect, send, copy the answer,
# then "\n<marker> <status>\n" (status 111: nothing listens yet).
_RELAY = (
    "while IFS= read -r line; do "
    'if [ "${line% <<}" != "$line" ]; then '
    'while IFS= read -r more && [ -n "$more" ]; do line="$line"$\'\\n\'"$more"; done; '
    "line=\"$line\"$'\\n'; fi; "
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
        port: int | None = LOOPBACK_ADMIN_PORT,
        timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.container = container
        self._fixed = port
        self.port = port or LOOPBACK_ADMIN_PORT
        """The port of the relay open now (or last); None above reads the container's label."""
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

    def retarget(self, container: str) -> None:
        """Talk to ``container`` from the next exchange on (its port read anew)."""
        with self._lock:
            if container != self.container:
                self._close()
                self.container = container

    def _resolve_port(self) -> int:
        if self._fixed is not None:
            return self._fixed
        try:
            found = self.engine.container(self.container)
        except EngineError as exc:
            raise OSError(0, exc.message) from None
        if found is None:
            raise OSError(0, f"no container {self.container}")
        label = found.labels.get(ADMIN_PORT_LABEL, "")
        return int(label) if label.isdigit() else LOOPBACK_ADMIN_PORT

    def _open(self) -> ExecSession:
        if not self._sessions:
            self.port = self._resolve_port()
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


# $1, $2: the address and port to reach from inside the router container. The
# background copy reads stdin through fd 4: without job control a background
# command's stdin would be /dev/null.
_FORWARD = 'exec 3<>"/dev/tcp/$1/$2" 2>/dev/null || exit 111; exec 4<&0; cat <&4 >&3 & cat <&3'


class ExecForward:
    """A port on this machine's 127.0.0.1 whose connections reach ``address:port``.

    Each connection is carried through the engine connection by a ``bash`` in
    the router container, which reaches the environment's network: commands
    run here (blue-green ``verify``, pre-traffic hooks) can talk to a replica
    on a remote engine without any port published for it. Open while used as
    a context manager.
    """

    def __init__(
        self, engine: Engine, container: str, address: str, port: int, *, timeout: float = 120
    ) -> None:
        self.engine = engine
        self.container = container
        self.address = address
        self.port = port
        self.timeout = timeout
        self.local_port = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._sessions: list[ExecSession] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def __enter__(self) -> ExecForward:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        self._listener = listener
        self.local_port = int(listener.getsockname()[1])
        self._spawn(self._accept)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closed.set()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            _close_all(self._sessions)
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._open.add(conn)
            self._spawn(self._carry, conn)

    def _carry(self, conn: socket.socket) -> None:
        try:
            session = self.engine.open_exec(
                self.container,
                ["bash", "-c", _FORWARD, "dockroll-forward", self.address, str(self.port)],
                timeout=self.timeout,
            )
        except EngineError:
            self._drop(conn)
            return
        with self._lock:
            self._sessions.append(session)
        self._spawn(self._upstream, conn, session)
        try:
            while chunk := session.receive():
                conn.sendall(chunk)
        except OSError:
            pass
        finally:
            self._drop(conn)
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)
                    session.close()

    def _upstream(self, conn: socket.socket, session: ExecSession) -> None:
        try:
            while data := conn.recv(65536):
                session.send(data)
        except OSError:
            pass

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        with self._lock:
            if conn in self._open:
                self._open.discard(conn)
                conn.close()
