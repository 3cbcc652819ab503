"""Remote engine addresses (ssh://, tcp:// with TLS) and what each way of failing tells."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockroll.engine.docker import DockerEngine
from dockroll.engine.ssh import SshTarget, failure, parse_ssh_endpoint
from dockroll.errors import EngineError, EngineUnavailable
from dockroll.ledger import Release, ReleaseId
from dockroll.refs import Digest
from dockroll.rollout.executor import pinned_image


def test_parses_user_host_and_port() -> None:
    assert parse_ssh_endpoint("ssh://deploy@app1.example.com:2222") == SshTarget(
        host="app1.example.com", user="deploy", port=2222
    )
    target = parse_ssh_endpoint("ssh://app1")
    assert target == SshTarget(host="app1")
    assert target.argv == []
    assert SshTarget("h", "u", 2222).argv == ["-l", "u", "-p", "2222"]


@pytest.mark.parametrize(
    "endpoint", ["tcp://app1:2376", "ssh://", "ssh://app1:port", "ssh://app1/var/run/x.sock"]
)
def test_anything_else_is_refused_with_the_form_to_use(endpoint: str) -> None:
    with pytest.raises(EngineError, match="not an ssh engine address") as caught:
        parse_ssh_endpoint(endpoint)
    assert caught.value.hint is not None
    assert "ssh://[user@]host[:port]" in caught.value.hint


def test_an_unknown_host_key_names_ssh_keyscan_with_the_port() -> None:
    error = failure(
        SshTarget("app1", "root", 2222),
        "No ED25519 host key is known for [app1]:2222 and you have requested strict checking.\n"
        "Host key verification failed.\n",
        255,
    )

    assert type(error) is EngineError
    assert "is not in known_hosts" in error.message
    assert error.hint is not None
    assert "ssh-keyscan -p 2222 app1 >> ~/.ssh/known_hosts" in error.hint


def test_a_changed_host_key_says_so_and_how_to_forget_the_old_one() -> None:
    error = failure(
        SshTarget("app1", port=2222),
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
        255,
    )

    assert "changed since it was recorded" in error.message
    assert error.hint is not None
    assert "ssh-keygen -R '[app1]:2222'" in error.hint


def test_a_refused_key_and_an_unreachable_host() -> None:
    refused = failure(SshTarget("app1", "root"), "root@app1: Permission denied (publickey).", 255)
    assert "refused the login" in refused.message
    assert refused.hint is not None
    assert "ssh-agent" in refused.hint

    down = failure(SshTarget("app1"), "ssh: connect to host app1 port 22: Connection refused", 255)
    assert isinstance(down, EngineUnavailable)
    assert "Connection refused" in down.message


def test_an_environments_registry_replaces_the_address_the_engine_pulls_from() -> None:
    digest = Digest("sha256:" + "a" * 64)
    now = datetime.now(UTC)
    release = Release(
        id=ReleaseId(1),
        service="web",
        version="1.0.0",
        digest=digest,
        registry="127.0.0.1:5000",
        repository="team/web",
        tags=("1.0.0",),
        pushed_at=now,
        created_by="tests",
        created_at=now,
    )

    assert pinned_image(release) == f"127.0.0.1:5000/team/web@{digest}"
    assert pinned_image(release, "172.20.0.1:5000") == f"172.20.0.1:5000/team/web@{digest}"


def test_a_tls_engine_without_its_certificate_files_says_which_are_missing(
    tmp_path: Path,
) -> None:
    (tmp_path / "ca.pem").write_text("not used")
    engine = DockerEngine("tcp://127.0.0.1:1", certs=tmp_path)

    with pytest.raises(EngineError, match="needs TLS") as caught:
        engine.ping()

    assert str(tmp_path / "cert.pem") in caught.value.message
    assert str(tmp_path / "key.pem") in caught.value.message
    assert caught.value.hint is not None
    assert "engine_certs" in caught.value.hint


def test_docker_tls_verify_picks_the_docker_cert_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))

    with pytest.raises(EngineError, match=f"{tmp_path}/ca.pem"):
        DockerEngine().ping()
