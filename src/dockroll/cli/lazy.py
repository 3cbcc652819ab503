"""The root command group: every command listed from a table, its module imported on use.

``dockroll --help`` (and a mistyped command) must not import the command
modules: building each command's options means evaluating every annotation of
every command function. The help list is therefore drawn from
:data:`COMMAND_SUMMARIES`, the first paragraph of each command's help in the
order the full registration produces; ``tests/unit/test_cli_lazy.py`` proves
the table equal to the commands' own help and the output equal to the one the
fully built application prints. Running a command replaces its listing with
the real command, built from its module.
"""

from __future__ import annotations

import importlib
from typing import Any

from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMAND_SUMMARIES", "LazyCommandGroup"]

# Commands in registration order, then the sub-groups (Typer lists them so).
COMMAND_SUMMARIES: dict[str, str] = {
    "build": "Build the service's image with its computed tags, labels and build args.",
    "deploy": "Roll a pushed release out to an environment, by digest, without dropping requests.",
    "rollback": "Go back to the previous release; instant while a blue-green standby still runs.",
    "resume": "Continue an interrupted or paused rollout from its first unfinished step.",
    "promote-canary": "Move a paused canary to its next step (or to 100% with --full).",
    "abort": "Undo the environment's unfinished rollout; the previous release serves again.",
    "pause": "Hold the environment's running rollout at its current traffic split.",
    "drill": (
        "Deploy another release and roll back under load; report failed requests, time "
        "to\nrestore and p99, and record the drill in the ledger."
    ),
    "exec": "Run COMMAND in a running replica (`docker exec`, interactive on a terminal).",
    "hold": "Hold new requests at the router: they wait (not refused, not 503) until `release`.",
    "release": "Let the requests held at the router (and every new one) flow.",
    "maintenance": "Serve a maintenance page (503 with Retry-After) for every request, or stop.",
    "init": "Write a dockroll.yml from a compose file and Dockerfile; never overwrites one.",
    "releases": "List a service's recorded releases, most recently pushed first.",
    "history": "Show a service's promotions, deployments and rollbacks, newest first.",
    "logs": (
        "Every replica's output merged by time, each line prefixed with its version and replica."
    ),
    "mirror": "Copy releases to every mirror in dockroll.yml, keeping their digests and tags.",
    "pipeline": "Run the stages locally in order; the first failure stops it and names the stage.",
    "promote": (
        "Promote the same digest into an environment by registry retag, then deploy it there."
    ),
    "approve": "Approve a release for an environment that requires approval.",
    "prune": "Delete old releases of the service from the registry; a dry run unless --yes.",
    "push": "Push every tag of the last build; print the one digest they share.",
    "rebalance": "Move replicas that share a Swarm node to a less loaded one, new before old.",
    "report": (
        "DORA metrics per environment: deployment frequency, lead time for "
        "changes,\nchange failure rate and time to restore."
    ),
    "scan": (
        "Write the image's CycloneDX SBOM and gate on vulnerabilities when a scanner is installed."
    ),
    "test": "Smoke-test an image: start it, wait for health, check /version, remove it.",
    "status": "Every environment's version, digest, health, router weights and drift.",
    "audit": "Who did what, when, and how it ended; newest first.",
    "tags": "Compute tags the way docker/metadata-action does, in any CI or on a laptop.",
    "ui": (
        "Serve the dashboard: environments, live rollout timelines, history, "
        "releases,\naudit and the DORA report; controls with a token."
    ),
    "accessory": "Long-lived dependencies of an environment, never rolled with releases.",
    "analysis": "The analysis of rollouts, as recorded in the ledger.",
    "config": "Check dockroll.yml, or print its JSON schema for editors.",
    "dev": "Local infrastructure: Docker engine, registry, base images, PostgreSQL.",
    "env": "Whole environments: take one down.",
    "lock": "The deployment lock of an environment, held on its engine.",
    "router": "An environment's router (HAProxy): status, hitless reload, upgrade.",
    "edge": "The engine host's shared edge (HAProxy routing by hostname): status, hitless "
    "reload, upgrade, certificate renewal.",
}


class CommandSummary(TyperCommand):
    """A command known by name and summary only, until it is run."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, help=COMMAND_SUMMARIES[name])


class LazyCommandGroup(TyperGroup):
    """The root group: lists every command, builds a command only when it is run.

    The commands Typer registered so far keep their place; the others stand in
    as :class:`CommandSummary` until :meth:`resolve_command` picks one.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        built = dict(self.commands)
        self.commands.clear()
        for name in COMMAND_SUMMARIES:
            self.commands[name] = built.pop(name) if name in built else CommandSummary(name)
        self.commands.update(built)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, CommandSummary) and name is not None:
            command = self.commands[name] = _build(name)
        return name, command, rest


def _build(name: str) -> TyperCommand | TyperGroup:
    """Command ``name`` itself: its module imported, its options built by Typer."""
    import typer.main  # noqa: PLC0415 - Typer's builder, already loaded with typer

    from dockroll.cli.app import COMMAND_MODULES, app  # noqa: PLC0415 - app imports this module

    importlib.import_module(f"dockroll.cli.commands.{COMMAND_MODULES[name]}")
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    assert isinstance(command, TyperCommand | TyperGroup)
    return command
