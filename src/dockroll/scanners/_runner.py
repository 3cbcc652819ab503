"""Find an installed vulnerability scanner and run it against a local image."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from enum import StrEnum

from dockroll.scanners._report import VulnerabilityReport, parse_report

__all__ = [
    "ScannerChoice",
    "ScannerFailed",
    "ScannerRun",
    "find_scanner",
    "run_scanner",
    "scanner_command",
]

_KNOWN = ("trivy", "grype")
_STDERR_TAIL = 600


class ScannerChoice(StrEnum):
    AUTO = "auto"
    """Trivy when installed, else Grype, else none."""
    TRIVY = "trivy"
    GRYPE = "grype"
    NONE = "none"
    """Produce the SBOM only."""


@dataclass(frozen=True)
class ScannerRun:
    """A scanner that ran and the report it printed."""

    scanner: str
    executable: str
    report: VulnerabilityReport
    seconds: float


def find_scanner(choice: ScannerChoice) -> tuple[str, str] | None:
    """``(name, executable)`` of the scanner to run, found on PATH; None when there is none."""
    if choice is ScannerChoice.NONE:
        return None
    names = _KNOWN if choice is ScannerChoice.AUTO else (choice.value,)
    for name in names:
        executable = shutil.which(name)
        if executable:
            return name, executable
    return None


def scanner_command(name: str, executable: str, image: str) -> list[str]:
    """The command that scans the local ``image`` and prints a JSON report."""
    if name == "trivy":
        return [executable, "image", "--format", "json", "--quiet", "--scanners", "vuln", image]
    return [executable, f"docker:{image}", "--output", "json", "--quiet"]


class ScannerFailed(Exception):
    """The scanner exited non-zero, timed out or printed no report."""


def run_scanner(
    name: str,
    executable: str,
    image: str,
    *,
    docker_host: str | None = None,
    timeout: float = 900.0,
) -> ScannerRun:
    """Run the scanner; the gate is applied by the caller, not by the scanner's exit code."""
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    command = scanner_command(name, executable, image)
    started = time.monotonic()
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise ScannerFailed(f"{name} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise ScannerFailed(f"{name} could not be started: {exc}") from None
    if completed.returncode != 0:
        tail = completed.stderr.strip()[-_STDERR_TAIL:] or "(no output)"
        raise ScannerFailed(f"{name} exited with {completed.returncode}: {tail}")
    try:
        report = parse_report(name, completed.stdout)
    except ValueError as exc:
        raise ScannerFailed(str(exc)) from None
    return ScannerRun(
        scanner=name, executable=executable, report=report, seconds=time.monotonic() - started
    )
