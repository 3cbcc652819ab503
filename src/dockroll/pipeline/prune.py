"""Retention: delete old releases from the registry, never one that is in use.

``plan_prune`` is pure: given the service's releases (from the ledger), what
each environment holds and which tags point where in the registry, it decides
per release whether it stays and why. ``registry_view`` and ``held_digests``
gather those facts; ``execute_prune`` deletes the manifests and records each
deletion in the audit trail.

The rules for each release of the service's repository still in the registry:

- with a ``pattern``, only releases with a tag matching it (in the registry or
  as pushed) are considered at all; the others are left alone;
- of the considered releases, the ``keep`` most recently *pushed* (the
  ledger's ``pushed_at``, not the image's build date) are kept;
- a digest an environment holds is kept — per the ledger's current release of
  the environment, or because one of the environment's tags points at it in
  the registry;
- a digest a protected tag (``retention.protected_tags``) points at is kept;
- everything else is deleted, by digest — which removes every tag of that
  manifest, so the tags are listed with the deletion. A digest shared with a
  kept release is kept.

A release may be kept for several reasons; all are given.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dockroll.config import Config
from dockroll.errors import ManifestNotFound, RegistryError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger, Release
from dockroll.refs import Digest, parse_reference
from dockroll.registry import RegistryClient

__all__ = [
    "Disposition",
    "PruneDecision",
    "PrunePlan",
    "PruneResult",
    "RegistryView",
    "environment_tag_patterns",
    "execute_prune",
    "held_digests",
    "plan_prune",
    "prune_plan",
    "registry_view",
]


class Disposition(StrEnum):
    """What happens to a release."""

    KEEP_HELD = "held"
    KEEP_PROTECTED = "protected"
    KEEP_OUTSIDE_PATTERN = "outside_pattern"
    KEEP_NEWEST = "newest"
    KEEP_SHARED = "shared_digest"
    KEEP_OTHER_REPOSITORY = "other_repository"
    GONE = "gone"
    DELETE = "delete"


@dataclass(frozen=True)
class RegistryView:
    """Which tag points at which digest in the repository, and which digests exist."""

    tags: Mapping[str, Digest]
    present: frozenset[Digest]

    def tags_of(self, digest: Digest) -> tuple[str, ...]:
        return tuple(sorted(tag for tag, at in self.tags.items() if at == digest))


@dataclass(frozen=True)
class PruneDecision:
    release: Release
    disposition: Disposition
    reason: str
    """Why, in words: ``newest 3``, ``running in prod``, ``protected by tag v1.0.0``."""
    tags: tuple[str, ...]
    """The registry tags pointing at the digest now (all go with a deletion)."""

    @property
    def keep(self) -> bool:
        return self.disposition not in (Disposition.DELETE, Disposition.GONE)

    @property
    def delete(self) -> bool:
        return self.disposition is Disposition.DELETE


@dataclass(frozen=True)
class PrunePlan:
    repository: str
    """``registry/repository`` the plan is about."""
    keep: int
    pattern: str | None
    decisions: tuple[PruneDecision, ...]
    """One per release, most recently pushed first."""

    @property
    def deletions(self) -> tuple[PruneDecision, ...]:
        return tuple(d for d in self.decisions if d.delete)


@dataclass(frozen=True)
class PruneResult:
    plan: PrunePlan
    deleted: tuple[PruneDecision, ...]
    already_gone: tuple[PruneDecision, ...]
    """Planned deletions the registry no longer had when asked to delete."""


def environment_tag_patterns(config: Config) -> dict[str, tuple[str, ...]]:
    """Each environment's tags as shell patterns (``staging-{{version}}`` → ``staging-*``)."""
    patterns: dict[str, tuple[str, ...]] = {}
    for name, env in config.environments.items():
        globs = [re.sub(r"\{\{[^}]*\}\}", "*", tag) for tag in env.tags]
        patterns[name] = tuple(dict.fromkeys(globs))
    return patterns


