"""PostgreSQL for the ledger's tests: Debian's cluster, or a ``postgres`` container.

Either way the result is a role and database ``dockroll`` (password
``dockroll``) on 127.0.0.1:5432, reachable at :data:`POSTGRES_URL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockroll.devenv import _record
from dockroll.devenv._apt import apt_install, can_install
from dockroll.devenv.report import ComponentReport, ComponentState
from dockroll.devenv.system import LocalSystem, System
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = [
    "CONTAINER_IMAGE",
    "POSTGRES_URL",
    "Cluster",
    "ensure_postgres",
    "find_clusters",
    "postgres_status",
    "stop_postgres",
]

USER = PASSWORD = DATABASE = "dockroll"
PORT = 5432
POSTGRES_URL = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{PORT}/{DATABASE}"
"""The SQLAlchemy URL of the ledger database ``dev up --with postgres`` provides."""
_LIBPQ_URL = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{PORT}/{DATABASE}"
CONTAINER_IMAGE = "postgres:15"
CONTAINER_NAME = "dockroll-postgres"
COMPONENT = "postgres"

_ENSURE_ROLE = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN
    CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}';
  ELSE
    ALTER ROLE {USER} LOGIN PASSWORD '{PASSWORD}';
  END IF;
END $$;
"""


@dataclass(frozen=True)
class Cluster:
    """One Debian PostgreSQL cluster, as ``pg_lsclusters`` lists it."""

    version: str
    name: str
    port: int
    online: bool

    @property
    def label(self) -> str:
        """``15/main``, the way pg_ctlcluster names a cluster."""
        return f"{self.version}/{self.name}"


def find_clusters(system: System) -> list[Cluster]:
    """The Debian clusters on this machine (empty without postgresql-common)."""
    if system.which("pg_lsclusters") is None:
        return []
    done = system.run(["pg_lsclusters", "--no-header"], timeout=30)
    clusters = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2].isdigit():
            clusters.append(Cluster(parts[0], parts[1], int(parts[2]), parts[3] == "online"))
    return clusters


def _can_log_in(system: System) -> bool:
    if system.which("psql") is None:
        return False
    done = system.run(
        ["psql", _LIBPQ_URL, "-tAc", "select 1"], timeout=15, env={"PGCONNECT_TIMEOUT": "3"}
    )
    return done.ok and done.stdout.strip() == "1"


def _report(detail: str, *, changed: bool = False, seconds: float = 0.0) -> ComponentReport:
    return ComponentReport(
        COMPONENT,
        ComponentState.UP,
        detail,
        changed=changed,
        required=False,
        seconds=seconds,
        facts={"url": POSTGRES_URL},
    )


def postgres_status(system: System | None = None) -> ComponentReport:
    """Whether the ledger database accepts the dockroll login; changes nothing."""
    system = system or LocalSystem()
    if _can_log_in(system):
        return _report("running")
    container = system.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", CONTAINER_NAME], timeout=15
    )
    if container.ok and container.stdout.strip() == "true":
        return _report(f"running (container {CONTAINER_NAME})")
    return ComponentReport(
        COMPONENT, ComponentState.DOWN, f"no dockroll database on 127.0.0.1:{PORT}", required=False
    )


def ensure_postgres(
    system: System | None = None,
    *,
    progress: ProgressCallback = discard,
    root: Path | None = None,
    wait: float = 60.0,
) -> ComponentReport:
    """Make :data:`POSTGRES_URL` work.

    Starts the Debian cluster on port 5432 (installing ``postgresql`` when
    root and missing) and creates the role and database; without Debian's
    PostgreSQL, runs ``postgres:15`` as a container if it can be had.
    """
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    if _can_log_in(system):
        return _report("already running", seconds=system.monotonic() - start)

    clusters = find_clusters(system)
    if not clusters and can_install(system):
        apt_install(system, ["postgresql"], progress)
        clusters = find_clusters(system)
    if clusters:
        cluster = _cluster_on_port(clusters)
        started = _start_cluster(cluster, system, progress, root, wait)
        _ensure_role_and_database(system, progress)
        if not _can_log_in(system):
            raise DevEnvError(
                f"PostgreSQL {cluster.label} runs but refuses {_LIBPQ_URL}",
                hint="check pg_hba.conf allows password logins from 127.0.0.1",
            )
        detail = f"started cluster {cluster.label}" if started else "running; database ready"
        return _report(detail, changed=True, seconds=system.monotonic() - start)

    return _start_container(system, progress, root, wait, start)


def _cluster_on_port(clusters: list[Cluster]) -> Cluster:
    for cluster in clusters:
        if cluster.port == PORT:
            return cluster
    found = ", ".join(f"{c.label} on {c.port}" for c in clusters)
    raise DevEnvError(
        f"no PostgreSQL cluster listens on port {PORT} (found {found})",
        hint=f"create one: `pg_createcluster --port {PORT} <version> main`",
    )


