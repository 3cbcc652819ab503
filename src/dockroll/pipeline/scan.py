"""Scan stage: an SBOM of the image from its own filesystem, then a vulnerability gate.

The SBOM is always made, offline: the image's filesystem is streamed from the
engine once and read for its package databases (see :mod:`dockroll.sbom`).
It is kept beside the release in ``<state dir>/sboms/<service>/`` and its
digest goes into the ledger on the release (now, or when the image is pushed).
A vulnerability scanner runs only when one is installed; without one the SBOM
is still written and the verdict says the image was not scanned.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from dockroll.config import Config
from dockroll.engine.port import Engine, ImageInfo
from dockroll.errors import ScanError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger, Outcome, Release
from dockroll.pipeline.records import BuildRecord
from dockroll.refs import Digest, is_digest, parse_reference
from dockroll.sbom import (
    ImageInventory,
    ImageSubject,
    cyclonedx_document,
    inventory,
    read_rootfs,
    render_document,
)
from dockroll.scanners import (
    Finding,
    ScannerChoice,
    ScannerFailed,
    Severity,
    VulnerabilityReport,
    find_scanner,
    parse_fail_on,
    run_scanner,
)
from dockroll.statedir import state_dir

__all__ = [
    "SbomFile",
    "ScanResult",
    "ScanTarget",
    "Verdict",
    "VerdictStatus",
    "find_sbom",
    "record_scan",
    "sbom_path",
    "scan_image",
    "scan_target",
    "target_from_build",
    "target_from_image",
]

_VERSION_LABEL = "org.opencontainers.image.version"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class ScanTarget:
    """Which image to scan, and the release it is."""

    service: str
    version: str
    image: str
    """What the engine is asked for: an image id or a reference."""
    repository: str
    tag: str | None = None


def target_from_build(record: BuildRecord) -> ScanTarget:
    """The image the last ``dockroll build`` of the service made."""
    first = parse_reference(record.tags[0]) if record.tags else None
    return ScanTarget(
        service=record.service,
        version=record.version,
        image=record.image_id,
        repository=first.name if first else record.service,
        tag=first.tag if first else None,
    )


def target_from_image(engine: Engine, reference: str, service: str | None = None) -> ScanTarget:
    """Any local image: its version from the OCI version label or its tag."""
    info = _inspect(engine, reference)
    named = not (is_digest(reference) or _is_image_id(reference, info))
    name = reference if named else (info.tags[0] if info.tags else None)
    parsed = parse_reference(name) if name else None
    repository = parsed.name if parsed else _short(info.image_id)
    tag = parsed.tag if parsed else None
    return ScanTarget(
        service=service or repository.rsplit("/", 1)[-1],
        version=info.labels.get(_VERSION_LABEL) or tag or "unknown",
        image=info.image_id,
        repository=repository,
        tag=tag,
    )


def _is_image_id(reference: str, info: ImageInfo) -> bool:
    bare = reference.removeprefix("sha256:")
    return len(bare) >= 12 and info.image_id.removeprefix("sha256:").startswith(bare)


@dataclass(frozen=True)
class SbomFile:
    """An SBOM kept on disk, and the digest the ledger records for it."""

    path: Path
    digest: Digest
    size: int


class VerdictStatus(StrEnum):
    PASSED = "passed"
    """Scanned; nothing at or above the gate."""
    FAILED = "failed"
    """Scanned; findings at or above the gate."""
    NOT_SCANNED = "not-scanned"
    """No scanner installed (or ``--scanner none``); the SBOM alone was made."""
    ERROR = "error"
    """The scanner could not run, or one was required and none is installed."""


@dataclass(frozen=True)
class Verdict:
    """What the vulnerability scanner said, measured against the gate."""

    status: VerdictStatus
    message: str
    fail_on: Severity | None
    scanner: str | None = None
    report: VulnerabilityReport | None = None
    blocking: tuple[Finding, ...] = ()
    seconds: float = 0.0

    def to_json(self, top: int = 10) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status.value,
            "message": self.message,
            "scanner": self.scanner,
            "fail_on": self.fail_on.value if self.fail_on else None,
            "seconds": round(self.seconds, 2),
        }
        if self.report is not None:
            data["counts"] = {k.value: v for k, v in self.report.counts.items()}
            data["blocking"] = len(self.blocking)
            data["top"] = [finding.to_json() for finding in self.report.top(top)]
        return data


@dataclass(frozen=True)
class ScanResult:
    """One scan: the SBOM written and the scanner's verdict."""

    target: ScanTarget
    image_id: str
    digest: Digest | None
    """The registry manifest digest, when the image was pushed."""
    sbom: SbomFile
    output: Path | None
    """The extra copy ``--output`` asked for."""
    inventory: ImageInventory
    verdict: Verdict
    sbom_seconds: float
    seconds: float

    @property
    def components(self) -> int:
        """Components in the SBOM (packages, plus the operating system)."""
        operating_system = 1 if self.inventory.os_release else 0
        return operating_system + self.os_packages + len(self.inventory.python_packages)

    @property
    def os_packages(self) -> int:
        return len(self.inventory.deb_packages)

    @property
    def python_packages(self) -> tuple[tuple[str, str], ...]:
        """(normalised name, version) of every Python package, sorted."""
        return tuple((p.normalized_name, p.version) for p, _ in self.inventory.python_packages)

    @property
    def summary(self) -> str:
        """One line: what the SBOM lists and what the scanner said."""
        return (
            f"SBOM of {self.components} components ({self.os_packages} OS, "
            f"{len(self.python_packages)} Python) {self.sbom.digest[:19]}; "
            f"{self.verdict.status.value}: {self.verdict.message}"
        )

    def gate_error(self) -> ScanError | None:
        """The error the command ends with, when the verdict fails the scan."""
        verdict = self.verdict
        if verdict.status is VerdictStatus.FAILED and verdict.fail_on is not None:
            ids = ", ".join(f"{f.id} ({f.package})" for f in verdict.blocking[:5])
            more = f" and {len(verdict.blocking) - 5} more" if len(verdict.blocking) > 5 else ""
            return ScanError(
                f"{len(verdict.blocking)} vulnerabilities at or above "
                f"{verdict.fail_on.value.lower()} in {self.target.service} "
                f"{self.target.version}: {ids}{more}",
                hint="upgrade the packages that have fixed versions and rebuild, "
                "or set the gate with --fail-on / scan.fail_on in dockroll.yml",
            )
        if verdict.status is VerdictStatus.ERROR:
            return ScanError(
                verdict.message,
                hint="install Trivy or Grype, or drop --require-scanner for the SBOM alone"
                if verdict.scanner is None
                else "check the scanner (its database, the engine it reads from), "
                "or rerun with --scanner none for the SBOM alone",
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.target.service,
            "version": self.target.version,
            "image_id": self.image_id,
            "digest": self.digest,
            "sbom": {
                "path": str(self.sbom.path),
                "output": str(self.output) if self.output else None,
                "digest": self.sbom.digest,
                "format": "CycloneDX 1.5 JSON",
                "components": self.components,
                "os_packages": self.os_packages,
                "python_packages": [
                    {"name": name, "version": version} for name, version in self.python_packages
                ],
                "os": self.inventory.os_release.pretty_name if self.inventory.os_release else None,
            },
            "verdict": self.verdict.to_json(),
            "sbom_seconds": round(self.sbom_seconds, 2),
            "seconds": round(self.seconds, 2),
        }


