"""Vulnerability reports of Trivy and Grype, in one shape, and the severity gate."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "Finding",
    "Severity",
    "VulnerabilityReport",
    "parse_fail_on",
    "parse_grype",
    "parse_report",
    "parse_trivy",
]


class Severity(StrEnum):
    """Severities from least to most severe; Grype's ``Negligible`` included."""

    UNKNOWN = "UNKNOWN"
    NEGLIGIBLE = "NEGLIGIBLE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @classmethod
    def parse(cls, value: str) -> Severity:
        """A severity from any spelling a scanner uses (``High``, ``high``); else UNKNOWN."""
        try:
            return cls(value.strip().upper())
        except ValueError:
            return cls.UNKNOWN


_ORDER = list(Severity)


def parse_fail_on(value: str | None) -> Severity | None:
    """The gate from ``--fail-on``: a severity name, or ``none`` for no gate.

    Raises ValueError on anything else.
    """
    if value is None:
        return None
    text = value.strip().upper()
    if text in ("NONE", "NEVER", "OFF"):
        return None
    try:
        return Severity(text)
    except ValueError:
        choices = ", ".join(s.value.lower() for s in reversed(_ORDER))
        raise ValueError(f"{value!r} is not a severity; use one of {choices} or none") from None


@dataclass(frozen=True)
class Finding:
    """One vulnerability in one installed package."""

    id: str
    severity: Severity
    package: str
    installed: str
    fixed: str | None = None
    title: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "package": self.package,
            "installed": self.installed,
            "fixed": self.fixed,
            "title": self.title,
        }


def _sort_key(finding: Finding) -> tuple[int, int, str, str]:
    return (-finding.severity.rank, 0 if finding.fixed else 1, finding.id, finding.package)


@dataclass(frozen=True)
class VulnerabilityReport:
    """What a scanner found, most severe first."""

    scanner: str
    findings: tuple[Finding, ...]

    @classmethod
    def of(cls, scanner: str, findings: Iterable[Finding]) -> VulnerabilityReport:
        # Trivy repeats a finding per target, Grype per match rule: keep one of each.
        unique = {(f.id, f.package, f.installed): f for f in findings}
        return cls(scanner=scanner, findings=tuple(sorted(unique.values(), key=_sort_key)))

    @property
    def counts(self) -> dict[Severity, int]:
        """Findings per severity, every severity present, most severe first."""
        tally = Counter(finding.severity for finding in self.findings)
        return {severity: tally.get(severity, 0) for severity in reversed(_ORDER)}

    def at_or_above(self, threshold: Severity | None) -> tuple[Finding, ...]:
        """The findings the gate counts; none without a gate."""
        if threshold is None:
            return ()
        return tuple(f for f in self.findings if f.severity.rank >= threshold.rank)

    def top(self, limit: int = 10) -> tuple[Finding, ...]:
        return self.findings[:limit]


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) and str(value) else None


def parse_trivy(document: Mapping[str, Any]) -> VulnerabilityReport:
    """``trivy image --format json``: ``Results[].Vulnerabilities[]``."""
    if not isinstance(document.get("Results", []), list):
        raise ValueError("a Trivy report has a list under 'Results'")
    findings: list[Finding] = []
    for result in document.get("Results") or []:
        for vulnerability in (result or {}).get("Vulnerabilities") or []:
            findings.append(
                Finding(
                    id=str(vulnerability.get("VulnerabilityID", "?")),
                    severity=Severity.parse(str(vulnerability.get("Severity", ""))),
                    package=str(vulnerability.get("PkgName", "?")),
                    installed=str(vulnerability.get("InstalledVersion", "")),
                    fixed=_text(vulnerability.get("FixedVersion")),
                    title=_text(vulnerability.get("Title")),
                )
            )
    return VulnerabilityReport.of("trivy", findings)


def parse_grype(document: Mapping[str, Any]) -> VulnerabilityReport:
    """``grype … -o json``: ``matches[].vulnerability`` and ``.artifact``."""
    if not isinstance(document.get("matches"), list):
        raise ValueError("a Grype report has a list under 'matches'")
    findings: list[Finding] = []
    for match in document["matches"]:
        vulnerability = match.get("vulnerability") or {}
        artifact = match.get("artifact") or {}
        fix = vulnerability.get("fix") or {}
        versions = [str(v) for v in fix.get("versions") or []]
        findings.append(
            Finding(
                id=str(vulnerability.get("id", "?")),
                severity=Severity.parse(str(vulnerability.get("severity", ""))),
                package=str(artifact.get("name", "?")),
                installed=str(artifact.get("version", "")),
                fixed=", ".join(versions) or None,
                title=_text(vulnerability.get("description")),
            )
        )
    return VulnerabilityReport.of("grype", findings)


def parse_report(scanner: str, text: str) -> VulnerabilityReport:
    """Parse a scanner's JSON output; ValueError when it is not a report of that scanner."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{scanner} printed no JSON report ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{scanner} printed JSON that is not a report")
    return parse_trivy(document) if scanner == "trivy" else parse_grype(document)
