"""Mirrors: copy releases, digest for digest, to every configured backup registry.

``mirror_releases`` copies each release to each mirror with
:func:`dockroll.registry.copy` (blobs the mirror has are skipped, the manifest
bytes are put unchanged), then writes the tags the release has in the primary
— its version tags and the environment tags pointing at it — and checks that
every one resolves to the release's digest on the mirror. A tag already there
is success: a second run sends HEAD requests only. A mirror that fails is
reported on its own; the others still get their copies.

``resolve_with_fallback`` is the deploy side: ask the primary, then the
mirrors, and say which one answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from dockroll.config import Config, MirrorConfig
from dockroll.errors import (
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    UsageError,
)
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger, Release
from dockroll.pipeline.promote import environment_tags, resolve_release
from dockroll.refs import Digest, ImageRef, is_digest, parse_reference
from dockroll.registry import (
    Attempt,
    FallbackResolver,
    RegistryClient,
    Resolution,
    copy,
    retag,
)

__all__ = [
    "MirrorReport",
    "MirrorResult",
    "MirroredRelease",
    "mirror_clients",
    "mirror_releases",
    "mirror_repository",
    "release_tags",
    "resolve_with_fallback",
    "select_releases",
]

MirrorStatus = Literal["copied", "up_to_date", "missing_in_primary", "failed"]


@dataclass(frozen=True)
class MirroredRelease:
    """What happened to one release on one mirror."""

    version: str
    digest: Digest
    status: MirrorStatus
    tags: tuple[str, ...] = ()
    """The tags the mirror has for it afterwards, each checked to resolve to ``digest``."""
    written: tuple[str, ...] = ()
    """Tags (or the digest itself) that had to be written; empty when it was up to date."""
    bytes_sent: int = 0
    message: str = ""


@dataclass(frozen=True)
class MirrorReport:
    """One mirror: where it is and what it got, or why it got nothing."""

    registry: str
    repository: str
    releases: tuple[MirroredRelease, ...]
    error: str | None = None
    """Set when the mirror failed (down, refused credentials, …)."""

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.status != "failed" for r in self.releases)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True)
class MirrorResult:
    reports: tuple[MirrorReport, ...]

    @property
    def failed(self) -> tuple[MirrorReport, ...]:
        return tuple(report for report in self.reports if not report.ok)

    @property
    def ok(self) -> bool:
        return not self.failed


def mirror_repository(config: Config, mirror: MirrorConfig) -> str:
    """The repository path on ``mirror``: its own, or the primary's."""
    return mirror.repository or parse_reference(config.image).repository


def mirror_clients(config: Config, *, timeout: float = 10.0) -> list[RegistryClient]:
    """One client per configured mirror, in the configured order (caller closes them)."""
    return [
        RegistryClient(
            mirror.registry,
            insecure=(mirror.registry,) if mirror.insecure else (),
            timeout=timeout,
        )
        for mirror in config.mirrors
    ]


def select_releases(
    config: Config,
    ledger: Ledger,
    client: RegistryClient,
    references: Sequence[str] = (),
    *,
    every: bool = False,
) -> list[Release]:
    """The releases to mirror, newest first.

    ``references`` (versions, tags or digests) name them; ``every`` takes each
    recorded release; neither means what some environment currently holds
    plus the most recently pushed release.
    """
    if references and every:
        raise UsageError("name releases or pass --all, not both")
    service = config.service
    if references:
        chosen = [resolve_release(config, ledger, client, ref) for ref in references]
    elif every:
        chosen = ledger.releases(service)
    else:
        chosen = ledger.releases(service, limit=1)
        for env in config.environments:
            current = ledger.current_release(service, env)
            if current is not None:
                chosen.append(current)
    unique = {release.id: release for release in chosen}
    return sorted(unique.values(), key=lambda r: (r.pushed_at, r.id), reverse=True)


def release_tags(config: Config, client: RegistryClient, release: Release) -> tuple[str, ...]:
    """The tags pointing at the release's digest in the primary right now.

    Candidates are the tags it was pushed with and every environment's tags
    expanded for it; a tag that has since moved to another digest is left out.
    """
    repository = release.repository
    candidates = list(release.tags)
    for env in config.environments:
        candidates += environment_tags(config, env, release)
    return tuple(
        tag
        for tag in dict.fromkeys(candidates)
        if tag and client.manifest_digest(repository, tag) == release.digest
    )


def _mirror_one(
    primary: RegistryClient,
    mirror: RegistryClient,
    repository: str,
    release: Release,
    tags: tuple[str, ...],
    *,
    progress: ProgressCallback,
) -> MirroredRelease:
    source = release.ref
    target = ImageRef(registry=mirror.host, repository=repository, digest=release.digest)
    first = target.with_tag(tags[0]) if tags else target
    result = copy(source, first, primary, mirror, progress=progress)
    written = [tags[0] if tags else release.digest] if result.written else []
    sent = result.bytes_sent
    for tag in tags[1:]:
        # The manifest is on the mirror now: the remaining tags are retags there.
        tagged = retag(mirror, target, tag, progress=progress)
        sent += tagged.bytes_sent
        if tagged.written:
            written.append(tag)
    for tag in tags:
        stored = mirror.manifest_digest(repository, tag)
        if stored != release.digest:  # copy and retag verify too; this guards the whole set
            raise RegistryError(
                f"{mirror.host}/{repository}:{tag} points to {stored} after mirroring, "
                f"not to {release.digest}"
            )
    return MirroredRelease(
        version=release.version,
        digest=release.digest,
        status="copied" if written else "up_to_date",
        tags=tags,
        written=tuple(written),
        bytes_sent=sent,
    )


