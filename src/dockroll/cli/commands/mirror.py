"""``dockroll mirror``: copy releases to the backup registries, digest for digest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import RegistryError, UsageError
from dockroll.refs import parse_reference

if TYPE_CHECKING:
    from dockroll.cli.app import CliState
    from dockroll.config import Config
    from dockroll.ledger import Ledger, Release
    from dockroll.pipeline.mirror import MirrorReport, MirrorResult

__all__ = ["auto_mirror", "mirror_command"]

_STATUS = {
    "copied": "[green]copied[/]",
    "up_to_date": "up to date",
    "missing_in_primary": "[yellow]not in the primary[/]",
    "failed": "[red]FAILED[/]",
}


def _report_json(report: MirrorReport) -> dict[str, Any]:
    return {
        "registry": report.registry,
        "repository": report.repository,
        "ok": report.ok,
        "error": report.error,
        "releases": [
            {
                "version": r.version,
                "digest": r.digest,
                "status": r.status,
                "tags": list(r.tags),
                "written": list(r.written),
                "bytes_sent": r.bytes_sent,
                "message": r.message or None,
            }
            for r in report.releases
        ],
    }


def _report_lines(report: MirrorReport) -> list[str]:
    if report.error is not None:
        return [f"[red]FAILED[/] {escape(report.name)}: {escape(report.error)}"]
    lines = [f"{'[green]ok[/]' if report.ok else '[red]FAILED[/]'} {escape(report.name)}"]
    for r in report.releases:
        tags = ", ".join(r.tags) or ("-" if r.status == "missing_in_primary" else "by digest only")
        extra = f" — {escape(r.message)}" if r.message else ""
        sent = f", {r.bytes_sent} bytes sent" if r.written else ""
        status = _STATUS[r.status]
        lines.append(
            f"  {escape(r.version)} {r.digest[:19]} {status} ({escape(tags)}{sent}){extra}"
        )
    return lines


def auto_mirror(cli: CliState, config: Config, release: Release) -> list[dict[str, Any]] | None:
    """After a push or promotion: mirror ``release`` when configured; failures only warn.

    Returns the per-mirror JSON for the command's result, or None when mirroring is off.
    """
    from dockroll.pipeline.mirror import mirror_releases
    from dockroll.registry import RegistryClient

    if not config.mirrors or not config.mirror_on_push:
        return None
    host = parse_reference(config.image).registry
    try:
        with (
            RegistryClient(host) as client,
            cli.output.progress("mirroring") as progress,
        ):
            result = mirror_releases(config, client, [release], progress=progress)
    except RegistryError as exc:
        cli.output.warn(f"mirroring {escape(release.version)} failed: {escape(str(exc))}")
        return [{"ok": False, "error": str(exc)}]
    for report in result.failed:
        why = report.error or "; ".join(r.message for r in report.releases if r.message)
        cli.output.warn(
            f"mirror {escape(report.name)} did not get {escape(release.version)}: {escape(why)} "
            "(the primary has it; `dockroll mirror` retries)"
        )
    for report in result.reports:
        if report.ok:
            cli.output.line(f"  mirrored to {escape(report.name)}")
    return [_report_json(report) for report in result.reports]


@app.command("mirror")
def mirror_command(
    ctx: typer.Context,
    references: Annotated[
        list[str] | None,
        typer.Argument(
            help="Versions, tags or digests to mirror (default: what each environment holds "
            "and the newest pushed release).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Mirror every recorded release the primary still has.")
    ] = False,
) -> None:
    """Copy releases to every mirror in dockroll.yml, keeping their digests and tags.

    Tags copied are those pointing at the release in the primary: its version
    tags and environment tags. A release already on a mirror is left as is.
    Every mirror is tried; exit code 6 when any mirror failed (the summary
    still lists what each mirror got).
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.mirror import mirror_releases, select_releases
    from dockroll.registry import RegistryClient

    cli = state(ctx)
    config = cli.config
    if not config.mirrors:
        raise UsageError(
            "no mirrors in dockroll.yml",
            hint="add `mirrors: [{registry: HOST:PORT}]` to dockroll.yml",
        )
    host = parse_reference(config.image).registry
    with open_ledger() as ledger, RegistryClient(host) as client:
        releases = select_releases(config, ledger, client, references or (), every=every)
        if not releases:
            raise UsageError(
                f"no releases of {config.service} recorded yet",
                hint="`dockroll push` records one",
            )
        with cli.output.progress(f"mirroring {len(releases)} releases") as progress:
            result = mirror_releases(config, client, releases, progress=progress)
        _audit(ledger, config, result)
    lines = []
    for report in result.reports:
        lines += _report_lines(report)
    cli.output.result(
        {
            "service": config.service,
            "ok": result.ok,
            "releases": [r.version for r in releases],
            "mirrors": [_report_json(report) for report in result.reports],
        },
        "\n".join(lines),
    )
    if not result.ok:
        names = ", ".join(report.name for report in result.failed)
        raise RegistryError(
            f"{len(result.failed)} of {len(result.reports)} mirrors failed: {names}",
            hint="start the mirror or fix its entry in dockroll.yml, then run `dockroll mirror` "
            "again (what is there already is skipped)",
        )


def _audit(ledger: Ledger, config: Config, result: MirrorResult) -> None:
    from dockroll.ledger import Outcome

    for report in result.reports:
        written = [r.version for r in report.releases if r.written]
        if written or not report.ok:
            ledger.audit(
                "mirror",
                service=config.service,
                target=report.name,
                outcome=Outcome.OK if report.ok else Outcome.FAILED,
                detail={"copied": written, "error": report.error},
            )
