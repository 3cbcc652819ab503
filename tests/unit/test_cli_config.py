"""``dockroll config check`` and ``dockroll config schema`` through ``main(argv)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.cli.app import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-app" / "dockroll.yml"

THREE_ENVIRONMENTS = """\
service: web
image: 127.0.0.1:5000/team/web
environments:
  prod:
    port: 9083
    strategy: canary
    promote_from: staging
    requires_approval: true
    min_soak: 10m
    window: {days: [mon, tue, wed, thu], start: "09:00", end: "16:00", timezone: Europe/Berlin}
    tags: [prod]
  dev:
    port: 9081
    allow_mutable_tags: true
  staging:
    port: 9082
    strategy: blue-green
    promote_from: dev
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no config around and no config in the environment."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    for name in ("DOCKROLL_CONFIG", "DOCKROLL_DEBUG", "PROD_MIN_SOAK", "PROD_CANARY_PAUSE"):
        monkeypatch.delenv(name, raising=False)
    return work


def _write(directory: Path, text: str, dockerfile: bool = True) -> Path:
    path = directory / "dockroll.yml"
    path.write_text(text, encoding="utf-8")
    if dockerfile:
        (directory / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    return path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main(argv) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_check_lists_environments_in_promotion_order(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _write(isolated, THREE_ENVIRONMENTS)
    assert main(["config", "check"]) == 0
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert f"valid {isolated / 'dockroll.yml'}" in out
    assert "service web" in out
    assert out.index("dev 127.0.0.1:9081") < out.index("staging 127.0.0.1:9082")
    assert out.index("staging 127.0.0.1:9082") < out.index("prod 127.0.0.1:9083")
    assert "approval by someone else" in out
    assert "soak 10m" in out
    assert "09:00-16:00 Europe/Berlin" in out
    assert "moving tags allowed" in out
    assert captured.err == ""


def test_check_as_json(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    _write(isolated, THREE_ENVIRONMENTS)
    data = _json(capsys, ["config", "check", "--json"])
    assert data["valid"] is True
    assert data["service"] == "web"
    assert [env["name"] for env in data["environments"]] == ["dev", "staging", "prod"]
    prod = data["environments"][2]
    assert prod["strategy"] == "canary"
    assert prod["port"] == 9083
    assert prod["promote_from"] == "staging"
    assert prod["requires_approval"] is True
    assert prod["min_soak"] == 600.0
    assert prod["allow_mutable_tags"] is False
    assert data["warnings"] == []


def test_check_the_sample_service(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, ["--config", str(EXAMPLE), "config", "check", "--json"])
    assert data["service"] == "flask-app"
    strategies = {env["name"]: env["strategy"] for env in data["environments"]}
    assert strategies == {"dev": "rolling", "staging": "blue-green", "prod": "canary"}


def test_check_of_an_invalid_config_is_exit_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _write(isolated, THREE_ENVIRONMENTS.replace("strategy: canary", "strategy: big-bang"))
    assert main(["config", "check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "environments.prod.strategy" in captured.err
    assert "Traceback" not in captured.err


def test_check_of_an_unknown_field(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    _write(isolated, "service: web\nimage: 127.0.0.1:5000/team/web\nreplica: 2\n")
    assert main(["config", "check"]) == 2
    assert "replica: unknown field" in capsys.readouterr().err


CYCLE = (
    "service: web\nimage: 127.0.0.1:5000/team/web\nenvironments:\n"
    "  a: {port: 9001, promote_from: b}\n  b: {port: 9002, promote_from: a}\n"
)


def test_check_refuses_environments_that_promote_from_each_other(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _write(isolated, CYCLE)
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert "promote from each other in a cycle" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "v1.0.0", "--to", "a", "--dry-run"],
        ["deploy", "v1.0.0", "--env", "a"],
        ["status"],
        ["releases"],
        ["tags"],
        ["tags", "--images", "127.0.0.1:5000/team/web"],
        ["scan", "--image", "127.0.0.1:5000/team/web:v1.0.0"],
    ],
)
def test_every_command_refuses_a_cycle_as_config_check_does(
    capsys: pytest.CaptureFixture[str], isolated: Path, argv: list[str]
) -> None:
    _write(isolated, CYCLE)
    assert main(["config", "check"]) == 2
    expected = capsys.readouterr().err
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == expected
    assert captured.out == ""


def test_an_environment_name_is_refused_by_the_same_rule_in_the_file_and_on_the_command_line(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _write(isolated, THREE_ENVIRONMENTS.replace("  dev:", "  'dev;rm -rf ~':"))
    assert main(["config", "check"]) == 2
    in_file = capsys.readouterr().err
    _write(isolated, THREE_ENVIRONMENTS)
    assert main(["promote", "v1.0.0", "--to", "dev;rm -rf ~", "--dry-run"]) == 2
    on_command_line = capsys.readouterr().err
    rule = "environment name 'dev;rm -rf ~' is not allowed: use lowercase letters"
    assert rule in in_file
    assert rule in on_command_line


def test_check_without_a_config(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    assert main(["config", "check"]) == 2
    assert f"no dockroll.yml in {isolated}" in capsys.readouterr().err


def test_check_warns_about_a_missing_dockerfile(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    _write(isolated, "service: web\nimage: 127.0.0.1:5000/team/web\n", dockerfile=False)
    data = _json(capsys, ["config", "check", "--json"])
    assert any("Dockerfile does not exist" in warning for warning in data["warnings"])
    assert any("no environments" in warning for warning in data["warnings"])


def test_schema_is_json_for_editors(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _json(capsys, ["config", "schema"])
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "dockroll.yml"
    assert schema["required"] == ["service", "image"]
    assert "root" not in schema["properties"]
    environment = schema["$defs"]["EnvironmentConfig"]
    assert environment["properties"]["port"]["description"].startswith("The router's port")
    assert schema["$defs"]["CanaryConfig"]["properties"]["steps"]["default"] == [10, 50, 100]
    assert schema["$defs"]["Strategy"]["enum"] == ["recreate", "rolling", "blue-green", "canary"]


def test_schema_needs_no_config(capsys: pytest.CaptureFixture[str], isolated: Path) -> None:
    assert not (isolated / "dockroll.yml").exists()
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "object"


def test_schema_accepts_the_sample_service_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Editors see the file before interpolation: `${VAR:-10m}` and `500ms` must pass."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = _json(capsys, ["config", "schema"])
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    bad = {**document, "container": {"stop_grace": "ten seconds"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_schema_refuses_environment_names_the_loader_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(_json(capsys, ["config", "schema"]))
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for name in ("dev;rm -rf ~", "a" * 33, "Dev"):
        bad = {**document, "environments": {name: {"port": 9001}}}
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


PROCESSES = """\
service: shop
image: 127.0.0.1:5000/team/shop
processes:
  web: {}
  worker:
    command: ["python", "-m", "worker"]
    start: after-web
environments:
  dev: {port: 9081, processes: {worker: {replicas: 2}}}
  prod: {port: 9082, promote_from: dev, replicas: 3}
accessories:
  db: {image: "postgres:15", environments: [dev]}
"""


def test_check_summarises_processes_and_accessories(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(isolated, PROCESSES)
    data = _json(capsys, ["--json", "config", "check"])
    assert data["processes"] == [
        {
            "name": "web",
            "router": True,
            "command": None,
            "health": "router",
            "start": None,
            "replicas": {"dev": 1, "prod": 3},
        },
        {
            "name": "worker",
            "router": False,
            "command": ["python", "-m", "worker"],
            "health": "auto",
            "start": "after-web",
            "replicas": {"dev": 2, "prod": 1},
        },
    ]
    assert data["accessories"] == [{"name": "db", "image": "postgres:15", "environments": ["dev"]}]

    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "web (replicas: dev 1, prod 3; behind the router): the image's command" in out
    assert "worker (replicas: dev 2, prod 1; auto, after-web): python -m worker" in out
    assert "db (postgres:15): dev" in out


def test_check_without_processes_shows_no_process_section(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(isolated, THREE_ENVIRONMENTS)
    data = _json(capsys, ["--json", "config", "check"])
    assert (data["processes"], data["accessories"]) == ([], [])
    assert main(["config", "check"]) == 0
    assert "processes, one release" not in capsys.readouterr().out
