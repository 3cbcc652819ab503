"""Push stage: every tag of a build to the registry, one digest for all."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dockroll.engine.port import Engine, PushAuth
from dockroll.errors import RegistryError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger, Release
from dockroll.pipeline.records import BuildRecord
from dockroll.refs import Digest, parse_reference

__all__ = [
    "PushResult",
    "commit_time",
    "push_release",
    "record_push",
    "registry_auth_from_env",
]


@dataclass(frozen=True)
class PushResult:
    digest: Digest
    references: tuple[str, ...]
    """Every pushed ``repo:tag``."""
    repository: str
    seconds: float

    @property
    def pinned(self) -> str:
        """The immutable reference deploys use: ``repository@digest``."""
        return f"{self.repository}@{self.digest}"


def registry_auth_from_env() -> PushAuth | None:
    """Credentials from DOCKROLL_REGISTRY_USERNAME / _PASSWORD; None defers to the docker config."""
    username = os.environ.get("DOCKROLL_REGISTRY_USERNAME")
    password = os.environ.get("DOCKROLL_REGISTRY_PASSWORD")
    if username and password:
        return PushAuth(username=username, password=password)
    if username or password:
        raise UsageError(
            "set both DOCKROLL_REGISTRY_USERNAME and DOCKROLL_REGISTRY_PASSWORD, or neither "
            "(then the docker config from `docker login` is used)"
        )
    return None


def push_release(
    record: BuildRecord,
    engine: Engine,
    *,
    auth: PushAuth | None = None,
    progress: ProgressCallback = discard,
) -> PushResult:
    """Push every tag of ``record``; they must all land on one digest."""
    info = engine.image(record.image_id)
    if info is None:
        raise UsageError(
            f"the image {record.image_id[:19]} built for {record.service} is gone from the engine",
            hint="run `dockroll build` again",
        )
    missing = [tag for tag in record.tags if tag not in info.tags]
    if missing:
        raise UsageError(
            f"{', '.join(missing)} no longer point at the built image {record.image_id[:19]}",
            hint="something retagged them since the build; run `dockroll build` again",
        )
    repositories = {parse_reference(tag).name for tag in record.tags}
    started = time.monotonic()
    digests: dict[str, Digest] = {}
    for tag in record.tags:
        progress(Progress("push", f"pushing {tag}"))
        digests[tag] = engine.push(tag, auth, progress)
    distinct = set(digests.values())
    if len(distinct) != 1:
        detail = ", ".join(f"{tag} → {digest}" for tag, digest in digests.items())
        raise RegistryError(f"the tags of one build landed on different digests: {detail}")
    digest = distinct.pop()
    progress(Progress("push", f"digest {digest}"))
    return PushResult(
        digest=digest,
        references=tuple(record.tags),
        repository=sorted(repositories)[0],
        seconds=time.monotonic() - started,
    )


def commit_time(
    sha: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> datetime | None:
    """When ``sha`` was committed: GitLab CI's ``CI_COMMIT_TIMESTAMP`` for its own commit,
    else the local git checkout's commit time; None when neither knows it."""
    environ = os.environ if env is None else env
    stamp = environ.get("CI_COMMIT_TIMESTAMP", "").strip()
    if stamp and sha and environ.get("CI_COMMIT_SHA", "").startswith(sha):
        parsed = _aware_time(stamp)
        if parsed is not None:
            return parsed
    if not sha:
        return None
    try:
        shown = subprocess.run(
            ["git", "show", "-s", "--format=%cI", sha],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _aware_time(shown.stdout.strip()) if shown.returncode == 0 else None


def _aware_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def record_push(
    ledger: Ledger,
    record: BuildRecord,
    result: PushResult,
    *,
    sbom_digest: Digest | None = None,
    committed_at: datetime | None = None,
) -> Release:
    """Record the pushed build as a release in the ledger (idempotent).

    ``sbom_digest`` is that of the SBOM ``dockroll scan`` kept for the image, if any.
    """
    ref = parse_reference(result.references[0])
    try:
        build_date: datetime | None = datetime.fromisoformat(record.created)
    except ValueError:
        build_date = None
    return ledger.record_release(
        service=record.service,
        version=record.version,
        digest=result.digest,
        registry=ref.registry,
        repository=ref.repository,
        tags=[parse_reference(reference).tag or "" for reference in result.references],
        git_sha=record.git_sha or None,
        build_date=build_date,
        labels=record.labels,
        sbom_digest=sbom_digest,
        committed_at=committed_at or commit_time(record.git_sha),
    )
