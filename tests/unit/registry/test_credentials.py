from __future__ import annotations

import base64
import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest
from docker.credentials import Store

from dockroll.registry import Credentials, docker_config_path, find_credentials

SECRET = "hunter2-very-secret"


def _write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_repr_and_str_hide_the_password() -> None:
    credentials = Credentials("bob", SECRET, "environment")
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert "bob" in repr(credentials)
    assert "***" in repr(credentials)


def test_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKROLL_REGISTRY_USERNAME", "env-user")
    monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", "env-pass")
    found = find_credentials("r.test", username="arg-user", password="arg-pass")
    assert found == Credentials("arg-user", "arg-pass", "argument")


def test_environment_wins_over_docker_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _write_config(tmp_path / "docker-config", {"auths": {"r.test": {"auth": _auth("cfg", "x")}}})
    monkeypatch.setenv("DOCKROLL_REGISTRY_USERNAME", "env-user")
    monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", "env-pass")
    assert find_credentials("r.test") == Credentials("env-user", "env-pass", "environment")


def test_docker_config_auth_entry_is_decoded(tmp_path: Path) -> None:
    _write_config(
        tmp_path / "docker-config",
        {"auths": {"https://r.test:5000/v1/": {"auth": _auth("carol", "pa:ss")}, "other.test": {}}},
    )
    found = find_credentials("r.test:5000")
    assert found == Credentials("carol", "pa:ss", "docker config")
    assert find_credentials("r.test") is None
    assert find_credentials("other.test") is None


def test_docker_config_path_follows_docker_config_variable(tmp_path: Path) -> None:
    assert docker_config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert docker_config_path({}) == Path.home() / ".docker" / "config.json"


@pytest.mark.parametrize("content", ["not json", "[]", '{"auths": {"r.test": {"auth": "%%%"}}}'])
def test_a_broken_config_means_no_credentials(tmp_path: Path, content: str) -> None:
    directory = tmp_path / "docker-config"
    directory.mkdir()
    (directory / "config.json").write_text(content)
    assert find_credentials("r.test") is None


def _install_helper(tmp_path: Path, name: str, answer: dict[str, str] | None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    log = tmp_path / f"{name}.log"
    if answer is None:
        body = 'echo "credentials not found in native keychain"; exit 1'
    else:
        body = f"cat <<'JSON'\n{json.dumps(answer)}\nJSON"
    helper.write_text(f'#!/bin/sh\nread host\necho "$1 $host" >> {log}\n{body}\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    return log


def test_credential_helper_for_the_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = _install_helper(
        tmp_path, "fake", {"ServerURL": "r.test", "Username": "dan", "Secret": SECRET}
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _write_config(tmp_path / "docker-config", {"credHelpers": {"r.test": "fake"}})
    found = find_credentials("r.test")
    assert found == Credentials("dan", SECRET, "docker-credential-fake")
    assert log.read_text().split() == ["get", "r.test"]


def test_creds_store_is_the_default_helper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _install_helper(tmp_path, "store", {"Username": "erin", "Secret": SECRET})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _write_config(tmp_path / "docker-config", {"credsStore": "store"})
    found = find_credentials("r.test")
    assert found is not None
    assert found.username == "erin"


def test_helper_without_credentials_or_missing_means_anonymous(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install_helper(tmp_path, "empty", None)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _write_config(
        tmp_path / "docker-config", {"credHelpers": {"a.test": "empty", "b.test": "absent"}}
    )
    assert find_credentials("a.test") is None
    assert find_credentials("b.test") is None


def test_identity_tokens_are_not_used_as_passwords(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install_helper(tmp_path, "oauth", {"Username": "<token>", "Secret": "refresh-token"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _write_config(tmp_path / "docker-config", {"credsStore": "oauth"})
    assert find_credentials("r.test") is None


def test_a_hanging_helper_means_anonymous_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-slow"
    helper.write_text('#!/bin/sh\nsleep 2\necho \'{"Username": "late", "Secret": "x"}\'\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("dockroll.registry._credentials._HELPER_TIMEOUT", 0.3)
    _write_config(tmp_path / "docker-config", {"credsStore": "slow"})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dockroll"):
        assert find_credentials("r.test") is None
    assert time.monotonic() - started < 1.5
    assert "docker-credential-slow did not answer for r.test" in caplog.text


def test_helpers_are_asked_through_docker_py_s_credential_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[tuple[str, str]] = []

    class Recording(Store):
        def get(self, server: str | bytes) -> dict[str, str]:
            asked.append((self.program, str(server)))
            return {"Username": "frank", "Secret": SECRET}

    _install_helper(tmp_path, "rec", None)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("dockroll.engine.credentials.Store", Recording)
    _write_config(tmp_path / "docker-config", {"credHelpers": {"r.test": "rec"}})
    assert find_credentials("r.test") == Credentials("frank", SECRET, "docker-credential-rec")
    assert asked == [("docker-credential-rec", "r.test")]
