"""Promotion rules and gates, in one place, as pure functions over plain data.

A promotion asks: may this digest move into that environment now? Each gate
gives a :class:`Verdict` that names itself and, when it refuses, how to satisfy
it. Callers gather the facts (ledger, registry, clock) and decide nothing
themselves.

Gates, in the order they are reported:

``order``     the release comes from the environment right before the target
``source``    that environment holds this digest now (prod only takes what staging has)
``immutable`` no moving reference (``latest``, environment tags) where it is not allowed
``approval``  an approval exists, from someone else unless self-approval is allowed
``soak``      the release ran long enough in the source environment
``window``    the target takes changes at this time, unless overridden with a reason
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dockroll.config import Config, DeployWindow
from dockroll.errors import UsageError
from dockroll.refs import Digest

__all__ = [
    "ALWAYS_MUTABLE_TAGS",
    "Approval",
    "Candidate",
    "Decision",
    "PromotionFacts",
    "Verdict",
    "environment_order",
    "evaluate_promotion",
    "in_window",
    "mutable_tags",
    "source_environment",
]

ALWAYS_MUTABLE_TAGS = frozenset({"latest", "edge"})
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Candidate:
    """The release being promoted, after its reference was resolved to a digest."""

    service: str
    version: str
    digest: Digest
    reference: str
    """What the user asked for: a version, a tag or a digest."""


@dataclass(frozen=True)
class Approval:
    by: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class PromotionFacts:
    """What the caller looked up for one promotion."""

    promoter: str
    now: datetime
    source_digest: Digest | None = None
    """The digest the source environment holds now (None: nothing yet)."""
    source_since: datetime | None = None
    """When that digest arrived in the source environment."""
    approvals: Sequence[Approval] = ()
    window_override_reason: str | None = None


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    detail: str
    remedy: str = ""

    def __str__(self) -> str:
        mark = "pass" if self.passed else "REFUSED"
        text = f"[{mark}] {self.gate}: {self.detail}"
        return f"{text} — {self.remedy}" if self.remedy and not self.passed else text


@dataclass(frozen=True)
class Decision:
    target: str
    source: str | None
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        return all(verdict.passed for verdict in self.verdicts)

    @property
    def refusals(self) -> tuple[Verdict, ...]:
        return tuple(verdict for verdict in self.verdicts if not verdict.passed)


def environment_order(config: Config) -> list[str]:
    """Environments from first to last along their ``promote_from`` links.

    Loading the config already refused ``promote_from`` cycles, so every command
    refuses the same file with the same message.
    """
    return config.promotion_order()


def source_environment(config: Config, target: str, requested: str | None) -> str | None:
    """Where a promotion into ``target`` comes from; refuses to skip an environment."""
    expected = config.environment(target).promote_from
    if requested is None or requested == expected:
        return expected
    config.environment(requested)
    if expected is None:
        raise UsageError(
            f"{target} is the first environment: releases come to it from the registry, "
            f"not from {requested}",
            hint=f"drop --from, e.g. `dockroll promote VERSION --to {target}`",
        )
    raise UsageError(
        f"{target} takes releases only from {expected}, not from {requested}: "
        "environments cannot be skipped",
        hint=f"promote to {expected} first, then `--to {target}`",
    )


def mutable_tags(config: Config) -> frozenset[str]:
    """Tags that move between releases: ``latest``, ``edge``, environment names and tags."""
    names: set[str] = set(ALWAYS_MUTABLE_TAGS)
    for name, env in config.environments.items():
        names.add(name)
        names.update(tag for tag in env.tags if "{{" not in tag)
    return frozenset(names)


def in_window(window: DeployWindow, now: datetime) -> bool:
    """Whether ``now`` (timezone-aware) falls inside the window, in the window's zone."""
    local = now.astimezone(ZoneInfo(window.timezone))
    day = _WEEKDAYS[local.weekday()]
    clock = local.strftime("%H:%M")
    return day in window.days and window.start <= clock < window.end


def _human(seconds: float) -> str:
    delta = timedelta(seconds=round(seconds))
    return str(delta)


