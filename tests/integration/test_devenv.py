"""``dockroll dev`` against the real machine: engine, registries, base images, PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import docker
import httpx
import psycopg
import pytest

from dockroll import devenv
from dockroll.devenv import HAPROXY, PYTHON
from tests.conftest import free_port

pytestmark = pytest.mark.integration

_NO_SUCH_MANIFEST = "/v2/dockroll/probe/manifests/sha256:" + "0" * 64


@pytest.mark.usefixtures("docker_client")
def test_up_twice_the_second_time_only_checks() -> None:
    devenv.up()

    again = devenv.up()

    assert again.ready
    assert not any(c.changed for c in again.components), again.to_dict()
    assert again.get("registry").detail.startswith("already running")  # type: ignore[union-attr]
    assert again.seconds < 15
    assert httpx.get("http://127.0.0.1:5000/v2/", timeout=5).status_code == 200


@pytest.mark.usefixtures("docker_client")
def test_status_reports_without_changing_anything() -> None:
    report = devenv.status()

    assert report.get("engine").up  # type: ignore[union-attr]
    assert report.get(PYTHON.component) is not None


@pytest.mark.usefixtures("docker_client")
def test_a_second_registry_with_htpasswd_and_deletes(tmp_path: Path) -> None:
    port = free_port()
    users = devenv.write_htpasswd(tmp_path / "users", {"ci": "s3cret"})

    instance = devenv.start_registry(port=port, data_dir=tmp_path / "reg", htpasswd=users)
    try:
        assert instance.started
        url = instance.url
        assert httpx.get(f"{url}/v2/", timeout=5).status_code == 401
        auth = ("ci", "s3cret")
        assert httpx.get(f"{url}/v2/", auth=auth, timeout=5).status_code == 200
        # 404 (manifest unknown) rather than 405 (deletes disabled)
        deleted = httpx.delete(f"{url}{_NO_SUCH_MANIFEST}", auth=auth, timeout=5)
        assert deleted.status_code == 404, deleted.text
        again = devenv.start_registry(port=port, data_dir=tmp_path / "reg")
        assert not again.started
        assert again.pid == instance.pid
    finally:
        instance.stop()

    assert not instance.answers()


@pytest.mark.usefixtures("docker_client")
@pytest.mark.slow
def test_router_base_image_runs_haproxy_2_6(docker_client: docker.DockerClient) -> None:
    reports = devenv.ensure_base_image(HAPROXY)
    image = reports[-1].facts["image"]

    output = docker_client.containers.run(image, ["haproxy", "-v"], remove=True)

    assert b"HAProxy version 2.6" in output


@pytest.mark.slow
def test_postgres_accepts_the_dockroll_login() -> None:
    report = devenv.ensure_postgres()

    assert report.up
    url = devenv.POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("select current_user, current_database()").fetchone()
    assert row == ("dockroll", "dockroll")
