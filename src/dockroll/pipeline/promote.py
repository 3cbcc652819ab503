"""Promotion: the same digest moves into the next environment, by registry retag.

``plan_promotion`` resolves what the user named to a digest, checks the ledger
and the registry agree on it, gathers the facts the policy gates need and asks
them; ``execute_promotion`` writes the environment tags (manifest PUTs only,
none when they already point there) and records the promotion. Nothing is
rebuilt and no blob moves.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dockroll.config import Config
from dockroll.errors import (
    DigestMismatch,
    PolicyRefusal,
    UsageError,
)
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import (
    DeploymentStatus,
    Ledger,
    Outcome,
    Promotion,
    PromotionStatus,
    Release,
)
from dockroll.policy import Approval, Candidate, Decision, PromotionFacts, evaluate_promotion
from dockroll.policy import source_environment as policy_source
from dockroll.refs import Digest, ImageRef, is_digest, parse_reference, valid_tag
from dockroll.registry import RegistryClient, retag

__all__ = [
    "PromotionPlan",
    "PromotionResult",
    "environment_tags",
    "execute_promotion",
    "plan_promotion",
    "release_notes",
    "resolve_release",
]


@dataclass(frozen=True)
class PromotionPlan:
    """What a promotion would do, and whether the gates allow it."""

    release: Release
    reference: str
    source: str | None
    target: str
    tags: tuple[str, ...]
    """The environment tags of the target, expanded for this release."""
    pending: tuple[str, ...]
    """Those tags that do not point at the release's digest yet."""
    already_current: bool
    """The ledger already records this digest as the target's current release."""
    decision: Decision
    notes: str | None
    reason: str | None

    @property
    def nothing_to_do(self) -> bool:
        return not self.pending and self.already_current


@dataclass(frozen=True)
class PromotionResult:
    plan: PromotionPlan
    written: tuple[str, ...]
    bytes_sent: int
    seconds: float
    promotion: Promotion | None
    """The ledger record; None when nothing needed doing."""


def environment_tags(config: Config, target: str, release: Release) -> tuple[str, ...]:
    """The target's configured tags with ``{{version}}`` and ``{{sha}}`` filled in."""
    tags = []
    short_sha = (release.git_sha or "")[:7]
    for template in config.environment(target).tags:
        tag = template.replace("{{version}}", release.version).replace("{{sha}}", short_sha)
        if not valid_tag(tag):
            raise UsageError(
                f"environments.{target}.tags: {template!r} gives {tag!r}, which is not a valid tag",
                hint="a tag holds letters, digits, '_', '.', '-' (at most 128, not led by . or -)",
            )
        tags.append(tag)
    return tuple(dict.fromkeys(tags))


def resolve_release(
    config: Config, ledger: Ledger, client: RegistryClient, reference: str
) -> Release:
    """The recorded release a version, tag or digest names, checked against the registry."""
    repo = parse_reference(config.image)
    service = config.service
    text = reference.strip()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    elif "/" in text or (":" in text and not is_digest(text)):
        text = parse_reference(text).tag or text

    if is_digest(text):
        from dockroll.pipeline.deploy import adopt_release  # noqa: PLC0415

        release = ledger.find_release(service, text) or adopt_release(config, ledger, text)
        if release is None:
            raise _unknown(ledger, service, reference, "no release has this digest")
        if client.manifest_digest(repo.repository, text) is None:
            raise UsageError(
                f"{reference}: the ledger knows this digest, but {repo.name} no longer has it",
                hint="it was deleted from the registry (pruned?); push the release again",
            )
        return release

    in_registry = client.manifest_digest(repo.repository, text)
    release = ledger.find_release(service, text)
    if release is not None:
        if in_registry is not None and in_registry != release.digest:
            raise DigestMismatch(
                f"{repo.name}:{text} points at {in_registry}, but {release.version} was "
                f"pushed as {release.digest}: the tag was moved after the push",
                hint=f"promote by digest (`dockroll promote {release.digest} …`) or find out "
                "who re-pushed the tag (`dockroll history`)",
            )
        if in_registry is None and client.manifest_digest(repo.repository, release.digest) is None:
            raise UsageError(
                f"{release.version} is recorded as {release.digest}, "
                f"but {repo.name} has neither the tag nor the digest",
                hint="it was deleted from the registry; push the release again",
            )
        return release
    if in_registry is not None:
        by_digest = ledger.find_release(service, in_registry)
        if by_digest is not None:
            return by_digest
        # Pushed by another service of the same repository: the same image, adopted.
        from dockroll.pipeline.deploy import adopt_release  # noqa: PLC0415

        adopted = adopt_release(config, ledger, in_registry)
        if adopted is not None:
            return adopted
        raise _unknown(
            ledger,
            service,
            reference,
            f"{repo.name}:{text} exists ({in_registry[:19]}) but was not pushed by dockroll",
        )
    raise _unknown(ledger, service, reference, f"neither the ledger nor {repo.name} has it")


