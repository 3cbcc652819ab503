"""Cutting the router's request log (the engine's timestamped lines) into intervals."""

from __future__ import annotations

from datetime import UTC, datetime

from dockroll.router import HaproxyRouter, HaproxySettings
from dockroll.router.haproxy import render_config
from dockroll.router.port import RequestTiming
from dockroll.router.request_log import (
    LOG_FORMAT,
    parse_access_log,
    parse_request_log,
    timestamp_ns,
)

T0 = int(datetime(2026, 12, 3, 7, 52, 7, tzinfo=UTC).timestamp()) * 1_000_000_000


def test_the_public_frontend_logs_every_request_in_the_parsed_format() -> None:
    config = render_config(service="web", environment="prod", settings=HaproxySettings())
    public = config.split("frontend public\n")[1].split("\n\n")[0]
    assert f'    log-format "{LOG_FORMAT}"' in public
    # dontlog-normal would keep successful requests out of the log.
    assert "dontlog-normal" not in config
    assert "    no log\n" in config.split("frontend metrics\n")[1]


def test_engine_timestamps_keep_nanoseconds() -> None:
    assert timestamp_ns("2026-12-03T07:52:07.123456789Z") == T0 + 123_456_789
    assert timestamp_ns("2026-12-03T07:52:07.5Z") == T0 + 500_000_000
    assert timestamp_ns("2026-12-03T07:52:07Z") == T0
    assert timestamp_ns("2026-12-03T08:52:07.000000001+01:00") == T0 + 1
    assert timestamp_ns("dockroll-request") is None
    assert timestamp_ns("2026-13-03T07:52:07Z") is None


def test_request_lines_after_the_cursor_are_parsed() -> None:
    lines = [
        "2026-12-03T07:52:07.000000100Z dockroll-request app web-g1-1 200 11 12",
        "2026-12-03T07:52:07.000000200Z dockroll-request app web-g2-1 503 -1 2001",
        "2026-12-03T07:52:07.000000300Z dockroll-request app <NOSRV> 503 -1 0",
        "2026-12-03T07:52:07.000000400Z [WARNING]  (8) : Server app/web-g2-1 is DOWN.",
        "2026-12-03T07:52:07.000000500Z dockroll-request app web-g1-1 200 4",  # cut short
        "2026-12-03T07:52:07.000000600Z dockroll-request other web-g1-1 200 4 5",
        "not a timestamped line",
        "",
    ]
    log = parse_request_log(lines, after=T0, backend="app")
    assert log.requests == (
        RequestTiming(T0 + 100, "web-g1-1", 200, 11.0, 12.0),
        RequestTiming(T0 + 200, "web-g2-1", 503, None, 2001.0),
        RequestTiming(T0 + 300, "<NOSRV>", 503, None, 0.0),
    )
    assert log.cursor == T0 + 600
    assert log.skipped == 4


def test_lines_at_or_before_the_cursor_are_not_counted_twice() -> None:
    lines = [
        "2026-12-03T07:52:07.000000100Z dockroll-request app a 200 1 1",
        "2026-12-03T07:52:07.000000200Z dockroll-request app b 200 2 2",
        "2026-12-03T07:52:07.000000300Z dockroll-request app c 200 3 3",
    ]
    log = parse_request_log(lines, after=T0 + 200, backend="app")
    assert [r.server for r in log.requests] == ["c"]
    again = parse_request_log(lines, after=log.cursor, backend="app")
    assert (again.requests, again.cursor, again.skipped) == ((), T0 + 300, 0)


def test_an_empty_log_keeps_the_cursor() -> None:
    assert parse_request_log([], after=T0, backend="app").cursor == T0


def test_a_restarted_router_continues_by_time() -> None:
    """After a restart the log holds the old run's lines, then the new one's (same times)."""
    old = "2026-12-03T07:52:07.000000100Z dockroll-request app a 200 9 9"
    restart = "2026-12-03T07:52:08.000000000Z [NOTICE]   (1) : haproxy version is 2.6.12"
    new = "2026-12-03T07:52:08.500000000Z dockroll-request app a 200 5 5"
    first = parse_request_log([old], after=T0, backend="app")
    second = parse_request_log([old, restart, new], after=first.cursor, backend="app")
    assert [r.response_ms for r in second.requests] == [5.0]
    assert second.skipped == 1


class _LogEngine:
    """The engine calls the router's request log makes: a clock and a log of ``count`` lines."""

    endpoint = "unix:///var/run/docker.sock"

    def __init__(self, count: int) -> None:
        self.lines = [
            f"2026-12-03T07:52:07.{index + 1:09d}Z dockroll-request app web-a 200 {index} 1"
            for index in range(count)
        ]
        self.tails: list[int | None] = []

    def now(self) -> datetime:
        return datetime(2026, 12, 3, 7, 52, 7, 250000, tzinfo=UTC)

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        assert container_id == "dockroll-router-web-prod"
        assert timestamps
        assert since == datetime(2026, 12, 3, 7, 52, 7, tzinfo=UTC)  # whole seconds
        self.tails.append(tail)
        return "\n".join(self.lines if tail is None else self.lines[-tail:]) + "\n"


def test_the_router_reads_a_growing_tail_of_its_log() -> None:
    engine = _LogEngine(10_000)
    router = HaproxyRouter(
        engine,  # type: ignore[arg-type]  # only now() and logs() are used
        service="web",
        environment="prod",
        port=8080,
    )
    start = router.request_log(None)
    assert start.cursor == T0 + 250_000_000
    assert start.requests == ()
    log = router.request_log(T0)
    assert engine.tails == [4096, 16384]  # the first tail was full: read a longer one
    assert len(log.requests) == 10_000
    assert log.cursor == T0 + 10_000
    assert router.request_log(T0 + 9_990).requests[0].response_ms == 9990
    assert engine.tails[-1] == 16384


def test_access_log_lines_carry_the_client_request_id_method_and_uri() -> None:
    lines = [
        "2026-12-03T07:52:07.5Z dockroll-request app web-1 200 12 13 "
        '203.0.113.7 1C-6750A1B2-3F GET "/a?b=\\"c\\""',
        "2026-12-03T07:52:08Z dockroll-request app web-1 503 -1 0",
        "2026-12-03T07:52:09Z [WARNING] something else",
    ]

    new, old = parse_access_log(lines)

    assert (new.client, new.request_id, new.method, new.uri) == (
        "203.0.113.7",
        "1C-6750A1B2-3F",
        "GET",
        '/a?b="c"',
    )
    assert (new.status, new.server, new.response_ms, new.total_ms) == (200, "web-1", 12, 13)
    assert new.at.isoformat() == "2026-12-03T07:52:07.500000+00:00"
    assert (old.client, old.uri, old.status) == ("-", "-", 503)
    timed = parse_request_log(lines, after=0, backend="app")
    assert [r.status for r in timed.requests] == [200, 503]