def evaluate_promotion(
    config: Config, target: str, candidate: Candidate, facts: PromotionFacts, source: str | None
) -> Decision:
    """Every gate's verdict for promoting ``candidate`` from ``source`` into ``target``."""
    env = config.environment(target)
    verdicts: list[Verdict] = []

    expected = env.promote_from
    verdicts.append(
        Verdict("order", True, f"{target} takes releases from {expected or 'the registry'}")
        if source == expected
        else Verdict(
            "order",
            False,
            f"{target} takes releases from {expected or 'the registry'}, not {source}",
            f"promote to {expected} first" if expected else "drop --from",
        )
    )

    if source is not None:
        if facts.source_digest == candidate.digest:
            verdicts.append(Verdict("source", True, f"{source} runs {candidate.digest[:19]}"))
        else:
            holds = facts.source_digest[:19] if facts.source_digest else "nothing"
            verdicts.append(
                Verdict(
                    "source",
                    False,
                    f"{source} holds {holds}, not {candidate.version} ({candidate.digest[:19]})",
                    f"promote {candidate.version} to {source} first",
                )
            )

    reference_tag = candidate.reference.rsplit(":", 1)[-1] if "@" not in candidate.reference else ""
    if reference_tag in mutable_tags(config) and not env.allow_mutable_tags:
        verdicts.append(
            Verdict(
                "immutable",
                False,
                f"{candidate.reference!r} is a moving tag and {target} takes only fixed "
                f"references (it points at {candidate.digest} now)",
                f"promote by version or digest, e.g. `dockroll promote {candidate.digest} "
                f"--to {target}`",
            )
        )
    else:
        verdicts.append(Verdict("immutable", True, f"promoting the digest {candidate.digest[:19]}"))

    if env.requires_approval:
        valid = [
            approval
            for approval in facts.approvals
            if env.allow_self_approval or approval.by != facts.promoter
        ]
        if valid:
            names = ", ".join(sorted({approval.by for approval in valid}))
            verdicts.append(Verdict("approval", True, f"approved by {names}"))
        elif facts.approvals:
            verdicts.append(
                Verdict(
                    "approval",
                    False,
                    f"the only approval is by {facts.promoter}, who is promoting it, "
                    f"and {target} does not allow self-approval",
                    f"someone else runs `dockroll approve {candidate.version} --env {target}`",
                )
            )
        else:
            verdicts.append(
                Verdict(
                    "approval",
                    False,
                    f"{target} requires an approval and {candidate.version} has none",
                    f"`dockroll approve {candidate.version} --env {target} --by NAME`",
                )
            )

    if env.min_soak > 0 and source is not None:
        if facts.source_since is None or facts.source_digest != candidate.digest:
            verdicts.append(
                Verdict(
                    "soak",
                    False,
                    f"{candidate.version} has not run in {source}",
                    f"promote it to {source} and let it run {_human(env.min_soak)}",
                )
            )
        else:
            soaked = (facts.now - facts.source_since).total_seconds()
            if soaked >= env.min_soak:
                verdicts.append(Verdict("soak", True, f"ran {_human(soaked)} in {source}"))
            else:
                verdicts.append(
                    Verdict(
                        "soak",
                        False,
                        f"ran {_human(soaked)} in {source}; {target} needs {_human(env.min_soak)}",
                        f"wait {_human(env.min_soak - soaked)} more",
                    )
                )

    if env.window is not None:
        window = env.window
        described = f"{','.join(window.days)} {window.start}-{window.end} {window.timezone}"
        if in_window(window, facts.now):
            verdicts.append(Verdict("window", True, f"inside {described}"))
        elif facts.window_override_reason:
            verdicts.append(
                Verdict(
                    "window",
                    True,
                    f"outside {described}, overridden: {facts.window_override_reason}",
                )
            )
        else:
            verdicts.append(
                Verdict(
                    "window",
                    False,
                    f"{target} takes changes {described} only",
                    "wait for the window, or pass --override-window --reason TEXT",
                )
            )

    return Decision(target=target, source=source, verdicts=tuple(verdicts))
