"""``dockroll scan``: an image's SBOM, then a vulnerability gate when a scanner is installed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockroll.cli.app import app, state
from dockroll.errors import UsageError
from dockroll.scanners import ScannerChoice, Severity, parse_fail_on

if TYPE_CHECKING:
    from dockroll.cli.app import CliState
    from dockroll.config import Config
    from dockroll.ledger import Release
    from dockroll.pipeline.scan import ScanResult

# By VerdictStatus value (a StrEnum, so its members look themselves up here).
_VERDICT_STYLE = {"passed": "green", "failed": "red", "not-scanned": "yellow", "error": "red"}
_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
}


def _optional_config(cli: CliState, image: str | None) -> Config | None:
    """dockroll.yml; with ``--image`` a scan works outside a service directory too."""
    return cli.config if image is None else cli.optional_config()


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    image: Annotated[
        str | None,
        typer.Option("--image", help="A local image (default: the last `dockroll build`)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the SBOM here.", dir_okay=False),
    ] = None,
    scanner: Annotated[
        ScannerChoice | None,
        typer.Option("--scanner", help="Vulnerability scanner (default: scan.scanner or auto)."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Lowest severity that fails the scan, or none (default: scan.fail_on, critical).",
        ),
    ] = None,
    require_scanner: Annotated[
        bool,
        typer.Option("--require-scanner", help="Fail (exit 14) when no scanner is installed."),
    ] = False,
) -> None:
    """Write the image's CycloneDX SBOM and gate on vulnerabilities when a scanner is installed."""
    from dockroll.engine.docker import DockerEngine
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.records import load_last_build
    from dockroll.pipeline.scan import (
        VerdictStatus,
        record_scan,
        scan_target,
        target_from_build,
        target_from_image,
    )

    cli = state(ctx)
    config = _optional_config(cli, image)
    try:
        gate = parse_fail_on(fail_on or (config.scan.fail_on if config else "critical"))
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None
    choice = scanner or ScannerChoice(config.scan.scanner if config else "auto")
    engine = DockerEngine()
    if image is not None:
        target = target_from_image(engine, image, config.service if config else None)
    elif config is not None:
        record = load_last_build(config.service, otherwise="pass --image REF to scan an image")
        target = target_from_build(record)
    else:  # pragma: no cover - _optional_config raises without --image
        raise UsageError("pass --image REF or run dockroll next to a dockroll.yml")
    with cli.output.progress(f"scanning {target.service} {target.version}") as progress:
        result = scan_target(
            engine,
            target,
            scanner=choice,
            fail_on=gate,
            require_scanner=require_scanner,
            output=output,
            progress=progress,
        )
    with open_ledger() as ledger:
        release = record_scan(ledger, result)
    if result.verdict.status is VerdictStatus.NOT_SCANNED:
        cli.output.warn(f"{result.verdict.message}; the SBOM was written, nothing was scanned")
    data = result.to_json()
    data["release_id"] = release.id if release else None
    cli.output.result(data, _human(result, release))
    error = result.gate_error()
    if error is not None:
        raise error


def _human(result: ScanResult, release: Release | None) -> str:
    verdict = result.verdict
    pythons = ", ".join(f"{name} {version}" for name, version in result.python_packages)
    os_name = (
        result.inventory.os_release.pretty_name or result.inventory.os_release.id
        if result.inventory.os_release
        else "no os-release"
    )
    lines = [
        f"[bold]{result.target.service} {result.target.version}[/] "
        f"image {result.image_id.removeprefix('sha256:')[:12]} ({os_name})",
        f"  components  {result.components}: {result.os_packages} OS packages, "
        f"{len(result.python_packages)} Python packages",
    ]
    if pythons:
        lines.append(f"  python      {pythons}")
    lines.append(f"  sbom        {result.sbom.path} (CycloneDX 1.5)")
    if result.output:
        lines.append(f"  copy        {result.output}")
    if release is None:
        where = "recorded on the release when it is pushed"
    elif release.sbom_digest == result.sbom.digest:
        where = f"recorded on release {release.id}"
    else:
        where = f"release {release.id} keeps {str(release.sbom_digest)[:19]}… from an earlier scan"
    lines.append(f"  digest      {result.sbom.digest} ({where})")
    style = _VERDICT_STYLE[verdict.status]
    lines.append(f"  verdict     [{style}]{verdict.status.value}[/]: {verdict.message}")
    report = verdict.report
    if report is not None:
        counts = "  ".join(
            f"{severity.value.lower()} {count}" for severity, count in report.counts.items()
        )
        lines.append(f"  found       {counts}")
        for finding in report.top(10):
            severity_style = _SEVERITY_STYLE.get(finding.severity, "dim")
            fixed = f" → {finding.fixed}" if finding.fixed else " (no fix yet)"
            lines.append(
                f"    [{severity_style}]{finding.severity.value:<10}[/] {finding.id:<20} "
                f"{finding.package} {finding.installed}{fixed}"
            )
        if len(report.findings) > 10:
            lines.append(f"    … {len(report.findings) - 10} more in --json")
    lines.append(f"  took        {result.seconds:.1f}s (SBOM {result.sbom_seconds:.1f}s)")
    return "\n".join(lines)