def _matches(tag: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(tag, pattern):
            return pattern
    return None


def plan_prune(
    releases: Sequence[Release],
    view: RegistryView,
    *,
    keep: int,
    repository: str,
    held: Mapping[str, Digest | None],
    env_tag_patterns: Mapping[str, Sequence[str]] = {},
    protected: Sequence[str] = (),
    pattern: str | None = None,
) -> PrunePlan:
    """Decide for each release whether it stays, and why (pure; see the module rules).

    ``repository`` is ``registry/repository``: releases recorded elsewhere are left
    alone. ``held`` maps environments to the digest the ledger says they run.
    """
    if keep < 0:
        raise UsageError(f"--keep must be 0 or more, not {keep}")
    ordered = sorted(releases, key=lambda r: (r.pushed_at, r.id), reverse=True)
    held_by: dict[Digest, str] = {}
    for env, digest in held.items():
        if digest is not None:
            held_by.setdefault(digest, f"running in {env}")
    for tag, digest in sorted(view.tags.items()):
        for env, patterns in env_tag_patterns.items():
            if _matches(tag, patterns):
                held_by.setdefault(digest, f"{env} tag {tag} points at it")

    decisions: list[PruneDecision] = []
    kept_newest = 0
    for release in ordered:
        digest = release.digest
        tags = view.tags_of(digest)
        where = f"{release.registry}/{release.repository}"
        if where != repository:
            verdicts = [(Disposition.KEEP_OTHER_REPOSITORY, f"pushed to {where}, not {repository}")]
        elif digest not in view.present:
            verdicts = [(Disposition.GONE, "no longer in the registry")]
        else:
            verdicts = []
            in_pattern = pattern is None or any(
                fnmatch.fnmatchcase(tag, pattern) for tag in (*tags, *release.tags)
            )
            if not in_pattern:
                verdicts.append((Disposition.KEEP_OUTSIDE_PATTERN, f"no tag matches {pattern}"))
            elif kept_newest < keep:
                kept_newest += 1
                verdicts.append((Disposition.KEEP_NEWEST, f"newest {keep}"))
            if digest in held_by:
                verdicts.append((Disposition.KEEP_HELD, held_by[digest]))
            hits = [tag for tag in tags if _matches(tag, protected)]
            if hits:
                verdicts.append((Disposition.KEEP_PROTECTED, f"protected by tag {hits[0]}"))
            if not verdicts:
                verdicts.append((Disposition.DELETE, f"older than the newest {keep}"))
        reason = ", ".join(text for _, text in verdicts)
        decisions.append(PruneDecision(release, verdicts[0][0], reason, tags))

    # Deleting by digest would take a kept release with it: keep the digest.
    kept = {d.release.digest: d for d in decisions if d.keep}
    for index, decision in enumerate(decisions):
        if decision.delete and decision.release.digest in kept:
            other = kept[decision.release.digest].release.version
            decisions[index] = PruneDecision(
                decision.release,
                Disposition.KEEP_SHARED,
                f"same digest as kept {other}",
                decision.tags,
            )
    return PrunePlan(repository, keep, pattern, tuple(decisions))


def registry_view(
    client: RegistryClient, repository: str, digests: Iterable[Digest]
) -> RegistryView:
    """Every tag of ``repository`` with its digest, and which of ``digests`` exist."""
    tags: dict[str, Digest] = {}
    try:
        names = client.list_tags(repository)
    except RegistryError as exc:
        if "NAME_UNKNOWN" not in exc.message:
            raise
        names = []  # the repository was never pushed to, or everything in it was deleted
    for tag in names:
        digest = client.manifest_digest(repository, tag)
        if digest is not None:
            tags[tag] = digest
    present = {d for d in set(digests) if client.manifest_digest(repository, d) is not None}
    return RegistryView(tags, frozenset(present))


def held_digests(
    config: Config, ledger: Ledger, extra: Iterable[str] = ()
) -> dict[str, Digest | None]:
    """The digest the ledger says each environment runs: configured ones plus ``extra``."""
    names = list(dict.fromkeys([*config.environments, *extra]))
    known = {p.to_env for p in ledger.promotions(config.service)}
    known |= {d.env for d in ledger.deployments(config.service)}
    unknown = [name for name in extra if name not in config.environments and name not in known]
    if unknown:
        raise UsageError(
            f"--env {', '.join(unknown)}: neither dockroll.yml nor the ledger knows "
            f"that environment of {config.service}",
            hint=f"environments: {', '.join(sorted(set(config.environments) | known)) or 'none'}",
        )
    held: dict[str, Digest | None] = {}
    for name in names:
        current = ledger.current_release(config.service, name)
        held[name] = current.digest if current else None
    return held


def prune_plan(
    config: Config,
    ledger: Ledger,
    client: RegistryClient,
    *,
    keep: int | None = None,
    envs: Sequence[str] = (),
    pattern: str | None = None,
) -> PrunePlan:
    """Gather the facts (ledger, registry) and plan; deletes nothing."""
    image = parse_reference(config.image)
    releases = ledger.releases(config.service)
    mine = [r for r in releases if (r.registry, r.repository) == (image.registry, image.repository)]
    held = held_digests(config, ledger, envs)
    view = registry_view(client, image.repository, (r.digest for r in mine))
    return plan_prune(
        releases,
        view,
        keep=config.retention.keep if keep is None else keep,
        repository=image.name,
        held=held,
        env_tag_patterns=environment_tag_patterns(config),
        protected=config.retention.protected_tags,
        pattern=pattern,
    )


def execute_prune(
    plan: PrunePlan,
    client: RegistryClient,
    ledger: Ledger,
    config: Config,
    *,
    progress: ProgressCallback = discard,
) -> PruneResult:
    """Delete the planned manifests by digest, each recorded in the audit trail."""
    image = parse_reference(config.image)
    deleted: list[PruneDecision] = []
    gone: list[PruneDecision] = []
    done: set[Digest] = set()
    for decision in plan.deletions:
        release = decision.release
        if release.digest in done:
            deleted.append(decision)
            continue
        progress(Progress("prune", f"deleting {release.version} ({release.digest[:19]})"))
        try:
            client.delete_manifest(image.repository, release.digest)
        except ManifestNotFound:
            gone.append(decision)
            continue
        done.add(release.digest)
        deleted.append(decision)
        ledger.audit(
            "prune",
            service=config.service,
            target=release.version,
            detail={
                "digest": release.digest,
                "repository": plan.repository,
                "tags_removed": list(decision.tags),
                "reason": decision.reason,
            },
        )
    return PruneResult(plan, tuple(deleted), tuple(gone))
