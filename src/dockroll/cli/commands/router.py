"""``dockroll router status|reload|upgrade|renew``: an environment's HAProxy by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

router_app = typer.Typer(help="An environment's router (HAProxy): status, hitless reload, upgrade.")
app.add_typer(router_app, name="router")

EnvOption = Annotated[str, typer.Option("--env", "-e", help="The environment.")]
WaitOption = Annotated[
    float, typer.Option("--wait", help="Wait up to N seconds for the environment's lock.")
]


@router_app.command("status")
def status_command(ctx: typer.Context, env: EnvOption) -> None:
    """What runs: container, worker, listeners, and whether its config is current.

    Reads only: it never starts, reloads or replaces the router.
    """
    from dockroll.pipeline.router import router_status

    cli = state(ctx)
    described = router_status(cli.config, env)
    lines = [
        f"{escape(described.container)} ({escape(described.image or 'no image')})",
        f"  state     {'running' if described.running else 'not running'}"
        + (f", worker pid {described.worker}" if described.worker else ""),
        f"  listens   {escape(', '.join(described.listeners))}",
        f"  metrics   {escape(described.metrics)}",
        f"  config    {escape(described.config or 'unknown')}"
        + f" (this dockroll: {escape(described.wanted_config)})",
        f"  verdict   {escape(described.verdict)}",
    ]
    cli.output.result({"environment": env, **described.__dict__}, "\n".join(lines))


@router_app.command("reload")
def reload_command(ctx: typer.Context, env: EnvOption, wait: WaitOption = 0.0) -> None:
    """Apply this dockroll's router config without dropping a request (hitless).

    A new HAProxy worker takes over the listening sockets and the servers with
    their weights; the old one finishes its requests. Held under the
    environment's lock.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.router import reload_environment_router

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress(f"reloading the {env} router") as progress:
        done = reload_environment_router(cli.config, env, ledger, progress=progress, lock_wait=wait)
    cli.output.result(
        {"environment": env, **done.__dict__},
        f"reloaded the {escape(env)} router in {done.seconds:.1f}s: worker "
        f"{done.previous_worker} -> {done.worker}, {len(done.carried)} servers carried",
    )


@router_app.command("upgrade")
def upgrade_command(ctx: typer.Context, env: EnvOption, wait: WaitOption = 0.0) -> None:
    """Move the router to a new container (new image, listeners), new before old.

    The new HAProxy starts beside the running one and takes its listening
    sockets over; the old one finishes its requests: nothing is refused.
    Servers, weights and drains go across. Not hitless (connections refused
    for about a second) once for a router an older dockroll started and when
    the published listeners change, and in Swarm environments; it says so.
    The same on local and remote engines (ssh, TLS). Needed only when
    `dockroll router status` says so.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.router import upgrade_environment_router

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress(f"upgrading the {env} router") as progress:
        info = upgrade_environment_router(
            cli.config, env, ledger, progress=progress, lock_wait=wait
        )
    cli.output.result(
        {"environment": env, **info.__dict__},
        f"replaced the {escape(env)} router"
        + (" hitless" if info.replaced == "hitless" else "")
        + f": {escape(info.container)} ({escape(info.image)}), "
        f"{len(info.restored)} servers restored",
    )


@router_app.command("renew")
def renew_command(
    ctx: typer.Context,
    env: EnvOption,
    force: Annotated[
        bool, typer.Option("--force", help="Renew even when the certificate is not due.")
    ] = False,
) -> None:
    """Renew the ACME certificate (router.tls.acme) when it expires within 30 days.

    The running router answers the CA's HTTP-01 challenge and loads the new
    certificate through its runtime API: nothing restarts. When the CA cannot
    issue one, the old certificate keeps serving and the command exits 15.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.router import renew_environment_certificate

    cli = state(ctx)
    with (
        open_ledger() as ledger,
        cli.output.progress(f"renewing the {env} certificate") as progress,
    ):
        renewal = renew_environment_certificate(
            cli.config, env, ledger, force=force, progress=progress
        )
    until = f"{renewal.not_after:%Y-%m-%d %H:%M} UTC"
    text = (
        f"renewed the {escape(env)} certificate ({escape(renewal.reason)}): valid until {until}"
        if renewal.renewed
        else f"the {escape(env)} certificate is not due: valid until {until}"
    )
    cli.output.result(
        {
            "environment": env,
            "renewed": renewal.renewed,
            "reason": renewal.reason,
            "not_after": renewal.not_after.isoformat(),
        },
        text,
    )
