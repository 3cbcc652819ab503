"""The local pipeline: the course's stages in order, failing fast with the stage named.

build → test → scan → tag → push → deploy. Tags are computed once, before the
build, and the build applies them all; the ``tag`` stage checks the image still
carries each one (and re-applies a missing one), so the push sends exactly what
was built, tested and scanned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockroll.config import Config
from dockroll.engine.docker import DockerEngine
from dockroll.errors import DockrollError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger
from dockroll.pipeline.build import build_release
from dockroll.pipeline.deploy import deploy_release
from dockroll.pipeline.metadata import release_metadata
from dockroll.pipeline.promote import execute_promotion, plan_promotion
from dockroll.pipeline.push import push_release, record_push, registry_auth_from_env
from dockroll.pipeline.records import BuildRecord
from dockroll.pipeline.smoke import smoke_test
from dockroll.pipeline.stages import STAGES
from dockroll.policy import environment_order
from dockroll.refs import parse_reference
from dockroll.registry import RegistryClient

__all__ = ["STAGES", "PipelineResult", "StageResult", "run_pipeline"]


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str
    """passed, failed or skipped."""
    seconds: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "summary": self.summary,
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class PipelineResult:
    stages: tuple[StageResult, ...]

    @property
    def ok(self) -> bool:
        return all(stage.status != "failed" for stage in self.stages)


StageListener = Callable[[StageResult], None]


@dataclass
class _Run:
    config: Config
    ledger: Ledger
    engine: DockerEngine
    progress: ProgressCallback
    environment: str | None
    record: BuildRecord | None = None
    version: str = ""
    digest: str = ""

    def build(self) -> tuple[str, dict[str, Any]]:
        metadata = release_metadata(self.config)
        result = build_release(self.config, metadata, self.engine, progress=self.progress)
        self.record = result.record
        self.version = result.record.version
        size = result.record.size / 1e6
        return (
            f"{self.version}, {len(result.record.tags)} tags, {size:.0f} MB, {result.seconds:.1f}s",
            {"image_id": result.record.image_id, "tags": list(result.record.tags)},
        )

    def test(self) -> tuple[str, dict[str, Any]]:
        record = self._built()
        result = smoke_test(
            self.config,
            self.engine,
            record.image_id,
            expect_version=record.version,
            expect_sha=record.git_sha or None,
            progress=self.progress,
        )
        return (
            f"healthy after {result.seconds_to_healthy:.1f}s, /version matches",
            {"version": dict(result.version)},
        )

    def scan(self) -> tuple[str, dict[str, Any]]:
        from dockroll.pipeline.scan import record_scan, scan_image  # noqa: PLC0415 - scan only

        record = self._built()
        report = scan_image(self.config, self.engine, record, progress=self.progress)
        record_scan(self.ledger, report)
        return report.summary, report.to_json()

    def tag(self) -> tuple[str, dict[str, Any]]:
        record = self._built()
        info = self.engine.image(record.image_id)
        if info is None:
            raise UsageError(f"the built image {record.image_id[:19]} is gone from the engine")
        missing = [tag for tag in record.tags if tag not in info.tags]
        for tag in missing:
            ref = parse_reference(tag)
            self.engine.tag(record.image_id, ref.name, ref.tag or "latest")
        applied = f", re-applied {len(missing)}" if missing else ""
        return f"{len(record.tags)} tags on {record.image_id[7:19]}{applied}", {
            "tags": list(record.tags)
        }

    def push(self) -> tuple[str, dict[str, Any]]:
        record = self._built()
        result = push_release(
            record, self.engine, auth=registry_auth_from_env(), progress=self.progress
        )
        from dockroll.pipeline.scan import find_sbom  # noqa: PLC0415 - only when a scan ran

        sbom = find_sbom(self.config.service, record.version, record.image_id, result.digest)
        release = record_push(
            self.ledger, record, result, sbom_digest=sbom.digest if sbom else None
        )
        self.digest = result.digest
        self.ledger.audit(
            "push",
            service=self.config.service,
            target=record.version,
            detail={"digest": result.digest, "tags": list(result.references)},
        )
        return f"{result.digest[:19]} ({len(result.references)} tags)", {
            "digest": result.digest,
            "release_id": release.id,
        }

    def deploy(self) -> tuple[str, dict[str, Any]]:
        if not self.environment:
            raise UsageError("dockroll.yml has no environments to deploy to")
        record = self._built()
        host = parse_reference(self.config.image).registry
        with RegistryClient(host) as client:
            plan = plan_promotion(
                self.config, self.ledger, client, self.digest or record.version, self.environment
            )
            execute_promotion(plan, client, self.ledger, self.config, progress=self.progress)
        outcome = deploy_release(
            self.config, self.environment, plan.release, self.ledger, progress=self.progress
        )
        status = outcome.status if outcome else "unchanged"
        return f"{plan.release.version} → {self.environment}: {status}", {
            "environment": self.environment,
            "status": status,
        }

    def _built(self) -> BuildRecord:
        if self.record is None:
            raise UsageError("this stage needs the build stage before it")
        return self.record


def run_pipeline(
    config: Config,
    ledger: Ledger,
    *,
    skip: Sequence[str] = (),
    environment: str | None = None,
    progress: ProgressCallback = discard,
    on_stage: StageListener | None = None,
) -> PipelineResult:
    """Run the stages in order; the first failure stops the run and names its stage.

    The failing stage's error is raised again with its stage in the message
    (its exit code unchanged); ``on_stage`` hears every stage as it ends.
    """
    unknown = [name for name in skip if name not in STAGES]
    if unknown:
        raise UsageError(f"unknown stage {unknown[0]!r}; the stages are {', '.join(STAGES)}")
    if "build" in skip and any(s not in skip for s in STAGES[1:]):
        raise UsageError("every later stage needs the build: skip them too, or keep the build")
    if environment is None and config.environments:
        environment = environment_order(config)[0]
    if environment is not None:
        config.environment(environment)
    run = _Run(config, ledger, DockerEngine(), progress, environment)
    results: list[StageResult] = []
    for name in STAGES:
        if name in skip:
            results.append(StageResult(name, "skipped", 0.0, "skipped"))
            if on_stage:
                on_stage(results[-1])
            continue
        progress(Progress("pipeline", f"stage {name}"))
        started = time.monotonic()
        try:
            summary, data = getattr(run, name)()
        except DockrollError as exc:
            first_line = exc.message.strip().splitlines()[0] if exc.message.strip() else ""
            failed = StageResult(name, "failed", time.monotonic() - started, first_line)
            results.append(failed)
            if on_stage:
                on_stage(failed)
            exc.message = f"stage `{name}` failed: {exc.message}"
            raise
        results.append(StageResult(name, "passed", time.monotonic() - started, summary, data))
        if on_stage:
            on_stage(results[-1])
    return PipelineResult(tuple(results))
