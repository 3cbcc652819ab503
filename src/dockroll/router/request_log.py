"""The router's request log: one line per request, with the server that answered and its timers.

HAProxy writes each finished request of the public frontend to its standard
output in :data:`LOG_FORMAT`; the engine stores the lines with its own
timestamps (``docker logs --timestamps``), which is how lines are cut into
analysis intervals. A line reads::

    2026-12-03T07:52:07.123Z dockroll-request app web-g2-1 200 12 13 10.0.0.7 8-67-3F GET "/"

after the engine's timestamp: the marker, backend, server, HTTP status, ``Tr``
(milliseconds from sending the request to the server until its response
headers came back, ``-1`` when none came), ``Ta`` (the request's active
time in HAProxy), then the client's address, the request id (the
``X-Request-ID`` the application got), the method and the quoted URI, which
:func:`parse_access_log` reads for ``dockroll logs --router``. Anything else
in the log (warnings, a line the engine split or cut) is skipped and counted;
a line from before the client and URI were logged still counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dockroll.router.port import RequestLog, RequestTiming

__all__ = [
    "LOG_FORMAT",
    "LOG_MARKER",
    "AccessEntry",
    "parse_access_log",
    "parse_request_log",
    "timestamp_ns",
]

LOG_MARKER = "dockroll-request"
# The client's address, the request id, method and URI follow the timers: lines
# written before they were added still parse.
LOG_FORMAT = f"{LOG_MARKER} %b %s %ST %Tr %Ta %ci %ID %HM %{{+Q}}HU"
"""HAProxy ``log-format`` of the public frontend (kept compact: it is written per request)."""

_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
_LINE = re.compile(
    rf"{LOG_MARKER} (?P<backend>\S+) (?P<server>\S+) (?P<status>-?\d+) "
    r"(?P<tr>-?\d+) (?P<ta>-?\d+)"
    r'(?: (?P<client>\S+) (?P<id>\S+) (?P<method>\S+) "(?P<uri>(?:[^"\\]|\\.)*)")?'
)
_NS = 1_000_000_000


def timestamp_ns(text: str) -> int | None:
    """An engine timestamp (RFC 3339, up to nanoseconds) as nanoseconds since the epoch."""
    match = _STAMP.fullmatch(text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    try:
        seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    return int(seconds.astimezone(UTC).timestamp()) * _NS + int((fraction or "0").ljust(9, "0"))


def parse_request_log(lines: Iterable[str], *, after: int, backend: str) -> RequestLog:
    """The requests of ``backend`` logged strictly after the engine time ``after`` (ns).

    ``lines`` are the engine's timestamped log lines. The result's cursor is
    the newest timestamp seen (or ``after`` when there is none): pass it as
    ``after`` next time so no request is counted twice.
    """
    requests: list[RequestTiming] = []
    cursor, skipped = after, 0
    for raw in lines:
        stamp, _, message = raw.rstrip("\r\n").partition(" ")
        at = timestamp_ns(stamp)
        if at is None:
            if raw.strip():
                skipped += 1
            continue
        if at <= after:
            continue
        cursor = max(cursor, at)
        match = _LINE.fullmatch(message.strip())
        if match is None or match["backend"] != backend:
            skipped += 1
            continue
        response_ms = int(match["tr"])
        requests.append(
            RequestTiming(
                at_ns=at,
                server=match["server"],
                status=int(match["status"]),
                response_ms=float(response_ms) if response_ms >= 0 else None,
                total_ms=float(max(0, int(match["ta"]))),
            )
        )
    return RequestLog(tuple(requests), cursor=cursor, skipped=skipped)


@dataclass(frozen=True)
class AccessEntry:
    """One request as the router's access log (``dockroll logs --router``) shows it."""

    at: datetime
    client: str
    method: str
    uri: str
    status: int
    backend: str
    server: str
    response_ms: int
    total_ms: int
    request_id: str

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "at": self.at.isoformat()}


def parse_access_log(lines: Iterable[str]) -> list[AccessEntry]:
    """Every request line among the engine's timestamped log lines (others are left out).

    Lines from before the client, request id, method and URI were logged show
    ``-`` for them.
    """
    entries = []
    for raw in lines:
        stamp, _, message = raw.rstrip("\r\n").partition(" ")
        at = timestamp_ns(stamp)
        match = _LINE.fullmatch(message.strip())
        if at is None or match is None:
            continue
        entries.append(
            AccessEntry(
                at=datetime.fromtimestamp(at / _NS, UTC),
                client=match["client"] or "-",
                method=match["method"] or "-",
                uri=(match["uri"] or "-").replace('\\"', '"'),
                status=int(match["status"]),
                backend=match["backend"],
                server=match["server"],
                response_ms=int(match["tr"]),
                total_ms=int(match["ta"]),
                request_id=match["id"] or "-",
            )
        )
    return entries