def _start_cluster(
    cluster: Cluster, system: System, progress: ProgressCallback, root: Path, wait: float
) -> bool:
    if not cluster.online:
        if not system.is_root():
            raise DevEnvError(
                f"PostgreSQL cluster {cluster.label} is down",
                hint=f"start it: `sudo pg_ctlcluster {cluster.version} {cluster.name} start`",
            )
        progress(Progress("dev", f"starting PostgreSQL cluster {cluster.label}"))
        done = system.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                cluster.version,
                cluster.name,
                "start",
            ],
            timeout=120,
        )
        if not done.ok:
            raise DevEnvError(f"could not start PostgreSQL {cluster.label}: {done.why()}")
        _record.remember(root, COMPONENT, {"cluster": cluster.label})
    deadline = system.monotonic() + wait
    while not system.run(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT)], timeout=10).ok:
        if system.monotonic() > deadline:
            raise DevEnvError(f"PostgreSQL {cluster.label} does not accept connections")
        system.sleep(0.3)
    return not cluster.online


def _as_postgres(system: System, sql: str) -> str:
    argv = ["runuser", "-u", "postgres", "--"] if system.is_root() else []
    done = system.run(
        [*argv, "psql", "-p", str(PORT), "-v", "ON_ERROR_STOP=1", "-tAc", sql], timeout=60
    )
    if not done.ok:
        raise DevEnvError(
            f"could not prepare the {DATABASE} database: {done.why()}",
            hint=f"create role and database {USER} (password {PASSWORD}) by hand, "
            "or run `dockroll dev up --with postgres` as root",
        )
    return done.stdout.strip()


def _ensure_role_and_database(system: System, progress: ProgressCallback) -> None:
    progress(Progress("dev", f"ensuring role and database {DATABASE}"))
    _as_postgres(system, _ENSURE_ROLE)
    if _as_postgres(system, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
        _as_postgres(system, f"CREATE DATABASE {DATABASE} OWNER {USER}")


def _start_container(
    system: System, progress: ProgressCallback, root: Path, wait: float, start: float
) -> ComponentReport:
    have_image = system.run(["docker", "image", "inspect", CONTAINER_IMAGE], timeout=30).ok
    if not have_image:
        progress(Progress("dev", f"docker pull {CONTAINER_IMAGE}"))
        have_image = system.run(["docker", "pull", CONTAINER_IMAGE], timeout=300).ok
    if not have_image:
        raise DevEnvError(
            f"no PostgreSQL: Debian's postgresql is not installed and {CONTAINER_IMAGE} "
            "cannot be pulled",
            hint="install postgresql (`apt-get install postgresql`, as root), "
            f"or make `docker pull {CONTAINER_IMAGE}` work",
        )
    system.run(["docker", "rm", "-f", CONTAINER_NAME], timeout=60)
    progress(Progress("dev", f"starting {CONTAINER_IMAGE} as {CONTAINER_NAME}"))
    done = system.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            CONTAINER_NAME,
            "--label",
            "dockroll.devenv=postgres",
            "-p",
            f"127.0.0.1:{PORT}:5432",
            "-e",
            f"POSTGRES_USER={USER}",
            "-e",
            f"POSTGRES_PASSWORD={PASSWORD}",
            "-e",
            f"POSTGRES_DB={DATABASE}",
            CONTAINER_IMAGE,
        ],
        timeout=120,
    )
    if not done.ok:
        raise DevEnvError(f"could not start {CONTAINER_IMAGE}: {done.why()}")
    _record.remember(root, COMPONENT, {"container": CONTAINER_NAME})
    deadline = system.monotonic() + wait
    ready = ["docker", "exec", CONTAINER_NAME, "pg_isready", "-h", "127.0.0.1", "-U", USER]
    while not system.run(ready, timeout=10).ok:
        if system.monotonic() > deadline:
            raise DevEnvError(f"{CONTAINER_NAME} does not accept connections after {wait:.0f} s")
        system.sleep(0.5)
    return _report(
        f"started (container {CONTAINER_NAME})", changed=True, seconds=system.monotonic() - start
    )


def stop_postgres(system: System | None = None, *, root: Path | None = None) -> ComponentReport:
    """Stop PostgreSQL only if dockroll started it."""
    system = system or LocalSystem()
    root = root or state_dir()
    record = _record.recall(root, COMPONENT)
    if record is None:
        status = postgres_status(system)
        if status.up:
            return _report("left running (not started by dockroll)")
        return status
    if "container" in record:
        done = system.run(["docker", "rm", "-f", str(record["container"])], timeout=60)
        if not done.ok and "No such container" not in done.stderr:
            raise DevEnvError(f"could not remove {record['container']}: {done.why()}")
    else:
        version, name = str(record["cluster"]).split("/", 1)
        done = system.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop"], timeout=120
        )
        if not done.ok and "not running" not in done.stderr + done.stdout:
            raise DevEnvError(f"could not stop PostgreSQL {version}/{name}: {done.why()}")
    _record.forget(root, COMPONENT)
    return ComponentReport(COMPONENT, ComponentState.DOWN, "stopped", changed=True, required=False)
