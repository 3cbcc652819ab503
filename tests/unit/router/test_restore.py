"""The restore a router runs at its start, with the real perl against a fake runtime API.

The fake answers like HAProxy's unix socket (one command line per connection) and
records every line; names resolve through this machine's resolver (``localhost``,
a numeric name, and a reserved name that never resolves). The integration test
(a router restarted by ``docker restart``, tests/integration/test_router_restore.py)
proves it with the real HAProxy and Docker's DNS.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockroll.engine.port import ContainerInfo, Health
from dockroll.router import restore
from dockroll.router.haproxy import HaproxyRouter, HaproxySettings, render_config
from dockroll.router.runtime_api import CheckSettings

from .fake_cli import FakeCli, serve_unix

STATE_HEADER = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port\n"
)


def _row(name: str, *, admin: int, weight: int, check_state: int, port: int = 5000) -> str:
    return (
        f"3 app 1 {name} 172.22.0.9 2 {admin} {weight} 1 10 15 3 4 {check_state} 0 0 0 - {port}\n"
    )


class Haproxy:
    """A runtime API with server ``web-a`` in its backend; ``show info`` answers once up."""

    def __init__(self, *, up: bool = True) -> None:
        self.up = up

    def __call__(self, command: str) -> str:
        if command == "show info":
            return "Name: HAProxy\nPid: 8\n" if self.up else ""
        if command == "show servers state app":
            return STATE_HEADER + _row("web-a", admin=0, weight=100, check_state=6)
        if command.startswith("add server app/web-a "):
            return "Already exists a server with the same name in backend.\n\n"
        if command.startswith("add server"):
            return "New server registered.\n\n"
        return "\n"


def _run(tmp_path: Path, cli: FakeCli, servers: str, *, wait: int = 5) -> str:
    """Run the program as HAProxy's master would, then stop it as a soft stop does."""
    socket = tmp_path / "admin.sock"
    (tmp_path / restore.SCRIPT_FILE).write_text(restore.restore_script())
    (tmp_path / restore.RESTORE_FILE).write_text(servers)
    # The command the router's master runs, from the config's program section.
    [_, command, _] = restore.program_lines(str(tmp_path), str(socket), "/conf/state.map", "app")
    argv = shlex.split(command.split(None, 1)[1])
    argv[-1] = str(wait)
    with serve_unix(socket, cli):
        process = subprocess.Popen(argv, stderr=subprocess.PIPE)
        deadline = time.monotonic() + wait + 10
        while not any(line.endswith(" restore done") for line in cli.lines):
            if time.monotonic() >= deadline or (wait < 2 and time.monotonic() > deadline - 9):
                break
            time.sleep(0.05)
        time.sleep(0.3)  # the shell is in its sleep now
        process.send_signal(signal.SIGUSR1)
        _, err = process.communicate(timeout=10)
    # The master stops every process when a program exits with an error: this one never does.
    assert process.returncode == 0
    return err.decode()


def test_servers_come_back_by_name_with_weight_state_and_check(tmp_path: Path) -> None:
    cli = FakeCli(Haproxy())
    servers = restore.render_servers(
        [
            {
                "srv_name": "localhost",
                "srv_port": "5000",
                "srv_uweight": "30",
                "srv_admin_state": "0",
                "srv_check_state": "6",
            },
            {
                "srv_name": "127.0.0.1",
                "srv_port": "5001",
                "srv_uweight": "0",
                "srv_admin_state": "8",
                "srv_check_state": "0",
            },
            {
                "srv_name": "web-a",
                "srv_port": "5000",
                "srv_uweight": "100",
                "srv_admin_state": "0",
                "srv_check_state": "6",
            },
            {
                "srv_name": "gone.invalid",
                "srv_port": "5000",
                "srv_uweight": "70",
                "srv_admin_state": "0",
                "srv_check_state": "6",
            },
        ],
        CheckSettings(interval_ms=250, fall=2, rise=1),
    )

    log = _run(tmp_path, cli, servers)

    changes = [line for line in cli.lines if not line.startswith("show ")]
    assert changes == [
        "set map /conf/state.map restore running",
        "add server app/localhost 127.0.0.1:5000 weight 30 check inter 250 fall 2 rise 1",
        "set server app/localhost health down;enable health app/localhost;"
        "enable server app/localhost",
        "add server app/127.0.0.1 127.0.0.1:5001 weight 0",
        "enable server app/127.0.0.1;set server app/127.0.0.1 state drain",
        "set map /conf/state.map restore done",
    ]
    # A server the router has is left as it is; a name that does not resolve is left out.
    assert "gone.invalid does not resolve" in log


