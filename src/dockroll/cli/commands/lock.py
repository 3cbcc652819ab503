"""``dockroll lock acquire|release|status``: the environment's deployment lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError

if TYPE_CHECKING:
    from dockroll.lock import EnvironmentLock

lock_app = typer.Typer(help="The deployment lock of an environment, held on its engine.")
app.add_typer(lock_app, name="lock")

EnvOption = Annotated[str, typer.Option("--env", "-e", help="The environment.")]


def _lock(ctx: typer.Context, env: str) -> EnvironmentLock:
    # The lock lives on the engine: reading or taking it leaves the router alone.
    from dockroll.pipeline.deploy import open_lock

    return open_lock(state(ctx).config, env)


@lock_app.command("acquire")
def acquire_command(
    ctx: typer.Context,
    env: EnvOption,
    reason: Annotated[str, typer.Option("--reason", help="Why, shown to others.")] = "",
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl",
            help="Let it expire after this long, e.g. 30m, 2h (default: held until released).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Wait up to N seconds for it.")] = 0.0,
) -> None:
    """Take the lock by hand (a freeze): deploys, promotes and rollbacks then wait or fail.

    It holds until `dockroll lock release` (or --ttl passes), whichever machine
    or process then deploys.
    """
    from dockroll.durations import parse_duration
    from dockroll.ledger import who

    cli = state(ctx)
    seconds: float | None = None
    if ttl is not None:
        try:
            seconds = parse_duration(ttl)
        except ValueError as exc:
            raise UsageError(f"--ttl: {exc}") from None
        if seconds <= 0:
            raise UsageError(f"--ttl must be longer than 0s, not {ttl!r}")
    info = _lock(ctx, env).acquire(who(), reason=reason, operation="manual", ttl=seconds, wait=wait)
    cli.output.result(info.to_json(), f"[green]locked[/] {escape(env)}: {escape(info.describe())}")


@lock_app.command("release")
def release_command(
    ctx: typer.Context,
    env: EnvOption,
    force: Annotated[
        bool, typer.Option("--force", help="Release someone else's lock (recorded).")
    ] = False,
) -> None:
    """Give the lock back (only its holder may, unless --force)."""
    from dockroll.ledger import open_ledger, who

    cli = state(ctx)
    released = _lock(ctx, env).release(who(), force=force)
    if released is None:
        cli.output.result({"environment": env, "released": False}, f"{escape(env)} was not locked")
        return
    with open_ledger() as ledger:
        ledger.audit(
            "lock-release",
            service=cli.config.service,
            env=env,
            detail={"holder": released.holder, "forced": force},
        )
    cli.output.result(
        {"environment": env, "released": True, "holder": released.holder},
        f"released the {escape(env)} lock held by {escape(released.holder)}",
    )


@lock_app.command("status")
def status_command(ctx: typer.Context, env: EnvOption) -> None:
    """Who holds the lock, why, since when and until when."""
    cli = state(ctx)
    info = _lock(ctx, env).status()
    if info is None:
        cli.output.result({"environment": env, "locked": False}, f"{escape(env)} is not locked")
        return
    cli.output.result(
        {**info.to_json(), "locked": True, "expired": info.expired()},
        escape(info.describe()) + (" [yellow](expired)[/]" if info.expired() else ""),
    )
