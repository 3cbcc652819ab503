"""`dockroll init`: dockroll.yml from compose files of different shapes (tests/fixtures/compose)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from dockroll.cli.app import main
from dockroll.config import load_config
from dockroll.container_settings import resolve_container
from dockroll.errors import UsageError
from dockroll.pipeline.init_compose import init_config
from dockroll.processes import background_processes, process_replicas, routed_process

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "compose"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flask-app"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def test_web_worker_and_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _copy(tmp_path, "web-worker-db")
    result = init_config(app, service="shop")
    config = load_config(app / "dockroll.yml")
    assert config.service == "shop"
    assert config.image == "127.0.0.1:5000/acme/shop"
    assert config.container.port == 8000
    assert config.container.stop_grace == 20
    assert config.health.path == "/healthz"
    assert routed_process(config) == "web"
    assert background_processes(config) == ["worker"]
    assert process_replicas(config, "dev", "worker") == 2
    assert config.processes["worker"].command == [
        "celery", "-A", "shop", "worker", "--loglevel", "info",
    ]  # fmt: skip
    # The secret-looking variable is a secret read at deploy time, never written down.
    assert "change-me" not in result.text
    assert [(s.name, s.env) for s in config.container.secrets] == [
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY")
    ]
    (app / ".env").write_text("EXTRA=1\n", encoding="utf-8")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "k")
    worker = resolve_container(config, "dev", "worker")
    assert worker.env["DATABASE_URL"] == "postgres://shop@db/shop"
    assert worker.env["EXTRA"] == "1"
    assert worker.secret_env == {"DJANGO_SECRET_KEY": "k"}
    assert result.unmapped == []
    assert sorted(config.accessories) == ["db", "redis"]
    assert config.accessories["db"].image == "postgres:15"
    assert config.accessories["db"].volumes == ["pgdata:/var/lib/postgresql/data"]
    # The database password becomes a secret of the accessory, not a value in the file.
    assert [(s.name, s.env) for s in config.accessories["db"].secrets] == [
        ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD")
    ]
    assert "example" not in result.text
    assert any("depends_on" in note for note in result.notes)


def test_one_service_with_its_own_context_and_long_syntax(tmp_path: Path) -> None:
    app = _copy(tmp_path, "single-service")
    result = init_config(app)
    config = load_config(app / "dockroll.yml")
    assert config.service == "single-service"
    assert (config.build.context, config.build.dockerfile) == (Path("app"), Path("Dockerfile.prod"))
    assert config.build.args == {"NODE_ENV": "production"}
    assert config.build.target == "runtime"
    assert config.container.port == 3000
    # No compose healthcheck: the Dockerfile's HEALTHCHECK gives the path.
    assert config.health.path == "/health"
    assert config.processes == {}
    assert config.container.memory == 256 * 1024**2
    assert config.container.cpus == 0.5
    assert config.container.restart == "always"
    assert config.container.extra_hosts == {"api.internal": "10.0.0.7"}
    assert config.container.labels == {"com.example.team": "frontend"}
    assert config.container.volumes == ["uploads:/srv/uploads"]
    assert {u.where for u in result.unmapped} == {
        "networks",
        "services.frontend.volumes.1",
        "services.frontend.privileged",
        "services.frontend.networks",
    }


def test_a_routed_process_not_called_web_and_another_image(tmp_path: Path) -> None:
    app = _copy(tmp_path, "api-and-admin")
    result = init_config(app)
    config = load_config(app / "dockroll.yml")
    assert routed_process(config) == "api"
    assert background_processes(config) == ["scheduler"]
    assert config.container.port == 9000
    # A health check that is no HTTP call: the container's own check is the gate.
    assert config.health.path is None
    assert config.processes["api"].healthcheck is not None
    assert config.processes["api"].healthcheck.test == ["CMD-SHELL", "test -f /tmp/ready"]
    assert config.processes["scheduler"].memory == 128 * 1024**2
    assert config.processes["scheduler"].cpus == 0.25
    why = {u.where: u.why for u in result.unmapped}
    assert "another image" in why["services.admin"]
    assert "services.scheduler.deploy.update_config" in why


def test_from_a_dockerfile_alone(tmp_path: Path) -> None:
    app = _copy(tmp_path, "dockerfile-only")
    result = init_config(app)
    config = load_config(app / "dockroll.yml")
    assert config.container.port == 5000
    assert config.health.path == "/"
    assert any("set health.path" in note for note in result.notes)


def test_the_sample_services_compose_file(tmp_path: Path) -> None:
    app = tmp_path / "flask-app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("dockroll.yml", "tests"))
    init_config(app)
    config = load_config(app / "dockroll.yml")
    assert config.container.port == 5000
    assert config.health.path == "/health"
    assert config.image == "127.0.0.1:5000/flask-app"
    assert "BASE_IMAGE" in config.build.args


def test_refusals(tmp_path: Path) -> None:
    app = _copy(tmp_path, "web-worker-db")
    (app / "dockroll.yml").write_text("mine\n", encoding="utf-8")
    with pytest.raises(UsageError, match="never overwrites"):
        init_config(app)
    assert (app / "dockroll.yml").read_text(encoding="utf-8") == "mine\n"
    images = _copy(tmp_path, "images-only")
    with pytest.raises(UsageError, match="builds an image"):
        init_config(images)
    assert not (images / "dockroll.yml").exists()
    with pytest.raises(UsageError, match="does not exist"):
        init_config(tmp_path, compose=tmp_path / "nope.yml")
    (tmp_path / "bad.yml").write_text("services: [1, 2]\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no `services:` mapping"):
        init_config(tmp_path, compose=tmp_path / "bad.yml")


def test_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _copy(tmp_path, "web-worker-db")
    monkeypatch.chdir(tmp_path)
    compose = str(app / "docker-compose.yml")
    assert main(["init", "--from", compose, "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["written"] is False
    assert shown["processes"] == ["web", "worker"]
    assert not (app / "dockroll.yml").exists()
    assert yaml.safe_load(shown["text"])["service"] == "web-worker-db"
    assert main(["init", "--from", compose, "--service", "shop"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out
    assert "accessory up" in out
    assert (app / "dockroll.yml").is_file()
    assert main(["init", "--from", compose]) == 2
    assert "never overwrites" in capsys.readouterr().err
