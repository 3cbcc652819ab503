"""The HAProxy router drives its container through the engine port alone.

A fake engine (``tests.unit.fakes``) stands in for Docker and a scripted
HAProxy answers the runtime API through the engine's exec relay, as on a
remote engine. These pin down what the router asks of the engine and how it
reports the engine's refusals; the integration tests prove it with Docker.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from dockroll.engine.port import ExecResult, Mount, RunRequest
from dockroll.errors import EngineError, PortInUse, RouterError
from dockroll.router import HaproxyRouter, HaproxySettings
from dockroll.router.haproxy import OFFICIAL_IMAGE
from dockroll.router.holder import holder_entrypoint, socket_mount
from tests.unit.fakes import ContainerState, FakeEngine

_CONF = "/usr/local/etc/haproxy"
_NAME = "dockroll-router-web-prod"


class RemoteEngine(FakeEngine):
    """A remote engine whose router container runs a scripted HAProxy.

    HAProxy's worker reads ``haproxy.cfg`` when it starts and again on SIGUSR2,
    as the real master does; ``show info`` names the worker and the config's
    fingerprint (its ``description``).
    """

    def __init__(self) -> None:
        super().__init__(endpoint="ssh://deploy@app1")
        self.add_image("sha256:haproxy", OFFICIAL_IMAGE)
        self.worker = 0
        self.loaded = ""
        self.commands: list[str] = []
        self.relays: list[tuple[str, int]] = []
        """(container, loopback port) of each relay the router opened."""
        self.volumes_removed: list[str] = []

    def run(self, request):  # type: ignore[no-untyped-def]
        info = super().run(request)
        if request.name in (_NAME, f"{_NAME}-next"):  # not its holder
            self._load(request.name)
        return info

    def rename(self, container: str, name: str) -> None:
        key = self._id(container)
        assert key is not None
        entry = self.containers[key]
        self.files[name] = self.files.pop(entry.info.name)
        entry.info = dataclasses.replace(entry.info, name=name)

    def remove_volume(self, name: str) -> bool:
        self.volumes_removed.append(name)
        return True

    def signal(self, container: str, signal: str) -> None:
        super().signal(container, signal)
        if signal == "SIGUSR2":
            self._load()

    def _load(self, name: str = _NAME) -> None:
        self.worker += 1
        config = self.files[name].get(f"{_CONF}/haproxy.cfg", b"").decode()
        found = re.search(r"description dockroll-config (\w+)", config)
        self.loaded = found.group(1) if found else ""

    def answer(self, command: str) -> str:
        self.commands.append(command)
        if command == "show info":
            return f"Pid: {self.worker}\ndescription: dockroll-config {self.loaded}\n"
        if command.startswith("show servers state"):
            return "1\n"
        if command.startswith("show stat"):
            return "# pxname,svname,status\n"
        return "\n"

    def open_exec(self, container: str, command: Sequence[str], *, timeout: float) -> Relay:
        self._running(container)
        self.relays.append((container, int(command[-2])))
        return Relay(self, marker=command[-1])


class Relay:
    """The relay the router starts in its container: a line in, the answer and a marker out."""

    def __init__(self, engine: RemoteEngine, marker: str) -> None:
        self.engine = engine
        self.marker = marker
        self.output: list[bytes] = []

    def send(self, data: bytes) -> None:
        line = data.decode().rstrip("\n")
        answer = "".join(self.engine.answer(command) for command in line.split(";"))
        self.output += [answer.encode(), f"\n{self.marker} 0\n".encode()]

    def receive(self) -> bytes:
        return self.output.pop(0) if self.output else b""

    def close(self) -> None:
        pass


def _router(engine: FakeEngine, tmp_path: Path) -> HaproxyRouter:
    return HaproxyRouter(
        engine,  # type: ignore[arg-type]
        service="web",
        environment="prod",
        port=8080,
        settings=HaproxySettings(api_timeout=2, start_timeout=0.5),
        state_root=tmp_path,
    )


def test_a_remote_router_starts_with_its_files_and_listeners(tmp_path: Path) -> None:
    engine = RemoteEngine()

    info = _router(engine, tmp_path).ensure()

    assert info.created
    assert engine.networks["dockroll-web-prod"]["dockroll.environment"] == "prod"
    holder, request = engine.runs
    # The holder publishes the listeners and joins the network, as on a local engine.
    assert (holder.name, holder.network) == (f"{_NAME}-net", "dockroll-web-prod")
    assert holder.publish_on == {8080: ("127.0.0.1", 8080), 8404: ("127.0.0.1", 9080)}
    assert (request.image, request.name, request.network_container) == (
        OFFICIAL_IMAGE,
        _NAME,
        f"{_NAME}-net",
    )
    assert (request.network, request.publish_on) == (None, {})
    assert request.restart_policy == "unless-stopped"
    assert request.log_options == {"max-size": "20m", "max-file": "3"}
    # The runtime sockets a new HAProxy takes the listeners from are in a named volume.
    (volume,) = request.mounts
    assert (volume.source, volume.target, volume.kind) == (
        "dockroll-router-web-prod-run",
        "/var/lib/haproxy",
        "volume",
    )
    assert volume.labels["dockroll.environment"] == "prod"
    generation = request.labels["dockroll.router.generation"]
    assert request.env["DOCKROLL_ADMIN_SOCKET"] == f"/var/lib/haproxy/admin-{generation}.sock"
    # Its loopback API has a port of its own, kept in a label the relay reads.
    port = int(request.env["DOCKROLL_ADMIN_PORT"])
    assert request.labels["dockroll.router.admin-port"] == str(port)
    assert 20000 <= port < 30000
    assert engine.relays == [(_NAME, port)]
    # Nothing can be shared with a remote engine: the files go in before the start.
    config = request.files[f"{_CONF}/haproxy.cfg"].decode()
    assert 'stats socket "ipv4@127.0.0.1:${DOCKROLL_ADMIN_PORT}" level admin' in config
    assert 'stats socket "${DOCKROLL_ADMIN_SOCKET}" mode 666 level admin expose-fd' in config
    assert {f"{_CONF}/servers.state", f"{_CONF}/state.map"} <= set(request.files)
    assert engine.commands[0] == "show info"
    described = _router(engine, tmp_path).describe()
    assert described.admin == f"tcp:127.0.0.1:{port} in container {_NAME}"


def test_a_reload_checks_the_config_in_the_container_before_signalling(tmp_path: Path) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    router.ensure()

    reload = router.reload()

    assert (reload.previous_worker, reload.worker) == (1, 2)
    (check,) = engine.executed
    assert check == (_NAME, ("haproxy", "-c", "-q", "-f", f"{_CONF}/haproxy.cfg.next"))
    assert engine.signals == [(_NAME, "SIGUSR2")]
    assert engine.files[_NAME][f"{_CONF}/servers.state"] == b"1\n"


def test_a_config_haproxy_refuses_changes_nothing(tmp_path: Path) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    router.ensure()
    started = dict(engine.files[_NAME])
    engine.exec_results = [ExecResult(1, "[ALERT] parsing [haproxy.cfg.next:9]: unknown keyword\n")]

    with pytest.raises(RouterError, match="HAProxy refuses the new config") as refused:
        router.reload()

    assert "unknown keyword" in refused.value.message
    assert engine.signals == []
    assert engine.files[_NAME][f"{_CONF}/haproxy.cfg"] == started[f"{_CONF}/haproxy.cfg"]


def test_a_taken_listener_names_every_listener_and_where_to_change_them(tmp_path: Path) -> None:
    engine = RemoteEngine()
    engine.run_error = PortInUse(
        f"the engine refused to start {_NAME} ({OFFICIAL_IMAGE}): Bind for 127.0.0.1:8080 "
        "failed: port is already allocated"
    )

    with pytest.raises(RouterError, match="port is already allocated") as refused:
        _router(engine, tmp_path).ensure()

    assert refused.value.exit_code == 10
    assert refused.value.message.startswith(
        f"router of web/prod: the engine refused to start {_NAME}"
    )
    assert refused.value.hint == (
        "another process listens on one of 127.0.0.1:8080, 127.0.0.1:9080; free it or give "
        "the environment other listeners (router.listen, router.metrics)"
    )


def test_an_engine_failure_is_a_router_error_saying_what_was_being_done(tmp_path: Path) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    router.ensure()
    engine.copy_error = EngineError("the disk is full", hint="free some space")

    with pytest.raises(RouterError) as failed:
        router.reload()

    assert failed.value.message == (
        f"router of web/prod: copying haproxy.cfg.next into {_NAME} failed: the disk is full"
    )
    assert failed.value.hint == "free some space"
    assert engine.signals == []


def test_a_local_router_mounts_its_directories_and_shows_the_log_when_silent(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(endpoint="unix:///var/run/docker.sock")
    engine.add_image("sha256:haproxy", OFFICIAL_IMAGE)
    engine.container_logs = "[ALERT] config: cannot bind socket\n"
    engine.container_states = [ContainerState(status="exited", exit_code=1)]
    router = _router(engine, tmp_path)

    with pytest.raises(RouterError, match="does not answer on its runtime API") as silent:
        router.ensure()

    assert "its log ends with:\n[ALERT] config: cannot bind socket" in silent.value.message
    holder, request = engine.runs
    directory = tmp_path / "routers" / "web-prod"
    # The holder publishes the listeners and joins the network; HAProxy runs in its namespace.
    assert holder.name == f"{_NAME}-net"
    assert holder.network == "dockroll-web-prod"
    assert sorted(holder.publish_on.values()) == [("127.0.0.1", 8080), ("127.0.0.1", 9080)]
    # It holds the namespace and starts HAProxy after an engine restart (router/holder.py).
    assert holder.entrypoint == holder_entrypoint(_NAME)
    assert (holder.user, holder.mounts) == ("0", [socket_mount(engine.endpoint)])
    assert request.name == _NAME
    assert request.network_container == f"{_NAME}-net"
    assert (request.network, request.publish_on) == (None, {})
    assert request.mounts == (
        Mount(str(directory / "conf"), _CONF, read_only=True, kind="bind"),
        Mount(str(directory / "run"), "/var/run/dockroll", kind="bind"),
    )
    assert request.files == {}
    # Its own runtime socket, which the state dir's admin.sock points at.
    socket = request.env["DOCKROLL_ADMIN_SOCKET"]
    assert socket == f"/var/run/dockroll/admin-{request.labels['dockroll.router.generation']}.sock"
    assert (directory / "run" / "admin.sock").readlink().name == socket.rsplit("/", 1)[1]
    config = (directory / "conf" / "haproxy.cfg").read_text()
    assert 'stats socket "${DOCKROLL_ADMIN_SOCKET}" mode 666' in config


def test_removing_the_router_removes_its_container(tmp_path: Path) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    router.ensure()

    router.remove()

    assert engine.removed == [(_NAME, 5), (f"{_NAME}-next", 0), (f"{_NAME}-net", 0)]
    assert engine.container(_NAME) is None
    assert engine.volumes_removed == ["dockroll-router-web-prod-run"]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        # The engine counts a restarting or paused container as running: a new one would
        # not mend what keeps it from answering, so no deploy replaces it by itself.
        ("restarting", "not answering on its runtime API"),
        ("paused", "not answering on its runtime API"),
        ("exited", "stopped: the next deploy starts it"),
        ("created", "stopped: the next deploy starts it"),
    ],
)
def test_a_router_that_is_not_running_is_told_apart_by_the_engines_state(
    tmp_path: Path, status: str, verdict: str
) -> None:
    engine = RemoteEngine()
    engine.container_states = [ContainerState(status=status)]
    router = _router(engine, tmp_path)
    labels = router._labels(router._container_fingerprint(), router.config_fingerprint())
    engine.run(
        RunRequest(OFFICIAL_IMAGE, name=_NAME, labels=labels, files={f"{_CONF}/haproxy.cfg": b""})
    )

    described = router.describe()

    assert described.verdict == verdict
    assert described.running is (status in ("restarting", "paused"))


def _local_router(engine: FakeEngine, tmp_path: Path, **settings: object) -> HaproxyRouter:
    return HaproxyRouter(
        engine,  # type: ignore[arg-type]
        service="web",
        environment="prod",
        port=8080,
        settings=HaproxySettings(api_timeout=2, start_timeout=0.5, **settings),  # type: ignore[arg-type]
        state_root=tmp_path,
    )


def _running(engine: FakeEngine, name: str, labels: dict[str, str]) -> None:
    engine.run(RunRequest(OFFICIAL_IMAGE, name=name, labels=labels))


@pytest.mark.parametrize(
    ("holder", "generation", "kind", "says"),
    [
        ("wanted", True, "hitless", "starts a new one beside it (hitless)"),
        ("other", True, "listeners", "published listeners change only with a new holder"),
        (None, True, "listeners", "published listeners change only with a new holder"),
        (None, False, "migrate", "moves it, this once, into a container of its own"),
    ],
)
def test_an_upgrade_says_beforehand_whether_it_is_hitless(
    tmp_path: Path, holder: str | None, generation: bool, kind: str, says: str
) -> None:
    engine = FakeEngine(endpoint="unix:///var/run/docker.sock")
    engine.add_image("sha256:haproxy", OFFICIAL_IMAGE)
    router = _local_router(engine, tmp_path)
    if holder is not None:
        fingerprint = router._holder_fingerprint() if holder == "wanted" else "0" * 16
        _running(engine, f"{_NAME}-net", {"dockroll.router.network": fingerprint})
    labels = {"dockroll.router.generation": "a1b2c3d4"} if generation else {}
    _running(engine, _NAME, labels)
    found = engine.container(_NAME)
    assert found is not None

    assert router._upgrade_kind(found) == kind
    assert says in router._outdated_note(found)
    assert "`dockroll router upgrade --env prod`" in router._outdated_note(found)
    assert router.network_owner() == (f"{_NAME}-net" if generation else _NAME)


def test_new_listeners_need_a_new_holder_other_settings_do_not(tmp_path: Path) -> None:
    engine = FakeEngine(endpoint="unix:///var/run/docker.sock")
    router = _local_router(engine, tmp_path)

    moved = _local_router(engine, tmp_path, metrics_port=9999)
    tuned = _local_router(engine, tmp_path, retries=1, image="haproxy:2.8")

    assert moved._holder_fingerprint() != router._holder_fingerprint()
    assert tuned._holder_fingerprint() == router._holder_fingerprint()
    assert tuned._container_fingerprint() != router._container_fingerprint()


@pytest.mark.parametrize(
    ("holder", "generation", "kind", "says"),
    [
        ("wanted", True, "hitless", "starts a new one beside it (hitless)"),
        ("other", True, "listeners", "published listeners change only with a new holder"),
        (None, False, "migrate", "moves it, this once, into a container of its own"),
    ],
)
def test_a_remote_upgrade_says_beforehand_whether_it_is_hitless(
    tmp_path: Path, holder: str | None, generation: bool, kind: str, says: str
) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    if holder is not None:
        fingerprint = router._holder_fingerprint() if holder == "wanted" else "0" * 16
        _running(engine, f"{_NAME}-net", {"dockroll.router.network": fingerprint})
    # Without a generation: a router an older dockroll started, publishing its own listeners.
    labels = {"dockroll.router.generation": "a1b2c3d4"} if generation else {}
    _running(engine, _NAME, labels)
    found = engine.container(_NAME)
    assert found is not None

    assert router._upgrade_kind(found) == kind
    note = router._outdated_note(found)
    assert says in note
    assert ("not hitless" in note) is (kind != "hitless")


def test_a_router_without_a_holder_says_its_upgrade_is_not_hitless(tmp_path: Path) -> None:
    engine = RemoteEngine()
    router = _router(engine, tmp_path)
    router.network_holder = False  # type: ignore[misc]
    router.ensure()
    found = engine.container(_NAME)
    assert found is not None

    assert router._upgrade_kind(found) == "replace"
    assert "not hitless" in router._outdated_note(found)
    assert router.network_owner() == _NAME
    assert [r.name for r in engine.runs] == [_NAME]
    # Its API is on the fixed loopback port, as before holders.
    assert engine.relays == [(_NAME, 9999)]


def test_a_remote_hand_over_reaches_the_new_haproxy_on_its_own_port_then_by_name(
    tmp_path: Path,
) -> None:
    engine = RemoteEngine()
    engine.add_image("sha256:newer", "haproxy:2.6-newer")
    _router(engine, tmp_path).ensure()
    first = engine.container(_NAME)
    assert first is not None
    old_port = first.labels["dockroll.router.admin-port"]
    upgraded = HaproxyRouter(
        engine,  # type: ignore[arg-type]
        service="web",
        environment="prod",
        port=8080,
        settings=HaproxySettings(api_timeout=2, start_timeout=0.5, image="haproxy:2.6-newer"),
        state_root=tmp_path,
    )
    engine.relays.clear()

    info = upgraded.upgrade()

    assert info.replaced == "hitless"
    assert [r.name for r in engine.runs] == [f"{_NAME}-net", _NAME, f"{_NAME}-next"]
    new = engine.runs[-1]
    generation = first.labels["dockroll.router.generation"]
    assert new.command is not None
    assert list(new.command[-2:]) == ["-x", f"/var/lib/haproxy/admin-{generation}.sock"]
    assert new.network_container == f"{_NAME}-net"
    new_port = int(new.env["DOCKROLL_ADMIN_PORT"])
    assert str(new_port) != old_port
    # The running servers' config and state went in before it started.
    assert {f"{_CONF}/haproxy.cfg", f"{_CONF}/servers.state"} <= set(new.files)
    # The old one soft-stopped; the new one took the router's name and is reached there.
    assert (_NAME, 35.0) in engine.removed
    renamed = engine.container(_NAME)
    assert renamed is not None
    assert renamed.labels["dockroll.router.admin-port"] == str(new_port)
    assert engine.container(f"{_NAME}-next") is None
    during = engine.relays.index((f"{_NAME}-next", new_port))
    assert (_NAME, int(old_port)) not in engine.relays[during:]
    assert engine.relays[-1] == (_NAME, new_port)


def test_a_remote_router_an_older_dockroll_started_moves_into_a_holder_once(
    tmp_path: Path,
) -> None:
    engine = RemoteEngine()
    older = _router(engine, tmp_path)
    older.network_holder = False  # type: ignore[misc]
    older.ensure()
    engine.relays.clear()
    router = _router(engine, tmp_path)
    assert "this once" in router.describe().verdict

    info = router.upgrade()

    assert info.replaced == "migrate"
    assert [r.name for r in engine.runs] == [_NAME, f"{_NAME}-net", _NAME]
    port = int(engine.runs[-1].env["DOCKROLL_ADMIN_PORT"])
    # The old one's API on the fixed port, then the new one's on its own.
    assert engine.relays[0] == (_NAME, 9999)
    assert engine.relays[-1] == (_NAME, port)
    assert router.describe().verdict == "up to date"
    assert router.upgrade().replaced == "hitless"


def test_the_image_is_looked_up_once_per_command_where_the_official_one_cannot_be_pulled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Offline(FakeEngine):
        pulls = 0

        def pull(self, reference, progress):  # type: ignore[no-untyped-def]
            self.pulls += 1
            return super().pull(reference, progress)

    engine = Offline(endpoint="unix:///var/run/docker.sock")
    engine.add_image("sha256:standin", "dockroll.local/haproxy:2.6")
    monkeypatch.setattr(
        "dockroll.router.haproxy.load_substitutes",
        lambda: {OFFICIAL_IMAGE: "dockroll.local/haproxy:2.6"},
    )
    router = HaproxyRouter(
        engine, service="web", environment="prod", port=8080, state_root=tmp_path
    )

    assert router.image() == "dockroll.local/haproxy:2.6"
    assert router.image() == "dockroll.local/haproxy:2.6"
    assert engine.pulls == 1


def test_a_host_without_the_engine_socket_at_the_usual_path_gets_a_holder_that_only_holds(
    tmp_path: Path,
) -> None:
    class Rootless(RemoteEngine):
        def run(self, request):  # type: ignore[no-untyped-def]
            if request.mounts and request.name.endswith("-net"):
                raise EngineError(
                    'invalid mount config for type "bind": bind source path does not exist: '
                    "/var/run/docker.sock"
                )
            return super().run(request)

    engine = Rootless()
    messages: list[str] = []
    router = _router(engine, tmp_path)
    router._progress = lambda event: messages.append(event.message)

    router.ensure()

    holder = next(r for r in engine.runs if r.name == f"{_NAME}-net")
    assert (holder.entrypoint, holder.command, holder.mounts) == (["sleep"], ["infinity"], ())
    assert any("no engine socket at /var/run/docker.sock" in m for m in messages), messages