def _unknown(ledger: Ledger, service: str, reference: str, why: str) -> UsageError:
    recent = [release.version for release in ledger.releases(service, limit=5)]
    known = ", ".join(recent) if recent else "none yet: `dockroll push` records them"
    return UsageError(
        f"unknown release {reference!r} of {service}: {why}",
        hint=f"recent releases: {known} (`dockroll releases` lists all)",
    )


def release_notes(root: Path, since_sha: str | None, until_sha: str | None) -> str | None:
    """One line per commit between two releases, from git; None when git cannot tell."""
    if not until_sha:
        return None
    span = f"{since_sha}..{until_sha}" if since_sha and since_sha != until_sha else until_sha
    args = ["git", "-C", str(root), "log", "--no-merges", "--format=%h %s (%an)", span]
    if not since_sha:
        args.insert(4, "--max-count=1")
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _source_arrival(
    ledger: Ledger, service: str, source: str
) -> tuple[Digest | None, datetime | None]:
    current = ledger.current_release(service, source)
    if current is None:
        return None, None
    times: list[datetime] = []
    replaced: list[datetime] = []
    for promotion in ledger.promotions(service, source):
        if promotion.digest == current.digest:
            times.append(promotion.promoted_at)
        elif promotion.status == PromotionStatus.SUCCEEDED:
            replaced.append(promotion.promoted_at)
    for deployment in ledger.deployments(service, source):
        at = deployment.finished_at or deployment.started_at
        if deployment.digest == current.digest:
            times.append(at)
        elif deployment.status == DeploymentStatus.SUCCEEDED:
            replaced.append(at)
    if replaced:
        # Soak counts the current stay only: a release that left and came back starts over.
        times = [t for t in times if t >= max(replaced)]
    return current.digest, (min(times) if times else None)


def plan_promotion(
    config: Config,
    ledger: Ledger,
    client: RegistryClient,
    reference: str,
    target: str,
    *,
    source: str | None = None,
    notes: str | None = None,
    reason: str | None = None,
    override_window: bool = False,
    promoter: str | None = None,
    now: datetime | None = None,
) -> PromotionPlan:
    """Resolve, look up and judge a promotion; changes nothing."""
    from_env = policy_source(config, target, source)
    if override_window and not reason:
        raise UsageError(
            "--override-window needs --reason TEXT: overrides are recorded with their reason"
        )
    release = resolve_release(config, ledger, client, reference)
    promoter = promoter or ledger.who()
    now = now or datetime.now(UTC)
    source_digest, source_since = (None, None)
    if from_env is not None:
        source_digest, source_since = _source_arrival(ledger, config.service, from_env)
    facts = PromotionFacts(
        promoter=promoter,
        now=now,
        source_digest=source_digest,
        source_since=source_since,
        approvals=[
            Approval(by=a.approved_by, at=a.approved_at, note=a.note or "")
            for a in ledger.approvals(config.service, release.version, target)
            # A version pushed again is other content: its old approvals do not carry over.
            if a.digest == release.digest
        ],
        window_override_reason=reason if override_window else None,
    )
    candidate = Candidate(
        service=config.service,
        version=release.version,
        digest=release.digest,
        reference=reference,
    )
    decision = evaluate_promotion(config, target, candidate, facts, from_env)
    repo = parse_reference(config.image)
    tags = environment_tags(config, target, release)
    pending = tuple(
        tag for tag in tags if client.manifest_digest(repo.repository, tag) != release.digest
    )
    current = ledger.current_release(config.service, target)
    if notes is None:
        notes = release_notes(config.root, current.git_sha if current else None, release.git_sha)
    return PromotionPlan(
        release=release,
        reference=reference,
        source=from_env,
        target=target,
        tags=tags,
        pending=pending,
        already_current=current is not None and current.digest == release.digest,
        decision=decision,
        notes=notes,
        reason=reason,
    )


