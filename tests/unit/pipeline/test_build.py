"""The build stage over a fake engine: args, base image, secrets, the build record."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dockroll.config import Config, load_config
from dockroll.engine.base_images import record_substitute
from dockroll.engine.port import BuildRequest
from dockroll.errors import BuildError
from dockroll.events import Progress
from dockroll.pipeline.build import build_release, dockerfile_arg_default
from dockroll.pipeline.records import load_last_build
from dockroll.tags import Metadata
from tests.unit.fakes import FakeEngine

OFFICIAL = "python:3.11-slim"
STAND_IN = "dockroll.local/python:3.11-slim"
REPO = "127.0.0.1:5000/team/web"

DOCKERFILE = f"""ARG BASE_IMAGE={OFFICIAL}
FROM ${{BASE_IMAGE}}
ARG APP_VERSION=dev
"""


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(directory))
    return directory


def make_config(tmp_path: Path, extra: str = "") -> Config:
    service = tmp_path / "svc"
    service.mkdir(exist_ok=True)
    (service / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    path = service / "dockroll.yml"
    path.write_text(f"service: web\nimage: {REPO}\n{extra}", encoding="utf-8")
    return load_config(path)


def metadata(tags: tuple[str, ...] = (f"{REPO}:v1.2.3", f"{REPO}:latest")) -> Metadata:
    return Metadata(
        version="v1.2.3",
        tags=tags,
        bare_tags=tuple(t.rsplit(":", 1)[1] for t in tags),
        labels={"org.opencontainers.image.version": "v1.2.3"},
        build_args={"APP_VERSION": "v1.2.3", "GIT_SHA": "abc1234", "BUILD_DATE": "computed"},
        created="2024-05-01T12:00:00Z",
    )


def _only_build(engine: FakeEngine) -> BuildRequest:
    [request] = engine.builds
    return request


def test_a_build_passes_tags_labels_and_paths(tmp_path: Path) -> None:
    config = make_config(tmp_path, "build:\n  target: runtime\n  platforms: [linux/amd64]\n")
    engine = FakeEngine()
    engine.add_image("sha256:base", OFFICIAL)

    result = build_release(config, metadata(), engine, no_cache=True, pull=True)

    request = _only_build(engine)
    assert list(request.tags) == [f"{REPO}:v1.2.3", f"{REPO}:latest"]
    assert dict(request.labels) == {"org.opencontainers.image.version": "v1.2.3"}
    assert request.context == tmp_path / "svc"
    assert request.dockerfile == tmp_path / "svc" / "Dockerfile"
    assert request.target == "runtime"
    assert list(request.platforms) == ["linux/amd64"]
    assert (request.no_cache, request.pull) == (True, True)
    assert result.builder == "fake"
    assert result.substituted_base is None
    assert result.record.tags == (f"{REPO}:v1.2.3", f"{REPO}:latest")
    assert result.record.version == "v1.2.3"
    assert result.record.git_sha == "abc1234"
    assert result.record.base_image == OFFICIAL


def test_build_args_are_layered_computed_then_config_then_caller(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        "build:\n  args:\n    BUILD_DATE: from-config\n    GIT_SHA: from-config\n"
        "    EXTRA: from-config\n",
    )
    engine = FakeEngine()
    engine.add_image("sha256:base", OFFICIAL)

    result = build_release(
        config, metadata(), engine, build_args={"GIT_SHA": "from-caller", "MORE": "caller"}
    )

    assert dict(_only_build(engine).build_args) == {
        "APP_VERSION": "v1.2.3",
        "GIT_SHA": "from-caller",
        "BUILD_DATE": "from-config",
        "EXTRA": "from-config",
        "MORE": "caller",
    }
    assert result.record.git_sha == "from-caller"
    assert result.record.build_args["BUILD_DATE"] == "from-config"


def test_a_caller_app_version_is_the_recorded_version(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add_image("sha256:base", OFFICIAL)
    result = build_release(
        make_config(tmp_path), metadata(), engine, build_args={"APP_VERSION": "v9"}
    )
    assert result.record.version == "v9"


# --- base image substitution ------------------------------------------------------------


def test_the_stand_in_replaces_an_absent_official_base(tmp_path: Path, state: Path) -> None:
    record_substitute(OFFICIAL, STAND_IN)
    engine = FakeEngine()
    engine.add_image("sha256:standin", STAND_IN)
    events: list[Progress] = []

    result = build_release(make_config(tmp_path), metadata(), engine, progress=events.append)

    assert _only_build(engine).build_args["BASE_IMAGE"] == STAND_IN
    assert result.substituted_base == (OFFICIAL, STAND_IN)
    assert result.record.base_image == STAND_IN
    assert any(STAND_IN in e.message and OFFICIAL in e.message for e in events)
    assert (state / "base-images.json").is_file()


def test_no_substitution_when_the_official_base_is_present(tmp_path: Path) -> None:
    record_substitute(OFFICIAL, STAND_IN)
    engine = FakeEngine()
    engine.add_image("sha256:official", OFFICIAL)
    engine.add_image("sha256:standin", STAND_IN)

    result = build_release(make_config(tmp_path), metadata(), engine)

    assert "BASE_IMAGE" not in _only_build(engine).build_args
    assert result.substituted_base is None


def test_no_substitution_when_the_user_names_the_base(tmp_path: Path) -> None:
    record_substitute(OFFICIAL, STAND_IN)
    engine = FakeEngine()
    engine.add_image("sha256:standin", STAND_IN)

    result = build_release(
        make_config(tmp_path), metadata(), engine, build_args={"BASE_IMAGE": OFFICIAL}
    )

    assert _only_build(engine).build_args["BASE_IMAGE"] == OFFICIAL
    assert result.substituted_base is None


def test_a_base_from_build_args_in_the_config_is_substituted_too(tmp_path: Path) -> None:
    record_substitute("python:3.12-slim", "dockroll.local/python:3.12-slim")
    engine = FakeEngine()
    engine.add_image("sha256:standin", "dockroll.local/python:3.12-slim")
    config = make_config(tmp_path, "build:\n  args:\n    BASE_IMAGE: python:3.12-slim\n")

    result = build_release(config, metadata(), engine)

    assert result.substituted_base == ("python:3.12-slim", "dockroll.local/python:3.12-slim")


def test_no_substitution_when_the_stand_in_is_missing_too(tmp_path: Path) -> None:
    record_substitute(OFFICIAL, STAND_IN)
    engine = FakeEngine()

    result = build_release(make_config(tmp_path), metadata(), engine)

    assert "BASE_IMAGE" not in _only_build(engine).build_args
    assert result.substituted_base is None


def test_no_substitution_without_a_recorded_stand_in(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add_image("sha256:standin", STAND_IN)
    result = build_release(make_config(tmp_path), metadata(), engine)
    assert result.substituted_base is None


def test_no_substitution_when_base_image_arg_is_off(tmp_path: Path) -> None:
    record_substitute(OFFICIAL, STAND_IN)
    engine = FakeEngine()
    engine.add_image("sha256:standin", STAND_IN)
    config = make_config(tmp_path, "build:\n  base_image_arg: null\n")

    result = build_release(config, metadata(), engine)

    assert result.substituted_base is None
    assert result.record.base_image is None


def test_dockerfile_arg_default(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'ARG OTHER=x\narg  BASE_IMAGE = "python:3.11-slim"\nARG EMPTY\nFROM $BASE_IMAGE\n',
        encoding="utf-8",
    )
    assert dockerfile_arg_default(dockerfile, "BASE_IMAGE") == "python:3.11-slim"
    assert dockerfile_arg_default(dockerfile, "OTHER") == "x"
    assert dockerfile_arg_default(dockerfile, "EMPTY") is None
    assert dockerfile_arg_default(tmp_path / "missing", "BASE_IMAGE") is None


# --- secrets ----------------------------------------------------------------------------


def test_a_missing_required_secret_file_fails_before_building(tmp_path: Path) -> None:
    config = make_config(tmp_path, "build:\n  secrets:\n    - id: cert\n      src: missing.pem\n")
    engine = FakeEngine()
    with pytest.raises(BuildError, match="build secret 'cert'") as caught:
        build_release(config, metadata(), engine)
    assert str(tmp_path / "svc" / "missing.pem") in caught.value.message
    assert caught.value.hint is not None
    assert "required: false" in caught.value.hint
    assert engine.builds == []


def test_an_unset_required_env_secret_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKROLL_TEST_TOKEN", raising=False)
    config = make_config(
        tmp_path, "build:\n  secrets:\n    - id: token\n      env: DOCKROLL_TEST_TOKEN\n"
    )
    engine = FakeEngine()
    with pytest.raises(BuildError, match="DOCKROLL_TEST_TOKEN is not set"):
        build_release(config, metadata(), engine)
    assert engine.builds == []


def test_optional_secrets_that_are_missing_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKROLL_TEST_TOKEN", raising=False)
    config = make_config(
        tmp_path,
        "build:\n  secrets:\n"
        "    - {id: cert, src: /nonexistent/ca.pem, required: false}\n"
        "    - {id: token, env: DOCKROLL_TEST_TOKEN, required: false}\n",
    )
    engine = FakeEngine()
    build_release(config, metadata(), engine)
    assert dict(_only_build(engine).secrets) == {}


def test_file_secrets_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = make_config(tmp_path, "build:\n  secrets:\n    - {id: cert, src: certs/ca.pem}\n")
    cert = tmp_path / "svc" / "certs" / "ca.pem"
    cert.parent.mkdir()
    cert.write_text("pem", encoding="utf-8")
    engine = FakeEngine()
    build_release(config, metadata(), engine)
    assert dict(_only_build(engine).secrets) == {"cert": cert}
    assert cert.is_file(), "a user's secret file is never removed"


def test_an_env_secret_goes_through_a_private_file_removed_after_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKROLL_TEST_TOKEN", "s3cret-value")
    config = make_config(
        tmp_path, "build:\n  secrets:\n    - id: token\n      env: DOCKROLL_TEST_TOKEN\n"
    )
    seen: dict[str, object] = {}

    def during_build(request: BuildRequest) -> None:
        path = request.secrets["token"]
        seen["path"] = path
        seen["text"] = path.read_text(encoding="utf-8")
        seen["mode"] = stat.S_IMODE(path.stat().st_mode)
        seen["dir_mode"] = stat.S_IMODE(path.parent.stat().st_mode)

    engine = FakeEngine(build_hook=during_build)
    result = build_release(config, metadata(), engine)

    assert seen["text"] == "s3cret-value"
    assert seen["mode"] == 0o600
    assert seen["dir_mode"] == 0o700
    path = seen["path"]
    assert isinstance(path, Path)
    assert not path.exists()
    assert not path.parent.exists()
    assert "s3cret-value" not in json.dumps(result.record.to_json())


def test_the_secret_file_is_removed_when_the_build_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKROLL_TEST_TOKEN", "s3cret-value")
    config = make_config(tmp_path, "build:\n  secrets:\n    - {id: t, env: DOCKROLL_TEST_TOKEN}\n")
    paths: list[Path] = []
    engine = FakeEngine(
        build_hook=lambda request: paths.append(request.secrets["t"]),
        build_error=BuildError("the build failed (exit 1)"),
    )
    with pytest.raises(BuildError, match="exit 1"):
        build_release(config, metadata(), engine)
    [path] = paths
    assert not path.exists()


# --- tags and the record ----------------------------------------------------------------


def test_no_tags_is_a_build_error(tmp_path: Path) -> None:
    engine = FakeEngine()
    with pytest.raises(BuildError, match="produced no tags") as caught:
        build_release(make_config(tmp_path), metadata(tags=()), engine)
    assert caught.value.hint is not None
    assert "dockroll tags" in caught.value.hint
    assert engine.builds == []


def test_the_build_record_is_saved_in_the_state_dir(tmp_path: Path, state: Path) -> None:
    engine = FakeEngine()
    engine.add_image("sha256:base", OFFICIAL)

    result = build_release(make_config(tmp_path), metadata(), engine)

    saved = state / "builds" / "web.json"
    assert saved.is_file()
    assert json.loads(saved.read_text(encoding="utf-8"))["image_id"] == result.record.image_id
    assert load_last_build("web") == result.record
    assert result.record.created == "2024-05-01T12:00:00Z"
    assert result.record.size == 42


def test_record_false_saves_nothing(tmp_path: Path, state: Path) -> None:
    engine = FakeEngine()
    build_release(make_config(tmp_path), metadata(), engine, record=False)
    assert not (state / "builds" / "web.json").exists()


def test_a_failed_build_leaves_the_previous_record(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    engine = FakeEngine()
    first = build_release(config, metadata(), engine).record
    engine.build_error = BuildError("boom")
    with pytest.raises(BuildError):
        build_release(config, metadata(), engine)
    assert load_last_build("web") == first


def test_a_build_from_uncommitted_changes_warns(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415 - only this test runs git

    config = make_config(tmp_path)
    service = tmp_path / "svc"

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=service,
            check=True,
            capture_output=True,
        )

    def warnings() -> list[str]:
        seen: list[Progress] = []
        build_release(config, metadata(), FakeEngine(), progress=seen.append)
        return [p.message for p in seen if "uncommitted" in p.message]

    assert warnings() == []  # not a git checkout: nothing to say
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    assert warnings() == []
    (service / "Dockerfile").write_text(DOCKERFILE + "# changed\n", encoding="utf-8")
    [warning] = warnings()
    assert "Dockerfile" in warning
