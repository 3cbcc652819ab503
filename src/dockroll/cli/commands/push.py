"""``dockroll push``: every tag of the last build to the registry."""

from __future__ import annotations

import typer

from dockroll.cli.app import app, state
from dockroll.cli.commands.mirror import auto_mirror


@app.command("push")
def push_command(ctx: typer.Context) -> None:
    """Push every tag of the last build; print the one digest they share."""
    from dockroll.engine.docker import DockerEngine
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.push import push_release, record_push, registry_auth_from_env
    from dockroll.pipeline.records import load_last_build
    from dockroll.pipeline.scan import find_sbom

    cli = state(ctx)
    config = cli.config
    record = load_last_build(config.service)
    with cli.output.progress(f"pushing {config.service} {record.version}") as progress:
        result = push_release(
            record, DockerEngine(), auth=registry_auth_from_env(), progress=progress
        )
    sbom = find_sbom(config.service, record.version, record.image_id, result.digest)
    with open_ledger() as ledger:
        release = record_push(ledger, record, result, sbom_digest=sbom.digest if sbom else None)
        ledger.audit(
            "push",
            service=config.service,
            target=record.version,
            detail={"digest": result.digest, "tags": list(result.references)},
        )
    mirrors = auto_mirror(cli, config, release)
    lines = [f"[green]pushed[/] {len(result.references)} tags in {result.seconds:.1f}s"]
    lines += [f"  {ref}" for ref in result.references]
    lines.append(f"  digest  {result.digest}")
    lines.append(f"  deploy by digest: {result.pinned}")
    cli.output.result(
        {
            "service": config.service,
            "version": record.version,
            "digest": result.digest,
            "references": list(result.references),
            "pinned": result.pinned,
            "seconds": round(result.seconds, 2),
            "release_id": release.id,
            "sbom_digest": release.sbom_digest,
            **({"mirrors": mirrors} if mirrors is not None else {}),
        },
        "\n".join(lines),
    )