def refusal(plan: PromotionPlan, *, dry_run: bool = False) -> PolicyRefusal:
    """The error for a plan the gates refused, listing every refusing gate."""
    lines = [str(verdict) for verdict in plan.decision.refusals]
    return PolicyRefusal(
        f"promotion of {plan.release.version} to {plan.target} refused:\n  " + "\n  ".join(lines),
        hint=None if dry_run else "`--dry-run` shows every gate's verdict",
    )


def refuse_denied(plan: PromotionPlan, ledger: Ledger, service: str) -> None:
    if plan.decision.allowed:
        return
    ledger.audit(
        "promote",
        service=service,
        env=plan.target,
        target=plan.release.version,
        outcome=Outcome.DENIED,
        detail={"refusals": [str(v) for v in plan.decision.refusals]},
    )
    raise refusal(plan)


def write_tags(
    plan: PromotionPlan, client: RegistryClient, progress: ProgressCallback
) -> tuple[list[str], int]:
    source = ImageRef(
        registry=plan.release.registry,
        repository=plan.release.repository,
        digest=plan.release.digest,
    )
    written: list[str] = []
    sent = 0
    for tag in plan.tags:
        result = retag(client, source, tag, progress=progress)
        sent += result.bytes_sent
        if result.written:
            written.append(tag)
    return written, sent


def record_promotion(plan: PromotionPlan, ledger: Ledger) -> Promotion:
    return ledger.record_promotion(
        plan.release,
        to_env=plan.target,
        from_env=plan.source,
        tags=plan.tags,
        reason=plan.reason,
        notes=plan.notes,
    )


def audit_promotion(
    plan: PromotionPlan,
    ledger: Ledger,
    service: str,
    written: list[str],
    *,
    error: str | None = None,
) -> None:
    detail: dict[str, object] = {
        "digest": plan.release.digest,
        "tags_written": written,
        "from": plan.source,
        # every gate's verdict, so an overridden window shows with its reason
        "gates": [str(verdict) for verdict in plan.decision.verdicts],
    }
    if error is not None:
        detail["error"] = error
    ledger.audit(
        "promote",
        service=service,
        env=plan.target,
        target=f"{plan.release.version} → {plan.target}",
        outcome=Outcome.OK if error is None else Outcome.FAILED,
        detail=detail,
    )


def execute_promotion(
    plan: PromotionPlan,
    client: RegistryClient,
    ledger: Ledger,
    config: Config,
    *,
    progress: ProgressCallback = discard,
) -> PromotionResult:
    """Write the target's tags and record the promotion, deploying nothing.

    This is the whole promotion of an environment fed by its registry tag
    alone; :func:`promote_and_deploy` is the one for environments dockroll
    runs. Refuses when a gate said no.
    """
    refuse_denied(plan, ledger, config.service)
    started = time.monotonic()
    if plan.nothing_to_do:
        progress(Progress("promote", f"{plan.target} already has {plan.release.digest[:19]}"))
        return PromotionResult(plan=plan, written=(), bytes_sent=0, seconds=0.0, promotion=None)
    written, sent = write_tags(plan, client, progress)
    promotion = record_promotion(plan, ledger)
    audit_promotion(plan, ledger, config.service, written)
    return PromotionResult(
        plan=plan,
        written=tuple(written),
        bytes_sent=sent,
        seconds=time.monotonic() - started,
        promotion=promotion,
    )
