from __future__ import annotations

import json
from pathlib import Path

from dockroll.devenv.postgres import POSTGRES_URL, ensure_postgres, stop_postgres
from dockroll.devenv.system import CommandResult
from tests.unit.devenv.fakes import FakeSystem, fail, ok


def debian_cluster(system: FakeSystem, *, online: bool) -> dict[str, bool]:
    state = {"online": online, "role": False}
    system.binaries |= {"pg_lsclusters", "psql", "pg_ctlcluster", "pg_isready", "runuser"}

    def handle(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[0] == "pg_lsclusters":
            status = "online" if state["online"] else "down"
            return ok(argv, f"15 main 5432 {status} postgres /var/lib/postgresql/15/main log\n")
        if argv[0] == "pg_ctlcluster" and argv[-1] == "start":
            state["online"] = True
        if argv[0] == "pg_isready" and not state["online"]:
            return fail(argv, "no response", 2)
        if argv[0] == "psql":  # the dockroll login
            return ok(argv, "1\n") if state["online"] and state["role"] else fail(argv)
        if argv[0] == "runuser":
            sql = argv[-1]
            if "CREATE ROLE" in sql:
                state["role"] = True
            if "pg_database" in sql:
                return ok(argv, "")
        return None

    system.handlers.append(handle)
    return state


def test_a_working_login_means_nothing_to_do(system: FakeSystem, root: Path) -> None:
    state = debian_cluster(system, online=True)
    state["role"] = True

    report = ensure_postgres(system, root=root)

    assert report.detail == "already running"
    assert report.facts["url"] == POSTGRES_URL
    assert not system.ran("pg_ctlcluster")


def test_starts_the_detected_cluster_and_creates_role_and_database(
    system: FakeSystem, root: Path
) -> None:
    debian_cluster(system, online=False)

    report = ensure_postgres(system, root=root)

    assert system.ran("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start")
    sql = [call[-1] for call in system.ran("runuser", "-u", "postgres")]
    assert any("CREATE ROLE dockroll LOGIN PASSWORD 'dockroll'" in s for s in sql)
    assert "CREATE DATABASE dockroll OWNER dockroll" in sql
    assert report.detail == "started cluster 15/main"
    assert json.loads((root / "devenv.json").read_text())["postgres"] == {"cluster": "15/main"}
    assert POSTGRES_URL == "postgresql+psycopg://dockroll:dockroll@127.0.0.1:5432/dockroll"


def test_installs_postgresql_when_missing(system: FakeSystem, root: Path) -> None:
    def install(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("apt-get", "install"):
            debian_cluster(system, online=True)
        return None

    system.handlers.append(install)

    report = ensure_postgres(system, root=root)

    assert any("postgresql" in call for call in system.ran("apt-get", "install"))
    assert report.up


def test_stop_only_what_dockroll_started(system: FakeSystem, root: Path) -> None:
    state = debian_cluster(system, online=True)
    state["role"] = True

    left = stop_postgres(system, root=root)
    (root / "devenv.json").write_text(json.dumps({"postgres": {"cluster": "15/main"}}))
    stopped = stop_postgres(system, root=root)

    assert "not started by dockroll" in left.detail
    assert system.ran("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "stop")
    assert stopped.detail == "stopped"
