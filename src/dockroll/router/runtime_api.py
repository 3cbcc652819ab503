"""A small client of HAProxy's runtime API (the "stats socket"), and its parsers.

HAProxy's non-interactive mode reads one line, runs the commands on it
(separated by ``;``) in order, writes their answers and closes the connection;
each exchange is therefore one connection. Answers carry no status code: a
command that succeeds says nothing or one of a few fixed sentences, anything
else is HAProxy explaining what it refused.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockroll.errors import RouterError
from dockroll.router.port import (
    MAX_WEIGHT,
    BackendServer,
    Counters,
    ServerHealth,
    ServerState,
)

__all__ = [
    "AdminAddress",
    "CheckSettings",
    "RuntimeApi",
    "add_server_commands",
    "backend_counters",
    "backend_servers",
    "parse_servers_state",
    "parse_stat_csv",
    "set_weights_commands",
    "validate_server_name",
]

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Sentences HAProxy 2.6 answers on success; everything else is an error message.
_SUCCESS = frozenset({"New server registered.", "Server deleted."})
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited, config,
# resolution and hostname maintenance; forced and inherited drain.
_ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_ADMIN_DRAIN = 0x08 | 0x10
_CHECK_ENABLED = 0x04  # CHK_ST_ENABLED in srv_check_state
_OP_STOPPED = 0


@dataclass(frozen=True)
class AdminAddress:
    """Where the runtime API listens: a unix socket path, or TCP host and port."""

    path: Path | None = None
    host: str | None = None
    port: int | None = None
    container: str | None = None
    """Set when the address is inside this container, reached through the engine."""

    def __post_init__(self) -> None:
        if (self.path is None) == (self.host is None or self.port is None):
            raise ValueError("an admin address is a unix socket path or a host and port")

    def __str__(self) -> str:
        where = f"unix:{self.path}" if self.path is not None else f"tcp:{self.host}:{self.port}"
        return f"{where} in container {self.container}" if self.container else where


@dataclass(frozen=True)
class CheckSettings:
    """How the router checks a server it adds."""

    interval_ms: int = 500
    fall: int = 2
    rise: int = 1


class RuntimeApi:
    """Talks to one HAProxy's runtime API; errors name ``owner`` and the command."""

    def __init__(
        self,
        address: AdminAddress,
        *,
        owner: str,
        timeout: float = 5.0,
        transport: Callable[[str], str] | None = None,
    ) -> None:
        self.address = address
        self.owner = owner
        self.timeout = timeout
        self.transport = transport
        """Sends one line and returns the answer (e.g. through the engine); None: a socket."""

    def execute(self, *commands: str) -> str:
        """Send ``commands`` in one exchange and return HAProxy's raw answer."""
        line = ";".join(commands)
        if not commands or "\n" in line:
            raise ValueError(f"commands must be non-empty single lines: {commands!r}")
        return self._exchange(line, line)

    def execute_payload(self, command: str, payload: str) -> str:
        """One command with a multi-line payload (``command <<``, its lines, an empty line),
        e.g. ``set ssl cert``; through the transport too. Returns HAProxy's raw answer."""
        if "\n" in command or not command.strip():
            raise ValueError(f"the command must be one non-empty line: {command!r}")
        body = "\n".join(line for line in payload.splitlines() if line.strip())
        # The transport ends what it sends with a newline: the empty line that ends the payload.
        return self._exchange(f"{command} <<\n{body}\n", f"{command} <<")

    def _exchange(self, line: str, shown: str) -> str:
        if self.transport is not None:
            try:
                return self.transport(line)
            except OSError as exc:
                raise self._error(
                    shown,
                    exc.strerror or str(exc),
                    hint=f"is the router running? `docker ps` lists it; its API is {self.address}",
                ) from None
        try:
            with self._connect() as conn:
                conn.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except TimeoutError:
            raise self._error(shown, f"no answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise self._error(
                shown,
                exc.strerror or str(exc),
                hint=f"is the router running? `docker ps` lists it; its API is {self.address}",
            ) from None
        return b"".join(chunks).decode("utf-8", errors="replace")

    def run(self, *commands: str) -> str:
        """Send ``commands`` and raise RouterError with HAProxy's words if any was refused."""
        answer = self.execute(*commands)
        complaint = refusal(answer)
        if complaint:
            raise self._error(";".join(commands), complaint)
        return answer

    def show_stat(self) -> list[dict[str, str]]:
        return parse_stat_csv(self.execute("show stat"))

    def show_servers_state(self, backend: str) -> list[dict[str, str]]:
        return parse_servers_state(self.execute(f"show servers state {backend}"))

    def _connect(self) -> socket.socket:
        if self.address.path is not None:
            path = str(self.address.path)
            if len(path.encode()) > _SOCKET_PATH_MAX:
                raise OSError(
                    0,
                    f"socket path {path} is longer than {_SOCKET_PATH_MAX} bytes; "
                    "use a shorter DOCKROLL_STATE_DIR",
                )
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(self.timeout)
            try:
                conn.connect(path)
            except OSError:
                conn.close()
                raise
            return conn
        host, port = self.address.host or "127.0.0.1", self.address.port or 0
        return socket.create_connection((host, port), self.timeout)

    def _error(self, command: str, detail: str, hint: str | None = None) -> RouterError:
        return RouterError(
            f"router of {self.owner}: `{command}` failed: {detail}",
            hint=hint,
        )


