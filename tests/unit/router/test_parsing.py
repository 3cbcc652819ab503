"""Parsing recorded `show stat` and `show servers state` output of a real HAProxy 2.6."""

from __future__ import annotations

import pytest

from dockroll.router import BackendServer, ServerHealth, ServerState
from dockroll.router.runtime_api import (
    backend_counters,
    backend_servers,
    parse_servers_state,
    parse_stat_csv,
)


def _servers(show_stat: str, show_servers_state: str) -> dict[str, BackendServer]:
    rows = parse_stat_csv(show_stat)
    states = parse_servers_state(show_servers_state)
    return {s.name: s for s in backend_servers(rows, states, "app")}


def test_stat_rows_are_keyed_by_haproxy_column_names(show_stat: str) -> None:
    rows = parse_stat_csv(show_stat)

    assert [(r["pxname"], r["svname"]) for r in rows] == [
        ("public", "FRONTEND"),
        ("app", "web-a"),
        ("app", "web-b"),
        ("app", "web-c"),
        ("app", "web-d"),
        ("app", "BACKEND"),
        ("metrics", "FRONTEND"),
    ]
    assert rows[1]["status"] == "UP"
    assert rows[1]["addr"].endswith(":8000")


def test_servers_state_rows(show_servers_state: str) -> None:
    rows = parse_servers_state(show_servers_state)

    assert [r["srv_name"] for r in rows] == ["web-a", "web-b", "web-c", "web-d"]
    assert rows[1]["srv_admin_state"] == "8"  # forced drain
    assert rows[3]["srv_admin_state"] == "1"  # forced maintenance


def test_states_and_health_of_each_server(show_stat: str, show_servers_state: str) -> None:
    servers = _servers(show_stat, show_servers_state)

    summary = {n: (s.state, s.health, s.weight) for n, s in servers.items()}
    assert summary == {
        "web-a": (ServerState.READY, ServerHealth.UP, 100),
        "web-b": (ServerState.DRAIN, ServerHealth.UP, 50),
        "web-c": (ServerState.READY, ServerHealth.DOWN, 10),
        "web-d": (ServerState.MAINT, ServerHealth.NO_CHECK, 5),
    }
    assert [n for n, s in servers.items() if s.takes_traffic] == ["web-a"]
    assert servers["web-c"].check_status == "L4TOUT"


def test_server_counters(show_stat: str, show_servers_state: str) -> None:
    a = _servers(show_stat, show_servers_state)["web-a"]

    assert a.address.count(".") == 3
    assert a.port == 8000
    assert a.total_requests == 20
    assert a.http_2xx == 20
    assert a.http_5xx == 0
    assert a.current_sessions == 0
    assert a.response_time_ms >= 0


def test_backend_counters_include_503s_for_requests_no_server_took(show_stat: str) -> None:
    backend = backend_counters(parse_stat_csv(show_stat), "app")

    # one request reached the router before any server was added
    assert backend.http_5xx == 1
    assert backend.http_2xx == 30
    assert backend.total_requests == 31


def test_absent_backend_counts_nothing(show_stat: str) -> None:
    assert backend_counters(parse_stat_csv(show_stat), "other").total_requests == 0


def test_without_the_state_row_the_status_text_decides(show_stat: str) -> None:
    servers = {s.name: s for s in backend_servers(parse_stat_csv(show_stat), [], "app")}

    assert servers["web-a"].health is ServerHealth.UP
    assert servers["web-b"].state is ServerState.DRAIN
    assert servers["web-c"].health is ServerHealth.DOWN
    assert servers["web-d"].state is ServerState.MAINT
    assert servers["web-d"].health is ServerHealth.NO_CHECK


def test_a_server_not_checked_yet_is_down() -> None:
    stat = (
        "# pxname,svname,scur,status,weight,check_status,addr,uweight,\n"
        "app,new,0,DOWN,0,INI,10.1.0.7:5000,0,\n"
    )
    state = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
        "srv_uweight srv_iweight srv_time_since_last_change srv_check_status "
        "srv_check_result srv_check_health srv_check_state\n"
        "3 app 1 new 10.1.0.7 0 0 0 0 0 1 0 0 6\n"
    )
    (server,) = backend_servers(parse_stat_csv(stat), parse_servers_state(state), "app")

    assert server.health is ServerHealth.DOWN
    assert (server.address, server.port, server.weight) == ("10.1.0.7", 5000, 0)


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "pxname,svname\n"])
def test_stat_parser_rejects_what_is_not_stat_output(text: str) -> None:
    with pytest.raises(ValueError, match="show stat"):
        parse_stat_csv(text)


@pytest.mark.parametrize("text", ["", "No such backend.\n", "2\n# be_id\n"])
def test_servers_state_parser_rejects_other_output(text: str) -> None:
    with pytest.raises(ValueError, match="servers state"):
        parse_servers_state(text)


def test_an_empty_backend_has_no_servers() -> None:
    state = "1\n# be_id be_name srv_id srv_name\n"
    stat = "# pxname,svname,status,\napp,BACKEND,DOWN,\n"

    assert backend_servers(parse_stat_csv(stat), parse_servers_state(state), "app") == ()