def _inspect(engine: Engine, reference: str) -> ImageInfo:
    info = engine.image(reference)
    if info is None:
        raise UsageError(
            f"the engine at {engine.endpoint} has no image {reference}",
            hint="name an image the engine has (`docker images` lists them), or run "
            "`dockroll build` and scan without --image",
        )
    return info


def _pushed_digest(info: ImageInfo, repository: str) -> Digest | None:
    for repo_digest in sorted(info.repo_digests):
        name, _, digest = repo_digest.partition("@")
        if name == repository and is_digest(digest):
            return Digest(digest)
    return None


def _short(image_id_or_digest: str) -> str:
    return image_id_or_digest.removeprefix("sha256:")[:12]


def sbom_path(
    service: str, version: str, image_id_or_digest: str, root: Path | None = None
) -> Path:
    """``<state dir>/sboms/<service>/<version>-<12 hex>.cdx.json``."""
    safe_version = _UNSAFE.sub("_", version)
    return (
        (root or state_dir())
        / "sboms"
        / service
        / f"{safe_version}-{_short(image_id_or_digest)}.cdx.json"
    )


def _sbom_file(path: Path) -> SbomFile:
    content = path.read_bytes()
    return SbomFile(
        path=path,
        digest=Digest("sha256:" + hashlib.sha256(content).hexdigest()),
        size=len(content),
    )