def refusal(answer: str) -> str:
    """HAProxy's complaint in ``answer``, or "" when every command succeeded."""
    lines = [line.strip() for line in answer.splitlines()]
    return " ".join(line for line in lines if line and line not in _SUCCESS)


def validate_server_name(name: str) -> str:
    if not _NAME.match(name):
        raise RouterError(
            f"{name!r} is not a valid router server name",
            hint="use up to 64 letters, digits, '_', '.', ':' or '-'",
        )
    return name


def _validate_weight(weight: int) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise RouterError(f"weight {weight!r} is out of range; weights are 0 to {MAX_WEIGHT}")
    return weight


def add_server_commands(
    backend: str,
    name: str,
    address: str,
    port: int,
    *,
    weight: int,
    check: CheckSettings | None,
) -> list[str]:
    """Commands that add a server ready for traffic, down until a first check passes.

    HAProxy adds servers in maintenance with checks off. Forcing the health
    down before enabling checks keeps a server that has not answered a check
    yet from receiving requests (HAProxy would otherwise assume it up).
    """
    validate_server_name(name)
    _validate_weight(weight)
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise RouterError(
            f"server {name}: {address!r} is not an IPv4 address",
            hint="address containers by their IP on the environment's network",
        ) from None
    if not 0 < port < 65536:
        raise RouterError(f"server {name}: port {port} is out of range")
    target = f"{backend}/{name}"
    add = f"add server {target} {ip}:{port} weight {weight}"
    if check is None:
        return [add, f"enable server {target}"]
    add += f" check inter {check.interval_ms} fall {check.fall} rise {check.rise}"
    return [
        add,
        f"enable server {target}",
        f"set server {target} health down",
        f"enable health {target}",
    ]


def set_weights_commands(
    backend: str, weights: Mapping[str, int], current: Mapping[str, int]
) -> list[str]:
    """``set weight`` commands, raises first and cuts last.

    HAProxy runs them one by one; ordering them so no moment has less total
    weight than both the start and the end keeps a backend that goes from
    "all on A" to "all on B" from pointing at nothing in between.
    """
    for name, weight in weights.items():
        validate_server_name(name)
        _validate_weight(weight)

    def order(name: str) -> tuple[int, str]:
        return (0 if weights[name] >= current.get(name, 0) else 1, name)

    return [f"set weight {backend}/{name} {weights[name]}" for name in sorted(weights, key=order)]


def parse_stat_csv(text: str) -> list[dict[str, str]]:
    """Rows of ``show stat``, each a dict keyed by HAProxy's column names."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"not `show stat` output: {text[:200]!r}")
    header = lines[0][2:].rstrip(",").split(",")
    rows = []
    for values in csv.reader(lines[1:]):
        row = dict(zip(header, values, strict=False))
        rows.append(row)
    return rows


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """Rows of ``show servers state``: a version line, a ``#`` header, space-separated rows."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1":
        raise ValueError(f"not `show servers state` output (format 1): {text[:200]!r}")
    header: list[str] = []
    rows = []
    for line in lines[1:]:
        if line.startswith("# "):
            header = line[2:].split()
            continue
        if not header:
            raise ValueError("`show servers state` output without a header line")
        rows.append(dict(zip(header, line.split(), strict=False)))
    return rows


