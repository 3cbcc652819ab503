"""Start-up cost: `--help` and light commands must not load the library they do not use.

Each check runs in a fresh interpreter (this one has imported everything
already) and reads ``sys.modules`` after the command ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dockroll
from dockroll import devenv
from dockroll.cli.app import COMMAND_MODULES
from dockroll.cli.commands.dev import DEFAULT_REGISTRY_PORT
from dockroll.errors import EngineError, UsageError

SRC = Path(dockroll.__file__).resolve().parents[1]

# What a command may load only when it runs and needs it.
LIBRARY = (
    "alembic",
    "click",  # Typer brings its own copy; the real one costs a second import
    "docker",
    "httpx",
    "jinja2",
    "requests",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "yaml",
    "dockroll.analysis",
    "dockroll.config",
    "dockroll.devenv",
    "dockroll.engine",
    "dockroll.hooks",
    "dockroll.ledger",
    "dockroll.lock",
    "dockroll.policy",
    "dockroll.registry",
    "dockroll.rollout",
    "dockroll.router",
    "dockroll.tags",
    "dockroll.web",
)
# dockroll.pipeline itself is an empty package; its stage names are all `--help` needs.
PIPELINE_ALLOWED = {"dockroll.pipeline", "dockroll.pipeline.stages"}
_ONE_ENVIRONMENT = (
    "service: web\nimage: 127.0.0.1:5000/team/web\nenvironments:\n  dev:\n    port: 18081\n"
)
"""A dockroll.yml with one environment, for the commands that read one."""

_PROBE = """
import contextlib, io, json, sys
from dockroll.cli.app import main
codes = []
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for argv in json.loads(sys.argv[1]):
        codes.append(main(argv))
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def _run(runs: list[list[str]], cwd: Path, **env: str) -> tuple[list[int], set[str]]:
    environ = {**os.environ, "PYTHONPATH": str(SRC), **env}
    environ.pop("DOCKROLL_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(runs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env=environ,
        timeout=120,
    )
    result = json.loads(done.stdout)
    return result["codes"], set(result["modules"])


def _imported_by(*names: str) -> set[str]:
    """Every module a fresh interpreter holds after importing ``names``."""
    code = f"import json, sys\nimport {', '.join(names)}\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=120,
    )
    return set(json.loads(done.stdout))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _pipeline_modules(modules: set[str]) -> list[str]:
    return sorted(set(_loaded(modules, ("dockroll.pipeline",))) - PIPELINE_ALLOWED)


def test_help_loads_no_library_and_no_pydantic(tmp_path: Path) -> None:
    codes, modules = _run([["--help"]], tmp_path)
    assert codes == [0]
    assert _loaded(modules, (*LIBRARY, "pydantic", "pydantic_core")) == []
    assert _pipeline_modules(modules) == []


@pytest.mark.parametrize("argv", [["--help"], ["-h"], [], ["no-such-command"]])
def test_help_builds_no_command_module(tmp_path: Path, argv: list[str]) -> None:
    # The command list comes from cli/lazy.py's summaries; the root callback's own
    # module and the summaries are all `--help` needs.
    codes, modules = _run([argv], tmp_path)
    assert codes in ([0], [2])
    assert _loaded(modules, ("dockroll.cli.commands",)) == []


def test_every_command_builds_its_help_without_the_library(tmp_path: Path) -> None:
    # Typer itself coerces option values through pydantic, so pydantic may load here;
    # dockroll's own models (dockroll.config) may not.
    commands = sorted(COMMAND_MODULES)
    groups = {"config": ("check", "schema"), "dev": ("up", "status", "down"), "lock": ("acquire",)}
    runs = [[name, "--help"] for name in commands]
    runs += [[group, sub, "--help"] for group, subs in groups.items() for sub in subs]
    codes, modules = _run(runs, tmp_path)
    assert codes == [0] * len(runs)
    assert _loaded(modules, LIBRARY) == []
    assert _pipeline_modules(modules) == []


def test_a_usage_error_is_reported_without_loading_the_library(tmp_path: Path) -> None:
    codes, modules = _run([["status", "--no-such-option"], ["no-such-command"]], tmp_path)
    assert codes == [2, 2]
    assert _loaded(modules, LIBRARY) == []