def find_sbom(
    service: str,
    version: str,
    image_id: str,
    digest: Digest | None = None,
    root: Path | None = None,
) -> SbomFile | None:
    """The SBOM kept for that image (named by its digest or its image id), if any."""
    for key in (digest, image_id):
        if key:
            path = sbom_path(service, version, key, root)
            if path.is_file():
                return _sbom_file(path)
    return None


def _kept_sbom(path: Path, document: dict[str, Any]) -> bytes | None:
    """The SBOM already kept at ``path`` when it lists the same image and components.

    An image id names immutable content, so a rescan finds the same packages;
    keeping the first document keeps the digest the ledger may have recorded.
    """
    try:
        content = path.read_bytes()
        kept = json.loads(content)
    except (OSError, ValueError):
        return None
    same = isinstance(kept, dict) and all(
        kept.get(key) == document.get(key) for key in ("specVersion", "components")
    )
    if same and kept.get("metadata", {}).get("component") == document["metadata"]["component"]:
        return content
    return None


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def _read_filesystem(engine: Engine, image_id: str, label: str) -> ImageInventory:
    stream: Iterator[bytes] = engine.export_rootfs(image_id)
    try:
        return inventory(read_rootfs(stream))
    except tarfile.TarError as exc:
        raise ScanError(
            f"the filesystem of {label} could not be read as a tar stream: {exc}",
            hint="check the engine (`docker export` of a container of the image should work)",
        ) from None
    finally:
        # An export generator removes its container when closed, also after a failure.
        close = getattr(stream, "close", None)
        if callable(close):
            close()


def _scanner_reference(target: ScanTarget, info: ImageInfo) -> str:
    """A name scanners resolve on the engine: a tag of the image, else its id."""
    tagged = f"{target.repository}:{target.tag}" if target.tag else None
    if tagged and tagged in info.tags:
        return tagged
    return info.tags[0] if info.tags else info.image_id


def _verdict(
    *,
    target: ScanTarget,
    info: ImageInfo,
    scanner: ScannerChoice,
    fail_on: Severity | None,
    require_scanner: bool,
    docker_host: str | None,
    progress: ProgressCallback,
) -> Verdict:
    found = find_scanner(scanner)
    if found is None:
        if scanner is ScannerChoice.NONE:
            message = "not scanned for vulnerabilities (--scanner none)"
            status = VerdictStatus.ERROR if require_scanner else VerdictStatus.NOT_SCANNED
        else:
            looked = "trivy or grype" if scanner is ScannerChoice.AUTO else scanner.value
            message = f"no vulnerability scanner installed (looked for {looked} on PATH)"
            status = VerdictStatus.ERROR if require_scanner else VerdictStatus.NOT_SCANNED
        return Verdict(status=status, message=message, fail_on=fail_on)
    name, executable = found
    reference = _scanner_reference(target, info)
    progress(Progress("scan", f"scanning {reference} with {name}"))
    try:
        run = run_scanner(name, executable, reference, docker_host=docker_host)
    except ScannerFailed as exc:
        return Verdict(
            status=VerdictStatus.ERROR,
            message=f"the vulnerability scan could not run: {exc}",
            fail_on=fail_on,
            scanner=name,
        )
    blocking = run.report.at_or_above(fail_on)
    total = len(run.report.findings)
    if blocking and fail_on is not None:
        status = VerdictStatus.FAILED
        message = f"{len(blocking)} of {total} vulnerabilities at or above {fail_on.value.lower()}"
    elif fail_on is None:
        status = VerdictStatus.PASSED
        message = f"{total} vulnerabilities, no gate (--fail-on none)"
    else:
        status = VerdictStatus.PASSED
        message = f"{total} vulnerabilities, none at or above {fail_on.value.lower()}"
    return Verdict(
        status=status,
        message=message,
        fail_on=fail_on,
        scanner=name,
        report=run.report,
        blocking=blocking,
        seconds=run.seconds,
    )


