"""Trivy and Grype reports, the severity gate, and finding/running a scanner on PATH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.scanners import (
    ScannerChoice,
    ScannerFailed,
    Severity,
    find_scanner,
    parse_fail_on,
    parse_grype,
    parse_report,
    parse_trivy,
    run_scanner,
)
from tests.unit.scanners.fake import DATA, calls, install_fake_scanner


def load(name: str) -> dict[str, object]:
    document: dict[str, object] = json.loads((DATA / name).read_text())
    return document


def test_trivy_report() -> None:
    report = parse_trivy(load("trivy-report.json"))
    assert report.scanner == "trivy"
    # the duplicate gunicorn finding (one per target) is counted once
    assert [(f.id, f.severity, f.package) for f in report.findings] == [
        ("CVE-2023-45853", Severity.CRITICAL, "zlib1g"),
        ("CVE-2023-4911", Severity.HIGH, "libc6"),
        ("CVE-2024-1135", Severity.HIGH, "gunicorn"),
        ("CVE-2011-3374", Severity.LOW, "apt"),
    ]
    zlib = report.findings[0]
    assert zlib.fixed is None
    assert zlib.installed == "1:1.2.13.dfsg-1"
    assert report.findings[1].fixed == "2.36-9+deb12u3"
    assert report.counts == {
        Severity.CRITICAL: 1,
        Severity.HIGH: 2,
        Severity.MEDIUM: 0,
        Severity.LOW: 1,
        Severity.NEGLIGIBLE: 0,
        Severity.UNKNOWN: 0,
    }


def test_grype_report() -> None:
    report = parse_grype(load("grype-report.json"))
    assert report.scanner == "grype"
    assert [(f.id, f.severity, f.package, f.fixed) for f in report.findings] == [
        ("CVE-2023-4911", Severity.HIGH, "libc6", "2.36-9+deb12u3"),
        ("GHSA-w3h3-4rj7-4ph4", Severity.MEDIUM, "gunicorn", "22.0.0"),
        ("CVE-2005-2541", Severity.NEGLIGIBLE, "tar", None),
    ]
    assert report.counts[Severity.NEGLIGIBLE] == 1


def test_clean_trivy_report() -> None:
    report = parse_trivy(load("trivy-clean.json"))
    assert report.findings == ()
    assert report.at_or_above(Severity.LOW) == ()


@pytest.mark.parametrize(
    ("gate", "blocking"),
    [
        (Severity.CRITICAL, ["CVE-2023-45853"]),
        (Severity.HIGH, ["CVE-2023-45853", "CVE-2023-4911", "CVE-2024-1135"]),
        (Severity.LOW, ["CVE-2023-45853", "CVE-2023-4911", "CVE-2024-1135", "CVE-2011-3374"]),
        (None, []),
    ],
)
def test_gate(gate: Severity | None, blocking: list[str]) -> None:
    report = parse_trivy(load("trivy-report.json"))
    assert [f.id for f in report.at_or_above(gate)] == blocking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CRITICAL", Severity.CRITICAL),
        ("critical", Severity.CRITICAL),
        (" High ", Severity.HIGH),
        ("negligible", Severity.NEGLIGIBLE),
        ("none", None),
        ("never", None),
    ],
)
def test_parse_fail_on(text: str, expected: Severity | None) -> None:
    assert parse_fail_on(text) is expected


def test_parse_fail_on_rejects_other_words() -> None:
    with pytest.raises(ValueError, match="critical, high, medium"):
        parse_fail_on("severe")


def test_unknown_severity_spellings_are_unknown() -> None:
    assert Severity.parse("Important") is Severity.UNKNOWN
    assert Severity.UNKNOWN.rank < Severity.NEGLIGIBLE.rank < Severity.LOW.rank


def test_reports_that_are_not_reports() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        parse_report("trivy", "FATAL image scan error")
    with pytest.raises(ValueError, match="matches"):
        parse_report("grype", json.dumps({"Results": []}))
    with pytest.raises(ValueError, match="not a report"):
        parse_report("trivy", "[]")


# -- scanners on PATH ----------------------------------------------------------------


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def test_no_scanner_installed(bin_dir: Path) -> None:
    assert find_scanner(ScannerChoice.AUTO) is None
    assert find_scanner(ScannerChoice.TRIVY) is None


def test_auto_prefers_trivy_and_falls_back_to_grype(bin_dir: Path) -> None:
    grype = install_fake_scanner(bin_dir, "grype", "grype-report.json")
    assert find_scanner(ScannerChoice.AUTO) == ("grype", str(grype))
    trivy = install_fake_scanner(bin_dir, "trivy", "trivy-report.json")
    assert find_scanner(ScannerChoice.AUTO) == ("trivy", str(trivy))
    assert find_scanner(ScannerChoice.GRYPE) == ("grype", str(grype))
    assert find_scanner(ScannerChoice.NONE) is None


def test_run_trivy(bin_dir: Path) -> None:
    trivy = install_fake_scanner(bin_dir, "trivy", "trivy-report.json")
    run = run_scanner("trivy", str(trivy), "web:v1", docker_host="unix:///run/d.sock")
    assert run.scanner == "trivy"
    assert len(run.report.findings) == 4
    [args] = calls(bin_dir, "trivy")
    assert args == [
        "image",
        "--format",
        "json",
        "--quiet",
        "--scanners",
        "vuln",
        "web:v1",
        "unix:///run/d.sock",
    ]


def test_run_grype(bin_dir: Path) -> None:
    grype = install_fake_scanner(bin_dir, "grype", "grype-report.json")
    run = run_scanner("grype", str(grype), "web:v1")
    assert run.report.findings[0].id == "CVE-2023-4911"
    [args] = calls(bin_dir, "grype")
    assert args[:-1] == ["docker:web:v1", "--output", "json", "--quiet"]


def test_scanner_that_fails(bin_dir: Path) -> None:
    trivy = install_fake_scanner(
        bin_dir, "trivy", exit_code=1, stderr="FATAL failed to download vulnerability DB\n"
    )
    with pytest.raises(ScannerFailed, match="exited with 1: FATAL failed to download"):
        run_scanner("trivy", str(trivy), "web:v1")


def test_scanner_that_prints_no_report(bin_dir: Path) -> None:
    grype = install_fake_scanner(bin_dir, "grype", stdout="No vulnerabilities found\n")
    with pytest.raises(ScannerFailed, match="no JSON report"):
        run_scanner("grype", str(grype), "web:v1")


def test_scanner_that_hangs(bin_dir: Path) -> None:
    slow = bin_dir / "trivy"
    slow.write_text("#!/bin/sh\nexec /bin/sleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(ScannerFailed, match=r"did not finish within 0\.2s"):
        run_scanner("trivy", str(slow), "web:v1", timeout=0.2)