def test_a_server_in_maintenance_comes_back_in_maintenance(tmp_path: Path) -> None:
    cli = FakeCli(Haproxy())

    _run(tmp_path, cli, "localhost 5000 100 maint check inter 500 fall 2 rise 1\n")

    changes = [line for line in cli.lines if not line.startswith("show ")]
    assert changes[1:-1] == [
        "add server app/localhost 127.0.0.1:5000 weight 100 check inter 500 fall 2 rise 1",
        "set server app/localhost health down;enable health app/localhost",
    ]


def test_a_router_whose_api_never_answers_gets_nothing_and_no_mark(tmp_path: Path) -> None:
    cli = FakeCli(Haproxy(up=False))

    _run(tmp_path, cli, "localhost 5000 100 ready\n", wait=1)

    assert all(line == "show info" for line in cli.lines)


def test_the_restore_file_has_one_line_per_server_and_no_address() -> None:
    text = restore.render_servers(
        [
            {
                "srv_name": "web-1",
                "srv_addr": "172.22.0.9",
                "srv_port": "5000",
                "srv_uweight": "90",
                "srv_admin_state": "0",
                "srv_check_state": "6",
            },
            {
                "srv_name": "web-2",
                "srv_addr": "172.22.0.10",
                "srv_port": "5000",
                "srv_uweight": "10",
                "srv_admin_state": "1",
                "srv_check_state": "4",
            },
        ],
        CheckSettings(),
    )

    assert text.splitlines()[1:] == [
        "web-1 5000 90 ready check inter 500 fall 2 rise 1",
        "web-2 5000 10 maint check inter 500 fall 2 rise 1",
    ]
    assert "172.22" not in text


def test_the_config_runs_the_restore_at_start_only() -> None:
    config = render_config(
        service="web", environment="prod", settings=HaproxySettings(), restore=True
    )

    assert "    master-worker" in config.splitlines()
    assert "program dockroll-restore" in config
    assert "    no option start-on-reload" in config.splitlines()


@pytest.fixture
def marks() -> list[str]:
    return ["running", "running", "done"]


@pytest.fixture
def router(tmp_path: Path, marks: list[str]) -> Iterator[tuple[HaproxyRouter, FakeCli]]:
    def answer(command: str) -> str:
        if command.startswith("show map"):
            mark = marks.pop(0) if len(marks) > 1 else marks[0]
            return f"0x1 hold off\n0x2 restore {mark}\n"
        if command == "show servers state app":
            return STATE_HEADER + _row("web-a", admin=0, weight=40, check_state=6)
        return "\n"

    cli = FakeCli(answer)
    local = HaproxyRouter(
        _Engine(),  # type: ignore[arg-type]
        service="web",
        environment="prod",
        port=8080,
        settings=HaproxySettings(api_timeout=2),
        state_root=tmp_path,
    )
    assert local.admin.path is not None
    local.admin.path.parent.mkdir(parents=True)
    (local.directory / "conf").mkdir()
    with serve_unix(local.admin.path, cli):
        yield local, cli


class _Engine:
    """The engine as far as the wait asks it: the router started a moment ago."""

    endpoint = "unix:///var/run/docker.sock"

    def container(self, name: str) -> ContainerInfo:
        return ContainerInfo(
            name,
            name,
            "haproxy",
            "running",
            Health.NONE,
            None,
            {},
            {},
            started=datetime.now(UTC),
        )

    def now(self) -> datetime:
        return datetime.now(UTC)


def test_a_change_waits_for_the_restore_then_writes_the_servers_down(
    router: tuple[HaproxyRouter, FakeCli], marks: list[str]
) -> None:
    local, cli = router

    local.drain("web-a")

    # Three looks at the mark (running, running, done) before the change.
    assert [line.split()[0:2] for line in cli.lines[:3]] == [["show", "map"]] * 3
    assert cli.lines[3] == "set server app/web-a state drain"
    saved = (local.directory / "conf" / restore.RESTORE_FILE).read_text()
    assert saved.splitlines()[1:] == ["web-a 5000 40 ready check inter 500 fall 2 rise 1"]


def test_flags_leave_the_restore_mark_out(router: tuple[HaproxyRouter, FakeCli]) -> None:
    local, _ = router

    assert restore.KEY not in local.flags()