def scan_target(
    engine: Engine,
    target: ScanTarget,
    *,
    scanner: ScannerChoice = ScannerChoice.AUTO,
    fail_on: Severity | None = Severity.CRITICAL,
    require_scanner: bool = False,
    output: Path | None = None,
    timestamp: datetime | None = None,
    root: Path | None = None,
    progress: ProgressCallback = discard,
) -> ScanResult:
    """Write the image's SBOM, then scan it when a scanner is installed.

    The gate is not enforced here: the result's :meth:`ScanResult.gate_error`
    says whether the scan failed, after the SBOM has been kept either way.
    """
    started = time.monotonic()
    info = _inspect(engine, target.image)
    digest = _pushed_digest(info, target.repository)
    label = f"{target.service} {target.version} ({_short(info.image_id)})"
    progress(Progress("scan", f"reading the filesystem of {label}"))
    found = _read_filesystem(engine, info.image_id, label)
    subject = ImageSubject(
        image_id=info.image_id,
        repository=target.repository,
        version=target.version,
        digest=digest,
        tag=target.tag,
    )
    document = cyclonedx_document(subject, found, timestamp=timestamp)
    path = sbom_path(target.service, target.version, digest or info.image_id, root)
    content = _kept_sbom(path, document)
    if content is None:
        content = render_document(document)
        _write(path, content)
    if output is not None:
        _write(output, content)
    sbom = _sbom_file(path)
    sbom_seconds = time.monotonic() - started
    progress(
        Progress(
            "scan",
            f"SBOM: {len(found.deb_packages)} OS and {len(found.python_packages)} Python "
            f"packages in {sbom_seconds:.1f}s → {path}",
        )
    )
    docker_host = engine.endpoint if "://" in engine.endpoint else None
    verdict = _verdict(
        target=target,
        info=info,
        scanner=scanner,
        fail_on=fail_on,
        require_scanner=require_scanner,
        docker_host=docker_host,
        progress=progress,
    )
    return ScanResult(
        target=target,
        image_id=info.image_id,
        digest=digest,
        sbom=sbom,
        output=output,
        inventory=found,
        verdict=verdict,
        sbom_seconds=sbom_seconds,
        seconds=time.monotonic() - started,
    )


def scan_image(
    config: Config,
    engine: Engine,
    record: BuildRecord,
    *,
    root: Path | None = None,
    progress: ProgressCallback = discard,
) -> ScanResult:
    """Scan a build with the settings of dockroll.yml (``scan:``); raise when the gate trips.

    The SBOM is kept before the gate is applied, so a failed scan still leaves it.
    """
    result = scan_target(
        engine,
        target_from_build(record),
        scanner=ScannerChoice(config.scan.scanner),
        fail_on=parse_fail_on(config.scan.fail_on),
        root=root,
        progress=progress,
    )
    error = result.gate_error()
    if error is not None:
        raise error
    return result


def record_scan(ledger: Ledger, result: ScanResult) -> Release | None:
    """Put the SBOM digest on the pushed release (if recorded) and audit the scan."""
    release: Release | None = None
    if result.digest is not None:
        found = ledger.find_release(result.target.service, result.digest)
        if found is not None:
            release = ledger.record_release(
                service=found.service,
                version=found.version,
                digest=found.digest,
                registry=found.registry,
                repository=found.repository,
                sbom_digest=result.sbom.digest,
            )
    verdict = result.verdict
    ledger.audit(
        "scan",
        service=result.target.service,
        target=result.target.version,
        detail={
            "image_id": result.image_id,
            "digest": result.digest,
            "sbom_digest": result.sbom.digest,
            "sbom_path": str(result.sbom.path),
            "components": result.components,
            "verdict": verdict.status.value,
            "scanner": verdict.scanner,
            "fail_on": verdict.fail_on.value if verdict.fail_on else None,
            **(
                {"counts": {k.value: v for k, v in verdict.report.counts.items() if v}}
                if verdict.report
                else {}
            ),
        },
        outcome=Outcome.FAILED
        if verdict.status in (VerdictStatus.FAILED, VerdictStatus.ERROR)
        else Outcome.OK,
    )
    return release
