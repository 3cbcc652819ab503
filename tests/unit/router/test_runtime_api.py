"""The runtime API client against a scripted socket: exchanges, timeouts, error mapping."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.errors import RouterError
from dockroll.router.runtime_api import AdminAddress, RuntimeApi
from tests.unit.router.fake_cli import FakeCli, serve_tcp, serve_unix


def _answer(command: str) -> str:
    if command == "show info":
        return "Name: HAProxy\nVersion: 2.6.12\n\n"
    if command.startswith("set weight app/missing"):
        return "No such server.\n\n"
    if command.startswith("set weight"):
        return "\n"
    if command.startswith("add server"):
        return "New server registered.\n\n"
    return "Unknown command, but maybe one of the following ones is a better match:\n\n"


@pytest.fixture
def cli() -> FakeCli:
    return FakeCli(_answer)


@pytest.fixture
def unix_api(cli: FakeCli, short_dir: Path) -> Iterator[RuntimeApi]:
    with serve_unix(short_dir / "admin.sock", cli) as path:
        yield RuntimeApi(AdminAddress(path=path), owner="web/prod", timeout=2)


def test_one_exchange_sends_commands_on_one_line(unix_api: RuntimeApi, cli: FakeCli) -> None:
    answer = unix_api.execute("set weight app/a 10", "set weight app/b 90")

    assert cli.lines == ["set weight app/a 10;set weight app/b 90"]
    assert answer == "\n\n"


def test_run_returns_the_answer_when_nothing_was_refused(unix_api: RuntimeApi) -> None:
    assert unix_api.run("add server app/a 10.0.0.1:80").startswith("New server registered.")


def test_run_raises_with_the_environment_the_command_and_haproxys_words(
    unix_api: RuntimeApi,
) -> None:
    with pytest.raises(RouterError) as caught:
        unix_api.run("set weight app/a 1", "set weight app/missing 2")

    message = str(caught.value)
    assert "router of web/prod" in message
    assert "`set weight app/a 1;set weight app/missing 2`" in message
    assert "No such server." in message
    assert caught.value.exit_code == 10


def test_unknown_commands_are_refusals(unix_api: RuntimeApi) -> None:
    with pytest.raises(RouterError, match="Unknown command"):
        unix_api.run("frobnicate")


def test_tcp_address(cli: FakeCli) -> None:
    with serve_tcp(cli) as port:
        api = RuntimeApi(AdminAddress(host="127.0.0.1", port=port), owner="web/dev")
        assert "HAProxy" in api.execute("show info")
    assert str(api.address) == f"tcp:127.0.0.1:{port}"


def test_nobody_listening_is_a_router_error_with_a_hint(short_dir: Path) -> None:
    api = RuntimeApi(AdminAddress(path=short_dir / "absent.sock"), owner="web/dev", timeout=1)

    with pytest.raises(RouterError) as caught:
        api.execute("show info")

    assert "router of web/dev: `show info` failed" in caught.value.message
    assert caught.value.hint is not None
    assert "is the router running?" in caught.value.hint


def test_a_silent_router_times_out(short_dir: Path) -> None:
    path = short_dir / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    api = RuntimeApi(AdminAddress(path=path), owner="web/dev", timeout=0.2)
    try:
        with pytest.raises(RouterError, match=r"no answer within 0.2s"):
            api.execute("show stat")
    finally:
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_socket_path_too_long_for_unix_sockets_is_explained(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120) / "admin.sock"
    api = RuntimeApi(AdminAddress(path=path), owner="web/dev")

    with pytest.raises(RouterError, match="shorter DOCKROLL_STATE_DIR"):
        api.execute("show info")


@pytest.mark.parametrize("commands", [(), ("show stat\nshow info",)])
def test_commands_are_single_lines(unix_api: RuntimeApi, commands: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="single lines"):
        unix_api.execute(*commands)


def test_an_address_is_a_path_or_a_host_and_port() -> None:
    with pytest.raises(ValueError, match="unix socket path or a host and port"):
        AdminAddress()
    with pytest.raises(ValueError, match="unix socket path or a host and port"):
        AdminAddress(path=Path("/x"), host="127.0.0.1", port=1)
    assert str(AdminAddress(path=Path("/run/a.sock"))) == "unix:/run/a.sock"
