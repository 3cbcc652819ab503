"""Vulnerability scanners dockroll drives when they are installed: Trivy and Grype.

Neither is a dependency: :func:`find_scanner` looks for them on PATH, and
their JSON reports are read into one :class:`VulnerabilityReport` the
severity gate is applied to.
"""

from __future__ import annotations

from dockroll.scanners._report import (
    Finding,
    Severity,
    VulnerabilityReport,
    parse_fail_on,
    parse_grype,
    parse_report,
    parse_trivy,
)
from dockroll.scanners._runner import (
    ScannerChoice,
    ScannerFailed,
    ScannerRun,
    find_scanner,
    run_scanner,
    scanner_command,
)

__all__ = [
    "Finding",
    "ScannerChoice",
    "ScannerFailed",
    "ScannerRun",
    "Severity",
    "VulnerabilityReport",
    "find_scanner",
    "parse_fail_on",
    "parse_grype",
    "parse_report",
    "parse_trivy",
    "run_scanner",
    "scanner_command",
]