def _int(row: Mapping[str, str], key: str) -> int:
    value = row.get(key, "")
    try:
        return int(value)
    except ValueError:
        return 0


def _counters(row: Mapping[str, str]) -> dict[str, Any]:
    total_requests = _int(row, "req_tot") or _int(row, "stot")
    return {
        "current_sessions": _int(row, "scur"),
        "queued": _int(row, "qcur"),
        "total_sessions": _int(row, "stot"),
        "total_requests": total_requests,
        "http_1xx": _int(row, "hrsp_1xx"),
        "http_2xx": _int(row, "hrsp_2xx"),
        "http_3xx": _int(row, "hrsp_3xx"),
        "http_4xx": _int(row, "hrsp_4xx"),
        "http_5xx": _int(row, "hrsp_5xx"),
        "http_other": _int(row, "hrsp_other"),
        "connection_errors": _int(row, "econ"),
        "response_errors": _int(row, "eresp"),
        "retries": _int(row, "wretr"),
        "redispatches": _int(row, "wredis"),
        "response_time_ms": float(_int(row, "rtime")),
        "total_time_ms": float(_int(row, "ttime")),
        "bytes_in": _int(row, "bin"),
        "bytes_out": _int(row, "bout"),
    }


def backend_counters(stat_rows: Iterable[Mapping[str, str]], backend: str) -> Counters:
    """The ``BACKEND`` row of ``backend`` as counters (all zero when absent)."""
    for row in stat_rows:
        if row.get("pxname") == backend and row.get("svname") == "BACKEND":
            return Counters(**_counters(row))
    return Counters()


def _health(stat_row: Mapping[str, str], state_row: Mapping[str, str]) -> ServerHealth:
    check_status = stat_row.get("check_status", "")
    if state_row:
        if not _int(state_row, "srv_check_state") & _CHECK_ENABLED:
            return ServerHealth.NO_CHECK
        if check_status.startswith("INI") or _int(state_row, "srv_op_state") == _OP_STOPPED:
            return ServerHealth.DOWN
        return ServerHealth.UP
    # Without the state row (a server deleted between the two reads) the status text decides.
    status = stat_row.get("status", "")
    if status == "no check" or not check_status:
        return ServerHealth.NO_CHECK
    if status.startswith(("UP", "DRAIN", "NOLB")) and not check_status.startswith("INI"):
        return ServerHealth.UP
    return ServerHealth.DOWN


def backend_servers(
    stat_rows: Iterable[Mapping[str, str]],
    state_rows: Sequence[Mapping[str, str]],
    backend: str,
) -> tuple[BackendServer, ...]:
    """Join ``show stat`` and ``show servers state`` rows into the servers of ``backend``."""
    states = {row.get("srv_name", ""): row for row in state_rows if row.get("be_name") == backend}
    servers = []
    for row in stat_rows:
        name = row.get("svname", "")
        if row.get("pxname") != backend or name in {"FRONTEND", "BACKEND"}:
            continue
        state_row = states.get(name, {})
        address, _, port = row.get("addr", "").rpartition(":")
        admin = _int(state_row, "srv_admin_state")
        if admin & _ADMIN_MAINT or row.get("status", "").startswith("MAINT"):
            state = ServerState.MAINT
        elif admin & _ADMIN_DRAIN or row.get("status", "").startswith("DRAIN"):
            state = ServerState.DRAIN
        else:
            state = ServerState.READY
        check_status = row.get("check_status", "")
        health = _health(row, state_row)
        weight = _int(row, "uweight") if row.get("uweight", "") != "" else _int(row, "weight")
        servers.append(
            BackendServer(
                name=name,
                address=address or state_row.get("srv_addr", ""),
                port=int(port) if port.isdigit() else _int(state_row, "srv_port"),
                weight=weight,
                state=state,
                health=health,
                check_status=check_status,
                **_counters(row),
            )
        )
    return tuple(servers)
