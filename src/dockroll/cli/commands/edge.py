"""``dockroll edge status|reload|upgrade|renew``: the engine host's shared edge by hand."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

edge_app = typer.Typer(
    help="The engine host's shared edge (HAProxy routing by hostname): status, hitless "
    "reload, upgrade, certificate renewal."
)
app.add_typer(edge_app, name="edge")

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help="An environment with hosts (its engine's edge); the first one."
    ),
]


@edge_app.command("status")
def status_command(ctx: typer.Context, env: EnvOption = None) -> None:
    """What the edge serves: hostnames and their owners, listeners, certificates, config.

    Reads only: it never starts, reloads or replaces the edge.
    """
    from dockroll.pipeline.edge import edge_status

    cli = state(ctx)
    described = edge_status(cli.config, env)
    lines = [
        f"{escape(described.container)} ({escape(described.image or 'no image')})",
        f"  state     {'running' if described.running else 'not running'}"
        + (f", worker pid {described.worker}" if described.worker else ""),
        f"  listens   {escape(', '.join(described.listeners) or 'nothing')}",
        f"  config    {escape(described.config or 'unknown')}"
        + f" (this dockroll: {escape(described.wanted_config)})",
        f"  verdict   {escape(described.verdict)}",
    ]
    certificates = {c.hostname: c for c in described.certificates}
    if described.routes:
        lines.append("  hostnames")
    for route in described.routes:
        cert = certificates.get(route.hostname.partition("/")[0])
        served = f", certificate until {cert.not_after}" if cert else ", no certificate"
        lines.append(f"    {escape(route.hostname)} -> {escape(route.owner)}{escape(served)}")
    data: dict[str, Any] = {
        **described.__dict__,
        "routes": [route.__dict__ for route in described.routes],
        "certificates": [cert.__dict__ for cert in described.certificates],
    }
    cli.output.result(data, "\n".join(lines))


@edge_app.command("reload")
def reload_command(ctx: typer.Context, env: EnvOption = None) -> None:
    """Apply this dockroll's edge config without dropping a request (hitless).

    A new HAProxy worker takes over the listening sockets; routes and
    certificates go across; the old worker finishes its requests.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.edge import reload_edge

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress("reloading the edge") as progress:
        done = reload_edge(cli.config, env, ledger, progress=progress)
    cli.output.result(
        done.__dict__,
        f"reloaded the edge in {done.seconds:.1f}s: worker {done.previous_worker} -> {done.worker}",
    )


@edge_app.command("upgrade")
def upgrade_command(ctx: typer.Context, env: EnvOption = None) -> None:
    """Move the edge to a new container (new listeners or image), dropping nothing.

    The new container takes the listening sockets over before the old one
    finishes its requests and stops; routes and certificates go across. An edge
    an older dockroll started is restarted once (it says so). Needed only when
    `dockroll edge status` says so, or for a new HAProxy image; nothing else
    ever replaces the edge.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.edge import upgrade_edge

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress("upgrading the edge") as progress:
        done, described = upgrade_edge(cli.config, env, ledger, progress=progress)
    how = {
        "hitless": "hitless",
        "restart": "one-time restart: the running edge predates hitless upgrades",
        "start": "no edge ran",
    }.get(done.how, done.how)
    cli.output.result(
        {"replaced": True, "how": done.how, "seconds": round(done.seconds, 3),
         "container_id": described.container_id, "image": described.image,
         "listeners": list(described.listeners)},
        f"replaced the edge in {done.seconds:.1f}s ({how}): {escape(described.container)} "
        f"({escape(described.image)}) listening on {escape(', '.join(described.listeners))}",
    )  # fmt: skip


@edge_app.command("renew")
def renew_command(
    ctx: typer.Context,
    env: EnvOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Renew even when a certificate is not due.")
    ] = False,
) -> None:
    """Renew the hostnames' ACME certificates (edge.tls.acme) expiring within 30 days.

    The edge answers the CA's HTTP-01 challenge and loads each certificate
    through its runtime API: nothing restarts. When the CA cannot issue one,
    the old certificate keeps serving and the command exits 15.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.edge import renew_edge_certificates

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress("renewing edge certificates") as progress:
        done = renew_edge_certificates(cli.config, env, ledger, force=force, progress=progress)
    lines = [
        f"{escape(item.hostname)}: "
        + (f"renewed ({escape(item.renewal.reason)})" if item.renewal.renewed else "not due")
        + f", valid until {item.renewal.not_after:%Y-%m-%d %H:%M} UTC"
        for item in done
    ]
    cli.output.result(
        {
            "certificates": [
                {
                    "hostname": item.hostname,
                    "renewed": item.renewal.renewed,
                    "reason": item.renewal.reason,
                    "not_after": item.renewal.not_after.isoformat(),
                }
                for item in done
            ]
        },
        "\n".join(lines),
    )