@pytest.mark.parametrize("argv", [["config", "check"], ["tags"]])
def test_commands_that_need_no_engine_load_neither_ledger_nor_docker(
    tmp_path: Path, argv: list[str]
) -> None:
    (tmp_path / "dockroll.yml").write_text(_ONE_ENVIRONMENT, encoding="utf-8")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    codes, modules = _run([argv], tmp_path, DOCKROLL_STATE_DIR=str(tmp_path / "state"))
    assert codes == [0]
    heavy = ("sqlalchemy", "docker", "requests", "dockroll.ledger", "dockroll.engine")
    assert _loaded(modules, heavy) == []


def test_dev_commands_default_to_the_registry_port_dev_up_uses() -> None:
    assert DEFAULT_REGISTRY_PORT == devenv.DEFAULT_PORT


def test_status_loads_neither_the_deploy_pipeline_nor_the_registry_client(
    tmp_path: Path,
) -> None:
    # The engine is unreachable on purpose: status reports that (exit 0), or fails
    # with the engine's exit code; either way it got as far as asking the engine.
    (tmp_path / "dockroll.yml").write_text(_ONE_ENVIRONMENT, encoding="utf-8")
    codes, modules = _run(
        [["status", "--env", "dev"]],
        tmp_path,
        DOCKROLL_STATE_DIR=str(tmp_path / "state"),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    assert codes[0] in (0, EngineError.exit_code)
    # A local engine is read over its socket: no Docker SDK, requests or urllib3.
    assert "dockroll.engine.unix_api" in modules
    avoidable = (
        *_THE_DOCKER_SDK,
        "httpx",
        "dockroll.registry",
        "dockroll.rollout.executor",
        "dockroll.analysis.providers",
        "dockroll.pipeline.deploy",
    )
    assert _loaded(modules, avoidable) == []


# The Docker SDK and what it brings: loaded only by the calls a light command does not make.
_THE_DOCKER_SDK = ("docker", "requests", "urllib3", "dockroll.engine.docker")


def test_the_status_of_a_tcp_engine_goes_through_the_sdk_adapter(tmp_path: Path) -> None:
    (tmp_path / "dockroll.yml").write_text(_ONE_ENVIRONMENT, encoding="utf-8")
    codes, modules = _run(
        [["status", "--env", "dev"]],
        tmp_path,
        DOCKROLL_STATE_DIR=str(tmp_path / "state"),
        DOCKER_HOST="tcp://127.0.0.1:9",  # nothing answers on the discard port
    )
    assert codes[0] in (0, EngineError.exit_code)
    assert "dockroll.engine.docker" in modules


def test_the_engine_port_and_the_router_load_no_docker_sdk() -> None:
    modules = _imported_by(
        "dockroll.engine", "dockroll.engine.base_images", "dockroll.router.haproxy"
    )
    assert _loaded(modules, _THE_DOCKER_SDK) == []


def test_the_docker_adapter_is_still_exported_by_the_engine_package() -> None:
    from dockroll.engine import DockerEngine  # noqa: PLC0415 - the lazy export itself
    from dockroll.engine.docker import DockerEngine as Adapter  # noqa: PLC0415

    assert DockerEngine is Adapter
    import dockroll.engine  # noqa: PLC0415

    with pytest.raises(AttributeError, match="no attribute 'NoSuchEngine'"):
        dockroll.engine.NoSuchEngine  # noqa: B018 - the attribute access is the test


# What `status` reads a current SQLite ledger without: SQLAlchemy and the ORM ledger.
_NOT_FOR_STATUS = (
    "sqlalchemy",
    "alembic",
    "dockroll.ledger._database",
    "dockroll.ledger._ledger",
    "dockroll.ledger._models",
)


def test_status_reads_a_current_sqlite_ledger_without_sqlalchemy(tmp_path: Path) -> None:
    (tmp_path / "dockroll.yml").write_text(_ONE_ENVIRONMENT, encoding="utf-8")
    state = tmp_path / "state"
    from dockroll.ledger import open_ledger  # noqa: PLC0415 - this interpreter has it already

    with open_ledger(f"sqlite:///{state / 'ledger.db'}"):
        pass  # created and migrated, as any earlier command leaves it
    codes, modules = _run(
        [["status", "--env", "dev"]],
        tmp_path,
        DOCKROLL_STATE_DIR=str(state),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    assert codes[0] in (0, EngineError.exit_code)
    assert "dockroll.ledger._sqlite_reads" in modules
    assert _loaded(modules, _NOT_FOR_STATUS) == []


def test_a_rollback_on_a_current_sqlite_ledger_loads_no_sqlalchemy(tmp_path: Path) -> None:
    # The instant switch writes its records with sqlite3 (ledger/_sqlite_writes.py); this
    # ledger has no earlier release, so the command stops once it read the ledger, having
    # loaded the deploy pipeline and the rollout executor.
    (tmp_path / "dockroll.yml").write_text(_ONE_ENVIRONMENT, encoding="utf-8")
    state = tmp_path / "state"
    from dockroll.ledger import open_ledger  # noqa: PLC0415 - this interpreter has it already

    with open_ledger(f"sqlite:///{state / 'ledger.db'}"):
        pass
    codes, modules = _run(
        [["rollback", "--env", "dev"]],
        tmp_path,
        DOCKROLL_STATE_DIR=str(state),
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    assert codes == [UsageError.exit_code]
    assert {"dockroll.ledger._sqlite_writes", "dockroll.rollout.executor"} <= modules
    assert _loaded(modules, _NOT_FOR_STATUS) == []


def test_the_rollout_path_loads_the_registry_client_and_analysis_only_when_used() -> None:
    # An instant rollback needs neither: no tags to move, no analysis to run.
    modules = _imported_by(
        "dockroll.pipeline.deploy", "dockroll.pipeline.status", "dockroll.rollout.executor"
    )
    avoidable = (
        "httpx",
        "dockroll.registry",
        "dockroll.pipeline.mirror",
        "dockroll.pipeline.promote",
        "dockroll.analysis.providers",
        "dockroll.analysis.run",
        *_NEVER_ON_A_SQLITE_LEDGER_WITHOUT_TLS,
        # the instant switch's records go to a SQLite ledger without SQLAlchemy
        *_NOT_FOR_STATUS,
        # the rollback speaks to a local engine over its socket (engine/unix_api.py)
        *_THE_DOCKER_SDK,
    )
    assert _loaded(modules, avoidable) == []


# A SQLite ledger needs no PostgreSQL dialect and no Alembic once its schema is current;
# an environment without ACME needs no cryptography.
_NEVER_ON_A_SQLITE_LEDGER_WITHOUT_TLS = (
    "alembic",
    "cryptography",
    "sqlalchemy.dialects.postgresql",
)


def test_the_status_path_loads_neither_the_executor_nor_cryptography_nor_postgresql() -> None:
    # What `status` imports once the engine answered (the CLI test above stops earlier):
    # process containers are listed, never started, so the rollout executor stays out.
    modules = _imported_by(
        "dockroll.pipeline.status", "dockroll.pipeline.processes", "dockroll.ledger"
    )
    assert "dockroll.router.haproxy" in modules
    avoidable = (
        "dockroll.rollout.executor",
        "dockroll.router.edge",  # the shared edge: only environments served under hostnames
        *_THE_DOCKER_SDK,
        *_NEVER_ON_A_SQLITE_LEDGER_WITHOUT_TLS,
        *_NOT_FOR_STATUS,
    )
    assert _loaded(modules, avoidable) == []


def test_a_registry_only_promotion_loads_neither_the_deploy_pipeline_nor_the_router(
    tmp_path: Path,
) -> None:
    # Nothing answers on the registry's port: the command fails once it asks it,
    # having loaded all it loads to plan a promotion.
    (tmp_path / "dockroll.yml").write_text(
        "service: web\nimage: 127.0.0.1:9/team/web\nenvironments:\n  dev:\n    port: 18081\n",
        encoding="utf-8",
    )
    codes, modules = _run(
        [["promote", "1.0.0", "--to", "dev", "--registry-only"]],
        tmp_path,
        DOCKROLL_STATE_DIR=str(tmp_path / "state"),
    )
    assert codes[0] != 0
    assert "dockroll.pipeline.promote" in modules
    heavy = ("dockroll.pipeline.deploy", "dockroll.rollout", "dockroll.router", "dockroll.analysis")
    assert _loaded(modules, heavy) == []
