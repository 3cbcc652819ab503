"""The scan stage over a fake engine that exports a synthetic filesystem, with fake scanners."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from dockroll.config import Config
from dockroll.errors import ScanError, UsageError
from dockroll.events import Progress
from dockroll.ledger import Ledger, Outcome, open_ledger
from dockroll.pipeline.push import PushResult, record_push
from dockroll.pipeline.records import BuildRecord
from dockroll.pipeline.scan import (
    ScanTarget,
    VerdictStatus,
    find_sbom,
    record_scan,
    sbom_path,
    scan_image,
    scan_target,
    target_from_build,
    target_from_image,
)
from dockroll.refs import Digest
from dockroll.scanners import ScannerChoice, Severity
from tests.unit.fakes import FakeEngine
from tests.unit.sbom.rootfs import chunks, rootfs_tar
from tests.unit.scanners.fake import install_fake_scanner

REPO = "127.0.0.1:5000/team/web"
IMAGE_ID = "sha256:" + "1" * 64
DIGEST = Digest("sha256:" + "2" * 64)
TAGS = (f"{REPO}:v1.2.3", f"{REPO}:latest")


@dataclass
class ExportingEngine(FakeEngine):
    """A fake engine whose images all have the synthetic filesystem."""

    filesystem: bytes = field(default_factory=rootfs_tar)
    exports: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def export_rootfs(self, image: str) -> Iterator[bytes]:
        self.exports.append(image)
        try:
            yield from chunks(self.filesystem)
        finally:
            self.closed.append(image)


def build_record() -> BuildRecord:
    return BuildRecord(
        service="web",
        image_id=IMAGE_ID,
        tags=TAGS,
        version="v1.2.3",
        git_sha="abc1234",
        created="2024-05-01T12:00:00+00:00",
        size=1,
    )


@pytest.fixture
def engine() -> ExportingEngine:
    fake = ExportingEngine()
    fake.add_image(IMAGE_ID, *TAGS)
    return fake


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def test_sbom_is_written_beside_the_release_without_a_scanner(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    events: list[Progress] = []
    output = tmp_path / "out" / "web.cdx.json"
    result = scan_target(
        engine,
        target_from_build(build_record()),
        output=output,
        root=tmp_path / "state",
        progress=events.append,
    )
    expected = tmp_path / "state" / "sboms" / "web" / "v1.2.3-111111111111.cdx.json"
    assert result.sbom.path == expected
    content = expected.read_bytes()
    assert output.read_bytes() == content
    assert result.sbom.digest == "sha256:" + hashlib.sha256(content).hexdigest()
    document = json.loads(content)
    assert document["metadata"]["component"]["name"] == REPO
    assert document["metadata"]["component"]["version"] == "v1.2.3"
    assert result.os_packages == 4
    assert result.python_packages == (
        ("flask", "3.1.3"),
        ("gunicorn", "27.0.1"),
        ("prometheus-client", "0.26.0"),
        ("six", "1.16.0"),
    )
    assert result.components == 1 + 4 + 4
    assert result.verdict.status is VerdictStatus.NOT_SCANNED
    assert "no vulnerability scanner installed" in result.verdict.message
    assert result.gate_error() is None
    assert engine.exports == [IMAGE_ID]
    assert engine.closed == [IMAGE_ID]
    assert any("SBOM: 4 OS and 4 Python packages" in e.message for e in events)
    assert result.summary.startswith("SBOM of 9 components (4 OS, 4 Python) sha256:")


def test_required_scanner_missing_is_exit_14_after_the_sbom(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    result = scan_target(
        engine, target_from_build(build_record()), require_scanner=True, root=tmp_path
    )
    assert result.sbom.path.is_file()
    assert result.verdict.status is VerdictStatus.ERROR
    error = result.gate_error()
    assert isinstance(error, ScanError)
    assert error.exit_code == 14
    assert "drop --require-scanner" in str(error)


def test_gate_trips_on_a_critical_finding(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    install_fake_scanner(bin_dir, "trivy", "trivy-report.json")
    result = scan_target(engine, target_from_build(build_record()), root=tmp_path)
    verdict = result.verdict
    assert verdict.scanner == "trivy"
    assert verdict.status is VerdictStatus.FAILED
    assert [f.id for f in verdict.blocking] == ["CVE-2023-45853"]
    assert verdict.message == "1 of 4 vulnerabilities at or above critical"
    error = result.gate_error()
    assert error is not None
    assert error.exit_code == 14
    assert "CVE-2023-45853 (zlib1g)" in error.message
    data = result.to_json()
    assert data["verdict"]["counts"]["CRITICAL"] == 1
    assert data["verdict"]["top"][0]["id"] == "CVE-2023-45853"


@pytest.mark.parametrize(
    ("fail_on", "status"),
    [
        (Severity.CRITICAL, VerdictStatus.PASSED),
        (Severity.HIGH, VerdictStatus.PASSED),
        (Severity.MEDIUM, VerdictStatus.FAILED),
        (None, VerdictStatus.PASSED),
    ],
)
def test_grype_and_the_gate(
    engine: ExportingEngine,
    bin_dir: Path,
    tmp_path: Path,
    fail_on: Severity | None,
    status: VerdictStatus,
) -> None:
    # Grype's report has a High, a Medium and a Negligible finding.
    install_fake_scanner(bin_dir, "grype", "grype-report.json")
    result = scan_target(
        engine,
        target_from_build(build_record()),
        fail_on=fail_on if fail_on is not Severity.HIGH else Severity.CRITICAL,
        root=tmp_path,
    )
    assert result.verdict.scanner == "grype"
    assert result.verdict.status is status
    assert (result.gate_error() is None) is (status is VerdictStatus.PASSED)


def test_a_scanner_that_cannot_run_fails_the_scan(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    install_fake_scanner(bin_dir, "trivy", exit_code=1, stderr="FATAL DB download failed")
    result = scan_target(engine, target_from_build(build_record()), root=tmp_path)
    assert result.verdict.status is VerdictStatus.ERROR
    assert "FATAL DB download failed" in result.verdict.message
    assert result.sbom.path.is_file()
    assert isinstance(result.gate_error(), ScanError)


def test_scanner_none_skips_even_an_installed_scanner(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    install_fake_scanner(bin_dir, "trivy", "trivy-report.json")
    result = scan_target(
        engine, target_from_build(build_record()), scanner=ScannerChoice.NONE, root=tmp_path
    )
    assert result.verdict.status is VerdictStatus.NOT_SCANNED
    assert not (bin_dir / "trivy.calls").exists()


def test_the_scanner_is_given_a_tag_of_the_image_and_the_engine(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    install_fake_scanner(bin_dir, "grype", "grype-report.json")
    scan_target(engine, target_from_build(build_record()), root=tmp_path)
    calls = (bin_dir / "grype.calls").read_text().splitlines()
    assert json.loads(calls[0]) == [
        f"docker:{REPO}:v1.2.3",
        "--output",
        "json",
        "--quiet",
        "fake://engine",
    ]


def test_a_pushed_image_is_named_by_its_digest(engine: ExportingEngine, tmp_path: Path) -> None:
    engine.images[IMAGE_ID] = replace(engine.images[IMAGE_ID], repo_digests=(f"{REPO}@{DIGEST}",))
    result = scan_target(
        engine, target_from_build(build_record()), scanner=ScannerChoice.NONE, root=tmp_path
    )
    assert result.digest == DIGEST
    assert result.sbom.path.name == "v1.2.3-222222222222.cdx.json"
    image = json.loads(result.sbom.path.read_bytes())["metadata"]["component"]
    assert image["purl"].startswith("pkg:oci/web@sha256:2222")


def test_unreadable_filesystem_is_a_scan_error_and_closes_the_export(
    engine: ExportingEngine, tmp_path: Path
) -> None:
    engine.filesystem = b"not a tar" * 100
    with pytest.raises(ScanError, match="could not be read as a tar stream"):
        scan_target(
            engine, target_from_build(build_record()), scanner=ScannerChoice.NONE, root=tmp_path
        )
    assert engine.closed == [IMAGE_ID]


def test_missing_image(engine: ExportingEngine, tmp_path: Path) -> None:
    target = ScanTarget(service="web", version="v9", image="sha256:" + "9" * 64, repository=REPO)
    with pytest.raises(UsageError, match="has no image"):
        scan_target(engine, target, root=tmp_path)


def test_target_from_an_image_reference(engine: ExportingEngine) -> None:
    engine.add_image(
        "sha256:" + "3" * 64,
        "127.0.0.1:5000/team/api:2.0.0",
        labels={"org.opencontainers.image.version": "v2.0.0"},
    )
    target = target_from_image(engine, "127.0.0.1:5000/team/api:2.0.0")
    assert target == ScanTarget(
        service="api",
        version="v2.0.0",
        image="sha256:" + "3" * 64,
        repository="127.0.0.1:5000/team/api",
        tag="2.0.0",
    )
    by_id = target_from_image(engine, IMAGE_ID, service="web")
    assert (by_id.service, by_id.version, by_id.repository) == ("web", "v1.2.3", REPO)


def test_scan_image_uses_the_configured_gate(
    engine: ExportingEngine, bin_dir: Path, tmp_path: Path
) -> None:
    install_fake_scanner(bin_dir, "grype", "grype-report.json")
    lenient = Config(service="web", image=REPO, scan={"fail_on": "critical"})  # type: ignore[arg-type]
    assert scan_image(lenient, engine, build_record(), root=tmp_path).verdict.status is (
        VerdictStatus.PASSED
    )
    strict = Config(service="web", image=REPO, scan={"fail_on": "HIGH", "scanner": "grype"})  # type: ignore[arg-type]
    with pytest.raises(ScanError, match="at or above high"):
        scan_image(strict, engine, build_record(), root=tmp_path)


def test_scan_config_rejects_unknown_words() -> None:
    with pytest.raises(Exception, match="use one of critical"):
        Config(service="web", image=REPO, scan={"fail_on": "severe"})  # type: ignore[arg-type]
    with pytest.raises(Exception, match="auto, trivy, grype or none"):
        Config(service="web", image=REPO, scan={"scanner": "clair"})  # type: ignore[arg-type]


# -- the ledger ------------------------------------------------------------------------


def _push_result() -> PushResult:
    return PushResult(digest=DIGEST, references=TAGS, repository=REPO, seconds=0.1)


def test_scan_before_push_is_recorded_on_push(
    engine: ExportingEngine, ledger: Ledger, tmp_path: Path
) -> None:
    result = scan_target(
        engine, target_from_build(build_record()), scanner=ScannerChoice.NONE, root=tmp_path
    )
    assert record_scan(ledger, result) is None  # not pushed: nothing to put it on yet
    [event] = ledger.audit_events(service="web")
    assert event.action == "scan"
    assert event.outcome is Outcome.OK
    assert event.detail["sbom_digest"] == result.sbom.digest

    found = find_sbom("web", "v1.2.3", IMAGE_ID, DIGEST, root=tmp_path)
    assert found is not None
    assert found.digest == result.sbom.digest
    release = record_push(ledger, build_record(), _push_result(), sbom_digest=found.digest)
    assert release.sbom_digest == result.sbom.digest


def test_scan_after_push_fills_the_release(
    engine: ExportingEngine, ledger: Ledger, bin_dir: Path, tmp_path: Path
) -> None:
    release = record_push(ledger, build_record(), _push_result())
    assert release.sbom_digest is None
    engine.images[IMAGE_ID] = replace(engine.images[IMAGE_ID], repo_digests=(f"{REPO}@{DIGEST}",))
    install_fake_scanner(bin_dir, "trivy", "trivy-report.json")
    result = scan_target(engine, target_from_build(build_record()), root=tmp_path)
    updated = record_scan(ledger, result)
    assert updated is not None
    assert updated.id == release.id
    assert updated.sbom_digest == result.sbom.digest
    [event] = ledger.audit_events(service="web")
    assert event.outcome is Outcome.FAILED
    assert event.detail["counts"] == {"CRITICAL": 1, "HIGH": 2, "LOW": 1}
    # a rescan of the same image keeps the SBOM file, so the recorded digest stays true
    first = result.sbom.path.read_bytes()
    again = scan_target(
        engine, target_from_build(build_record()), scanner=ScannerChoice.NONE, root=tmp_path
    )
    assert again.sbom.digest == result.sbom.digest
    assert again.sbom.path.read_bytes() == first
    kept = record_scan(ledger, again)
    assert kept is not None
    assert kept.sbom_digest == result.sbom.digest


def test_sbom_path_keeps_versions_file_name_safe(tmp_path: Path) -> None:
    path = sbom_path("web", "feature/x-abc1234", IMAGE_ID, tmp_path)
    assert path.name == "feature_x-abc1234-111111111111.cdx.json"
    assert find_sbom("web", "feature/x-abc1234", IMAGE_ID, root=tmp_path) is None