def mirror_releases(
    config: Config,
    primary: RegistryClient,
    releases: Iterable[Release],
    *,
    mirrors: Sequence[RegistryClient] | None = None,
    progress: ProgressCallback = discard,
) -> MirrorResult:
    """Copy ``releases`` to every mirror, keeping digests; never raises for a mirror's failure.

    The primary failing is an error (nothing can be copied); a release the
    primary no longer has (pruned) is reported as ``missing_in_primary``.
    ``mirrors`` are clients in ``config.mirrors`` order (default: made here).
    """
    releases = list(releases)
    if not config.mirrors:
        return MirrorResult(())
    owned = mirrors is None
    clients = list(mirrors) if mirrors is not None else mirror_clients(config)
    if len(clients) != len(config.mirrors):
        raise ValueError("give one client per configured mirror")
    try:
        # What the primary has is the same for every mirror: look it up once.
        plan: list[tuple[Release, tuple[str, ...] | None]] = []
        for release in releases:
            if primary.manifest_digest(release.repository, release.digest) is None:
                plan.append((release, None))
            else:
                plan.append((release, release_tags(config, primary, release)))
        reports = []
        for mirror_config, client in zip(config.mirrors, clients, strict=True):
            repository = mirror_repository(config, mirror_config)
            reports.append(_mirror_to(primary, client, repository, plan, progress))
        return MirrorResult(tuple(reports))
    finally:
        if owned:
            for client in clients:
                client.close()


def _mirror_to(
    primary: RegistryClient,
    mirror: RegistryClient,
    repository: str,
    plan: list[tuple[Release, tuple[str, ...] | None]],
    progress: ProgressCallback,
) -> MirrorReport:
    name = f"{mirror.host}/{repository}"
    try:
        mirror.ping()
    except RegistryError as exc:
        progress(Progress("mirror", f"{name}: {exc.message}"))
        return MirrorReport(mirror.host, repository, (), error=str(exc))
    done: list[MirroredRelease] = []
    for release, tags in plan:
        if tags is None:
            done.append(
                MirroredRelease(
                    release.version,
                    release.digest,
                    "missing_in_primary",
                    message=f"{release.registry}/{release.repository} no longer has it (pruned?)",
                )
            )
            continue
        progress(Progress("mirror", f"{release.version} → {name}"))
        try:
            done.append(_mirror_one(primary, mirror, repository, release, tags, progress=progress))
        except RegistryError as exc:
            # A copy reads the primary and writes the mirror; blame the mirror only
            # while the primary still answers.
            primary.ping()
            if isinstance(exc, RegistryUnavailable):
                # The mirror went away mid-run: the rest would fail the same way.
                return MirrorReport(mirror.host, repository, tuple(done), error=str(exc))
            done.append(
                MirroredRelease(release.version, release.digest, "failed", message=str(exc))
            )
    return MirrorReport(mirror.host, repository, tuple(done))


def _outcome(exc: RegistryError) -> Literal["not_found", "unavailable", "denied", "failed"]:
    if isinstance(exc, ManifestNotFound):
        return "not_found"
    if isinstance(exc, RegistryUnavailable):
        return "unavailable"
    if isinstance(exc, RegistryAuthError):
        return "denied"
    return "failed"


def resolve_with_fallback(config: Config, reference: str, *, timeout: float = 5.0) -> Resolution:
    """Resolve ``reference`` (tag, digest or ``repo:tag``/``repo@digest`` of the primary)
    on the primary registry, else on the mirrors in order.

    Mirrors sharing a repository path are asked through one
    :class:`~dockroll.registry.FallbackResolver`; the result's ``attempts``
    list every registry asked before the one that answered.
    """
    primary = parse_reference(config.image)
    text = reference.strip()
    if "/" in text or "@" in text:
        ref = parse_reference(text)
        text = ref.digest or ref.tag or ""
    if not text or (":" in text and not is_digest(text)):
        raise UsageError(f"{reference!r} names neither a tag nor a digest of {primary.name}")
    targets = [(primary.registry, primary.repository)]
    targets += [(m.registry, mirror_repository(config, m)) for m in config.mirrors]
    insecure = tuple(m.registry for m in config.mirrors if m.insecure)
    groups: list[tuple[str, list[str]]] = []
    for host, repository in targets:
        if groups and groups[-1][0] == repository:
            groups[-1][1].append(host)
        else:
            groups.append((repository, [host]))
    attempts: list[Attempt] = []
    errors: list[RegistryError] = []
    for repository, hosts in groups:
        resolver = FallbackResolver(
            hosts,
            client_factory=lambda host: RegistryClient(host, insecure=insecure, timeout=timeout),
        )
        with resolver:
            try:
                found = resolver.resolve(repository, text)
            except RegistryError as exc:
                errors.append(exc)
                attempts += [Attempt(host, _outcome(exc), exc.message) for host in hosts]
                continue
        return Resolution(
            found.registry, found.repository, found.digest, (*attempts, *found.attempts)
        )
    if len(errors) == 1:
        raise errors[0]
    said = "; ".join(error.message for error in errors)
    kinds = {type(error) for error in errors}
    if kinds == {ManifestNotFound}:
        raise ManifestNotFound(f"no registry has {text}: {said}")
    raise RegistryUnavailable(
        f"no registry could resolve {text}: {said}",
        hint="start the registries or fix the mirror list",
    )
