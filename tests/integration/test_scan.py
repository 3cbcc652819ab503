"""``dockroll scan`` of the sample service's real image: a valid CycloneDX 1.5 SBOM.

The image is built once per module from a fresh checkout of the sample service
(the BuildKit cache makes a repeat build quick). No scanner is assumed: Trivy
and Grype are not in Debian, so the scans here pass ``--scanner none`` or
check the "not scanned" verdict, and the gate is tested in the unit tests with
fake scanners.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from dockroll.cli.app import main
from dockroll.config import Config, load_config
from dockroll.engine.docker import DockerEngine
from dockroll.ledger import open_ledger
from dockroll.pipeline.build import BuildResult, build_release
from dockroll.pipeline.metadata import release_metadata
from dockroll.pipeline.scan import VerdictStatus, scan_target, target_from_build
from dockroll.scanners import ScannerChoice
from tests.integration.test_pipeline import (
    EXAMPLE,
    make_service_repo,
    plain_git_env,
    real_substitutes,
    remove_images,
)

pytestmark = pytest.mark.integration


def pinned(project: str) -> str:
    """The version examples/flask-app/requirements.txt pins for ``project``."""
    text = (EXAMPLE / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(project)}==(\S+)", text, re.MULTILINE | re.IGNORECASE)
    assert match, f"{project} is not pinned in requirements.txt"
    return match.group(1)


@dataclass
class Sample:
    config_path: Path
    config: Config
    built: BuildResult
    state: Path
    engine: DockerEngine


@pytest.fixture(scope="module")
def sample(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Sample]:
    substitutes = real_substitutes()
    state = tmp_path_factory.mktemp("state")
    shutil.copy(substitutes, state / "base-images.json")
    suffix = uuid.uuid4().hex[:10]
    repo = tmp_path_factory.mktemp("flask-app") / "service"
    config_path = make_service_repo(
        repo, image=f"127.0.0.1:5000/dockroll-test/scan-{suffix}", service=f"scan-{suffix}"
    )
    config = load_config(config_path)
    engine = DockerEngine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKROLL_STATE_DIR", str(state))
        patch.setenv("DOCKROLL_LEDGER_URL", f"sqlite:///{state / 'ledger.db'}")
        patch.delenv("DOCKROLL_DOCKER_CLI", raising=False)
        patch.delenv("SOURCE_DATE_EPOCH", raising=False)
        built = build_release(config, release_metadata(config, env=plain_git_env()), engine)
        yield Sample(config_path, config, built, state, engine)
    engine.close()
    remove_images(docker_client, built.record.labels["org.opencontainers.image.revision"])


def test_cli_scan_writes_a_valid_cyclonedx_sbom_listing_flask_and_gunicorn(
    sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "sbom.cdx.json"
    started = time.monotonic()
    code = main(
        [
            "--config",
            str(sample.config_path),
            "--json",
            "scan",
            "--scanner",
            "none",
            "--output",
            str(output),
        ]
    )
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)

    content = output.read_text(encoding="utf-8")
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(content) is None
    document = json.loads(content)
    purls = {component.get("purl") for component in document["components"]}
    assert f"pkg:pypi/flask@{pinned('flask')}" in purls
    assert f"pkg:pypi/gunicorn@{pinned('gunicorn')}" in purls
    python = {(p["name"], p["version"]) for p in result["sbom"]["python_packages"]}
    assert ("flask", pinned("flask")) in python
    assert ("gunicorn", pinned("gunicorn")) in python
    debs = [p for p in purls if p and p.startswith("pkg:deb/debian/")]
    assert len(debs) > 50
    assert all("distro=debian-12" in p for p in debs)
    assert any(p.startswith("pkg:deb/debian/libc6@") for p in debs)

    image = document["metadata"]["component"]
    record = sample.built.record
    assert image["type"] == "container"
    assert image["bom-ref"] == record.image_id
    assert image["version"] == record.version
    assert image["name"] == sample.config.image

    # kept beside the release, the same bytes as --output, the digest in the audit trail
    kept = Path(result["sbom"]["path"])
    assert kept.parent == sample.state / "sboms" / sample.config.service
    assert kept.read_text(encoding="utf-8") == content
    assert result["verdict"]["status"] == "not-scanned"
    with open_ledger() as ledger:
        events = ledger.audit_events(service=sample.config.service)
    assert any(
        e.action == "scan" and e.detail["sbom_digest"] == result["sbom"]["digest"] for e in events
    )
    assert seconds < 60, f"the scan took {seconds:.1f}s"


def test_library_scan_without_a_scanner_still_writes_the_sbom(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither trivy nor grype on it
    result = scan_target(
        sample.engine,
        target_from_build(sample.built.record),
        scanner=ScannerChoice.AUTO,
        root=tmp_path / "state",
    )
    assert result.verdict.status is VerdictStatus.NOT_SCANNED
    assert result.gate_error() is None
    assert result.sbom.path.is_file()
    assert ("gunicorn", pinned("gunicorn")) in result.python_packages
    assert result.os_packages > 50
    # the container made for the export is gone
    assert not sample.engine.client.containers.list(
        all=True, filters={"label": "dev.dockroll.role=export"}
    )
