"""Promotion against the real registry and a real SQLite ledger.

A few tiny images are imported into the Docker engine and pushed once per
module; every test then gets a repository of its own
(``dockroll-test/promote-<random>``) holding its releases under their version
tags (cross-repository blob mounts, so seeding costs a few milliseconds), a
ledger in ``tmp_path`` that records them, a git repository whose commits the
releases were "built" from, and a dockroll.yml with dev → staging → prod.

Every refusal is checked twice: the error says what happened and what to do,
and neither the registry's tags nor the ledger's promotions moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from dockroll.cli.app import main
from dockroll.config import Config, load_config
from dockroll.devenv.registry import RegistryInstance, start_registry, write_htpasswd
from dockroll.errors import (
    DigestMismatch,
    PolicyRefusal,
    RegistryAuthError,
    RegistryUnavailable,
    UsageError,
)
from dockroll.events import Progress
from dockroll.ledger import Ledger, Outcome, Release, open_ledger
from dockroll.pipeline.promote import (
    PromotionResult,
    execute_promotion,
    plan_promotion,
)
from dockroll.refs import Digest
from dockroll.registry import MANIFEST_MEDIA_TYPES, Credentials, RegistryClient, copy
from tests.conftest import free_port
from tests.support import IN_CI, tar_archive

pytestmark = pytest.mark.integration

SERVICE = "web"
ACTOR = "alice <alice@example.com>"
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_CLEAN_ENV = (
    "DOCKROLL_LEDGER_URL",
    "DOCKROLL_CONFIG",
    "DOCKROLL_REGISTRY_USERNAME",
    "DOCKROLL_REGISTRY_PASSWORD",
    "DOCKROLL_DEBUG",
)


def _unavailable(reason: str) -> None:
    # Same rule as tests/conftest.py: skip locally, fail in CI.
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


# -- images, pushed once --------------------------------------------------------------


@dataclass(frozen=True)
class SourceImages:
    """Images the real engine pushed to ``registry/repository:<name>``."""

    registry: str
    repository: str
    digests: dict[str, Digest]


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient, registry: str) -> SourceImages:
    """Three one-file images, imported into the engine and pushed by it."""
    run = uuid.uuid4().hex[:10]
    repository = f"dockroll-test/promote-src-{run}"
    digests: dict[str, Digest] = {}
    for name in ("one", "two", "other"):
        reference = f"{registry}/{repository}"
        docker_client.api.import_image_from_data(
            tar_archive({"release.txt": f"{name} {run}\n".encode()}), repository=reference, tag=name
        )
        try:
            for line in docker_client.images.push(reference, tag=name, stream=True, decode=True):
                if "error" in line:
                    pytest.fail(f"docker push {reference}:{name} failed: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest")
                if digest:
                    digests[name] = Digest(digest)
        finally:
            docker_client.images.remove(f"{reference}:{name}", force=True)
        assert name in digests, f"docker push of {reference}:{name} reported no digest"
    return SourceImages(registry, repository, digests)


# -- a service of the test's own ------------------------------------------------------


class Clock:
    """The ledger's and the gates' "now", moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class RecordingTransport(httpx.BaseTransport):
    """The real HTTP transport, remembering each request's method and path."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "Dana Dev",
            "GIT_AUTHOR_EMAIL": "dana@example.com",
            "GIT_COMMITTER_NAME": "Dana Dev",
            "GIT_COMMITTER_EMAIL": "dana@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        },
    )
    return done.stdout.strip()


COMMITS = ("Add the greeting endpoint", "Fix a typo in the greeting", "Serve /version")


def _git_repository(root: Path) -> list[str]:
    """A repository with one commit per line of COMMITS; their shas, oldest first."""
    _git(root, "init", "-q", "-b", "main")
    shas = []
    for number, subject in enumerate(COMMITS):
        (root / "app.txt").write_text(f"revision {number}\n")
        _git(root, "add", "app.txt")
        _git(root, "commit", "-q", "--no-gpg-sign", "-m", subject)
        shas.append(_git(root, "rev-parse", "HEAD"))
    return shas


@dataclass
class World:
    """One service: its repository, ledger, git history, config and registry client."""

    root: Path
    images: SourceImages
    repository: str
    ledger: Ledger
    client: RegistryClient
    clock: Clock
    shas: list[str]
    releases: dict[str, Release] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.images.registry

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}"

    def write_config(self, image: str | None = None, **prod: Any) -> Path:
        environments: dict[str, Any] = {
            "dev": {"port": 18080, "tags": ["dev", "dev-{{version}}"]},
            "staging": {
                "port": 18081,
                "promote_from": "dev",
                "tags": ["staging", "staging-{{version}}"],
            },
            "prod": {
                "port": 18082,
                "promote_from": "staging",
                "requires_approval": True,
                "min_soak": 0,
                "tags": ["prod", "prod-{{version}}"],
                **prod,
            },
        }
        path = self.root / "dockroll.yml"
        document = {"service": SERVICE, "image": image or self.image, "environments": environments}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    @property
    def config(self) -> Config:
        return load_config(self.root / "dockroll.yml")

    def push(self, image: str, tag: str) -> Digest:
        """Put a source image under ``tag`` of this service's repository (blobs mounted)."""
        digest = self.images.digests[image]
        copy(
            f"{self.host}/{self.images.repository}@{digest}",
            f"{self.image}:{tag}",
            self.client,
        )
        return digest

    def seed(self, version: str, image: str = "one", sha_index: int = 0) -> Release:
        """Push ``image`` as ``version`` and record it the way `dockroll push` does."""
        digest = self.push(image, version)
        release = self.ledger.record_release(
            service=SERVICE,
            version=version,
            digest=digest,
            registry=self.host,
            repository=self.repository,
            tags=[version],
            git_sha=self.shas[sha_index],
        )
        self.releases[version] = release
        return release

    def promote(
        self, reference: str, target: str, *, promoter: str = ACTOR, **options: Any
    ) -> PromotionResult:
        config = self.config
        plan = plan_promotion(
            config,
            self.ledger,
            self.client,
            reference,
            target,
            promoter=promoter,
            now=self.clock(),
            **options,
        )
        return execute_promotion(plan, self.client, self.ledger, config)

    def approve(self, version: str, env: str = "prod", by: str = "bob") -> None:
        self.ledger.record_approval(self.releases[version], env, note="looks good", who=by)

    def tags(self) -> dict[str, Digest | None]:
        """Every tag of the repository and the digest it points to."""
        return {
            tag: self.client.manifest_digest(self.repository, tag)
            for tag in self.client.list_tags(self.repository)
        }

    def state(self) -> tuple[dict[str, Digest | None], list[int]]:
        """What a refused promotion must leave alone: tags, and recorded promotions."""
        return self.tags(), [p.id for p in self.ledger.promotions(SERVICE)]

    def manifest_bytes(self, reference: str) -> bytes:
        response = httpx.get(
            f"http://{self.host}/v2/{self.repository}/manifests/{reference}",
            headers={"Accept": _ACCEPT},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: SourceImages) -> Iterator[World]:
    for name in _CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    root = tmp_path / "service"
    root.mkdir()
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(state))
    monkeypatch.setenv("DOCKROLL_ACTOR", ACTOR)
    monkeypatch.setenv("DOCKROLL_CONFIG", str(root / "dockroll.yml"))
    shas = _git_repository(root)
    clock = Clock()
    ledger = open_ledger(actor=ACTOR, clock=clock)
    client = RegistryClient(images.registry, lookup_credentials=False)
    repository = f"dockroll-test/promote-{uuid.uuid4().hex[:12]}"
    found = World(root, images, repository, ledger, client, clock, shas)
    found.write_config()
    assert str(state) in ledger.url, "the ledger must live in the test's state directory"
    try:
        yield found
    finally:
        client.close()
        ledger.close()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dockroll ARGV`` in this process: exit code, stdout, stderr (one line per message)."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


# -- what a promotion does ----------------------------------------------------------------


def test_promotion_keeps_the_digest_byte_for_byte(world: World) -> None:
    release = world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    world.promote("1.0.0", "staging")

    original = world.manifest_bytes("1.0.0")
    assert hashlib.sha256(original).hexdigest() == release.digest.removeprefix("sha256:")
    for tag in ("dev", "dev-1.0.0", "staging", "staging-1.0.0"):
        assert world.manifest_bytes(tag) == original, f"{tag} holds other manifest bytes"
    assert world.manifest_bytes(release.digest) == original
    assert "prod" not in world.tags()


def test_retag_sends_only_the_manifest_and_a_repeat_sends_nothing(world: World) -> None:
    world.seed("1.0.0")
    config = world.config
    manifest_size = len(world.manifest_bytes("1.0.0"))
    transport = RecordingTransport()
    events: list[Progress] = []
    with RegistryClient(world.host, lookup_credentials=False, transport=transport) as client:
        plan = plan_promotion(config, world.ledger, client, "1.0.0", "dev", now=world.clock())
        assert plan.pending == ("dev", "dev-1.0.0")
        before = client.traffic
        result = execute_promotion(plan, client, world.ledger, config)
        moved = client.traffic - before

        assert result.written == ("dev", "dev-1.0.0")
        assert result.bytes_sent == moved.bytes_sent == 2 * manifest_size
        assert not [path for _, path in transport.requests if "/blobs/" in path]
        puts = [path for method, path in transport.requests if method == "PUT"]
        assert puts == [
            f"/v2/{world.repository}/manifests/dev",
            f"/v2/{world.repository}/manifests/dev-1.0.0",
        ]
        assert {method for method, _ in transport.requests} <= {"HEAD", "GET", "PUT"}

        transport.requests.clear()
        again = plan_promotion(config, world.ledger, client, "1.0.0", "dev", now=world.clock())
        assert again.nothing_to_do
        before = client.traffic
        repeat = execute_promotion(again, client, world.ledger, config, progress=events.append)
        assert (client.traffic - before).bytes_sent == 0

    assert repeat.written == ()
    assert repeat.bytes_sent == 0
    assert repeat.promotion is None
    assert not [method for method, _ in transport.requests if method in ("PUT", "POST", "PATCH")]
    assert any("already has" in event.message for event in events), events
    assert len(world.ledger.promotions(SERVICE, "dev")) == 1


def test_a_moved_environment_tag_is_put_back_and_recorded(world: World) -> None:
    world.seed("1.0.0")
    world.seed("2.0.0", image="two")
    world.promote("1.0.0", "dev")
    world.push("two", "dev")  # someone pushed over the environment tag by hand

    result = world.promote("1.0.0", "dev")

    assert result.written == ("dev",)
    assert world.tags()["dev"] == world.releases["1.0.0"].digest
    assert len(world.ledger.promotions(SERVICE, "dev")) == 2


def test_history_records_who_when_from_where_to_where_digest_reason_and_notes(
    world: World,
) -> None:
    release = world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    world.clock.advance(60)
    at = world.clock()
    world.promote("1.0.0", "staging", reason="release train 42", notes="first staging build")

    promotion = world.ledger.promotions(SERVICE, "staging")[0]
    assert promotion.promoted_by == ACTOR
    assert promotion.promoted_at == at
    assert (promotion.from_env, promotion.to_env) == ("dev", "staging")
    assert promotion.digest == release.digest
    assert promotion.version == "1.0.0"
    assert promotion.reason == "release train 42"
    assert promotion.notes == "first staging build"
    assert promotion.tags == ("staging", "staging-1.0.0")

    history = world.ledger.history(SERVICE)
    assert [(entry.env, entry.from_env) for entry in history] == [
        ("staging", "dev"),
        ("dev", None),
    ]
    assert world.ledger.current_release(SERVICE, "staging") == release
    audit = world.ledger.audit_events(service=SERVICE, action="promote", env="staging")
    assert len(audit) == 1
    assert audit[0].actor == ACTOR
    assert audit[0].outcome == Outcome.OK
    assert audit[0].detail["digest"] == release.digest
    assert audit[0].detail["tags_written"] == ["staging", "staging-1.0.0"]


def test_release_notes_are_the_git_log_between_two_releases(world: World) -> None:
    world.seed("1.0.0", sha_index=0)
    world.seed("2.0.0", image="two", sha_index=2)

    first = world.promote("1.0.0", "dev")
    assert first.promotion is not None
    assert first.promotion.notes is not None
    assert first.promotion.notes.splitlines() == [f"{world.shas[0][:7]} {COMMITS[0]} (Dana Dev)"]

    second = world.promote("2.0.0", "dev")
    assert second.promotion is not None
    notes = second.promotion.notes
    assert notes is not None
    assert notes.splitlines() == [
        f"{world.shas[2][:7]} {COMMITS[2]} (Dana Dev)",
        f"{world.shas[1][:7]} {COMMITS[1]} (Dana Dev)",
    ]
    assert COMMITS[0] not in notes

    given = world.promote("2.0.0", "staging", notes="hand-written notes")
    assert given.promotion is not None
    assert given.promotion.notes == "hand-written notes"


# -- approvals, soak, windows -----------------------------------------------------------


def _to_staging(world: World, version: str = "1.0.0") -> None:
    world.promote(version, "dev")
    world.promote(version, "staging")


def test_prod_needs_an_approval_from_someone_else(world: World) -> None:
    world.seed("1.0.0")
    _to_staging(world)

    world.approve("1.0.0", by=ACTOR)
    with pytest.raises(PolicyRefusal) as refused:
        world.promote("1.0.0", "prod")
    assert "approval" in str(refused.value)
    assert "does not allow self-approval" in str(refused.value)
    assert "prod" not in world.tags()

    world.approve("1.0.0", by="bob")
    result = world.promote("1.0.0", "prod")
    assert result.written == ("prod", "prod-1.0.0")
    approval = next(v for v in result.plan.decision.verdicts if v.gate == "approval")
    assert approval.detail == "approved by bob"


def test_self_approval_passes_where_allowed(world: World) -> None:
    world.write_config(allow_self_approval=True)
    world.seed("1.0.0")
    _to_staging(world)
    world.approve("1.0.0", by=ACTOR)

    result = world.promote("1.0.0", "prod")

    assert result.written == ("prod", "prod-1.0.0")


def test_an_approval_belongs_to_the_digest_it_was_given_for(world: World) -> None:
    world.seed("1.0.0")
    world.approve("1.0.0", by="bob")
    # 1.0.0 is rebuilt and pushed again: a new release with another digest.
    rebuilt = world.seed("1.0.0", image="two")
    _to_staging(world)
    assert world.ledger.current_release(SERVICE, "staging") == rebuilt
    before = world.state()

    with pytest.raises(PolicyRefusal) as refused:
        world.promote("1.0.0", "prod")

    assert "approval" in str(refused.value)
    assert world.state() == before


def test_soak_time_is_counted_from_the_arrival_in_staging(world: World) -> None:
    world.write_config(min_soak="10m")
    world.seed("1.0.0")
    world.approve("1.0.0")
    world.promote("1.0.0", "dev")
    world.clock.advance(3600)  # a long time in dev does not count for prod
    world.promote("1.0.0", "staging")
    world.clock.advance(9 * 60)
    before = world.state()

    with pytest.raises(PolicyRefusal) as refused:
        world.promote("1.0.0", "prod")
    assert "soak: ran 0:09:00 in staging; prod needs 0:10:00 — wait 0:01:00 more" in str(
        refused.value
    )
    assert world.state() == before

    world.clock.advance(60)
    result = world.promote("1.0.0", "prod")
    assert result.written == ("prod", "prod-1.0.0")


def test_soak_restarts_when_a_release_comes_back_to_staging(world: World) -> None:
    world.write_config(min_soak="10m")
    world.seed("1.0.0")
    world.seed("2.0.0", image="two")
    world.approve("1.0.0")
    _to_staging(world, "1.0.0")
    world.clock.advance(3600)
    _to_staging(world, "2.0.0")
    world.clock.advance(3600)
    _to_staging(world, "1.0.0")  # back to 1.0.0, which has run one minute since
    world.clock.advance(60)
    before = world.state()

    with pytest.raises(PolicyRefusal) as refused:
        world.promote("1.0.0", "prod")

    assert "soak: ran 0:01:00 in staging" in str(refused.value)
    assert world.state() == before


# Thursday 2026-11-26 in Berlin; the window is working hours there, Monday to Thursday.
WINDOW = {
    "days": ["mon", "tue", "wed", "thu"],
    "start": "09:00",
    "end": "16:00",
    "timezone": "Europe/Berlin",
}
THURSDAY_EVENING = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)  # 18:30 in Berlin
THURSDAY_NOON = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # 12:00 in Berlin


def test_deployment_window_refuses_and_an_override_needs_a_reason(world: World) -> None:
    world.write_config(window=WINDOW)
    world.clock.now = THURSDAY_EVENING
    world.seed("1.0.0")
    world.approve("1.0.0")
    _to_staging(world)
    before = world.state()

    with pytest.raises(PolicyRefusal) as refused:
        world.promote("1.0.0", "prod")
    assert "window: prod takes changes mon,tue,wed,thu 09:00-16:00 Europe/Berlin only" in str(
        refused.value
    )
    assert "pass --override-window --reason TEXT" in str(refused.value)
    with pytest.raises(UsageError, match="--override-window needs --reason"):
        world.promote("1.0.0", "prod", override_window=True)
    assert world.state() == before

    result = world.promote("1.0.0", "prod", override_window=True, reason="hotfix INC-7")

    assert result.written == ("prod", "prod-1.0.0")
    assert result.promotion is not None
    assert result.promotion.reason == "hotfix INC-7"
    window = next(v for v in result.plan.decision.verdicts if v.gate == "window")
    assert window.passed
    assert window.detail.endswith("overridden: hotfix INC-7")
    audit = world.ledger.audit_events(service=SERVICE, action="promote", env="prod")
    assert [event.outcome for event in audit] == [Outcome.OK, Outcome.DENIED]
    assert audit[0].detail["gates"][-1] == f"[pass] window: {window.detail}"


def test_promoting_inside_the_window_needs_no_override(world: World) -> None:
    world.write_config(window=WINDOW)
    world.clock.now = THURSDAY_NOON
    world.seed("1.0.0")
    world.approve("1.0.0")
    _to_staging(world)

    result = world.promote("1.0.0", "prod")

    assert result.written == ("prod", "prod-1.0.0")
    window = next(v for v in result.plan.decision.verdicts if v.gate == "window")
    assert window.detail == "inside mon,tue,wed,thu 09:00-16:00 Europe/Berlin"


# -- bad inputs: a clear answer and no change ------------------------------------------


def test_an_unknown_version_is_refused(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    before = world.state()

    with pytest.raises(UsageError) as refused:
        world.promote("9.9.9", "staging")
    assert "unknown release '9.9.9' of web" in str(refused.value)
    assert "recent releases: 1.0.0" in str(refused.value)

    code, _, err = _run(["promote", "9.9.9", "--to", "staging"], capsys)
    assert code == 2
    assert "unknown release '9.9.9'" in err
    assert world.state() == before


def test_a_version_tag_pushed_over_is_a_digest_mismatch(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    release = world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    world.push("other", "1.0.0")  # re-pushed after it was recorded
    before = world.state()

    with pytest.raises(DigestMismatch) as refused:
        world.promote("1.0.0", "staging")
    message = str(refused.value)
    assert f"points at {world.images.digests['other']}" in message
    assert f"pushed as {release.digest}" in message
    assert "promote by digest" in message

    code, _, err = _run(["promote", "1.0.0", "--to", "staging"], capsys)
    assert code == 6
    assert "the tag was moved after the push" in err
    assert world.state() == before

    # The recorded digest is still there and still promotable by digest.
    result = world.promote(release.digest, "staging")
    assert result.written == ("staging", "staging-1.0.0")
    assert world.tags()["staging"] == release.digest


def test_a_registry_that_does_not_answer(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    before = world.state()
    down = f"127.0.0.1:{free_port()}"
    world.write_config(image=f"{down}/{world.repository}")

    with (
        RegistryClient(down, lookup_credentials=False) as client,
        pytest.raises(RegistryUnavailable) as refused,
    ):
        plan_promotion(world.config, world.ledger, client, "1.0.0", "staging")
    assert f"registry {down} is not answering" in str(refused.value)

    code, _, err = _run(["promote", "1.0.0", "--to", "staging"], capsys)
    assert code == 6
    assert f"registry {down} is not answering: connection refused" in err
    assert "Traceback" not in err
    assert world.state() == before


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryInstance]:
    """A second registry instance of this module's own, with htpasswd auth."""
    if shutil.which("docker-registry") is None or shutil.which("htpasswd") is None:
        _unavailable("docker-registry and htpasswd are needed for the auth registry")
    data = tmp_path_factory.mktemp("auth-registry")
    htpasswd = write_htpasswd(data / "users", {"deployer": "correct-horse-battery"})
    instance = start_registry(port=free_port(), data_dir=data / "registry", htpasswd=htpasswd)
    assert instance.started
    try:
        yield instance
    finally:
        instance.stop()


def test_credentials_the_registry_refuses(
    world: World,
    auth_registry: RegistryInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = auth_registry.address
    good = Credentials("deployer", "correct-horse-battery")
    repository = world.repository
    with RegistryClient(host, credentials=good) as admin:
        # the release, copied from the shared registry into the private one
        digest = world.images.digests["one"]
        copy(
            f"{world.host}/{world.images.repository}@{digest}",
            f"{host}/{repository}:1.0.0",
            world.client,
            admin,
        )
        world.ledger.record_release(
            service=SERVICE,
            version="1.0.0",
            digest=digest,
            registry=host,
            repository=repository,
            tags=["1.0.0"],
        )
        world.write_config(image=f"{host}/{repository}")
        promotions = world.ledger.promotions(SERVICE)
        secret = "wrong-password-1234"
        monkeypatch.setenv("DOCKROLL_REGISTRY_USERNAME", "deployer")
        monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", secret)

        with RegistryClient(host) as client, pytest.raises(RegistryAuthError) as refused:
            plan_promotion(world.config, world.ledger, client, "1.0.0", "dev")
        message = str(refused.value)
        assert f"registry {host} refused the credentials of 'deployer'" in message
        assert "DOCKROLL_REGISTRY_PASSWORD" in message
        assert secret not in message

        code, out, err = _run(["promote", "1.0.0", "--to", "dev"], capsys)
        assert code == 6
        assert "refused the credentials of 'deployer'" in err
        assert secret not in out + err

        assert admin.list_tags(repository) == ["1.0.0"]
        assert world.ledger.promotions(SERVICE) == promotions

        monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", "correct-horse-battery")
        code, _, err = _run(["promote", "1.0.0", "--to", "dev", "--registry-only"], capsys)
        assert code == 0, err
        assert admin.manifest_digest(repository, "dev-1.0.0") == digest


def test_environments_cannot_be_skipped(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.seed("1.0.0")
    world.approve("1.0.0")
    world.promote("1.0.0", "dev")
    before = world.state()

    with pytest.raises(UsageError) as refused:
        world.promote("1.0.0", "prod", source="dev")
    assert "prod takes releases only from staging, not from dev" in str(refused.value)

    code, _, err = _run(["promote", "1.0.0", "--to", "prod", "--from", "dev"], capsys)
    assert code == 2
    assert "environments cannot be skipped" in err
    assert "promote to staging first" in err

    # Without --from, the source gate sees that staging does not hold it.
    with pytest.raises(PolicyRefusal) as gated:
        world.promote("1.0.0", "prod")
    assert "source: staging holds nothing" in str(gated.value)
    assert world.state() == before


def test_unapproved_prod_names_the_gate_and_the_command(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed("1.0.0")
    _to_staging(world)
    before = world.state()

    code, _, err = _run(["promote", "1.0.0", "--to", "prod"], capsys)

    assert code == 9
    assert "promotion of 1.0.0 to prod refused" in err
    assert "[REFUSED] approval: prod requires an approval and 1.0.0 has none" in err
    assert "`dockroll approve 1.0.0 --env prod --by NAME`" in err
    assert world.state() == before
    denied = world.ledger.audit_events(service=SERVICE, env="prod")
    assert [event.outcome for event in denied] == [Outcome.DENIED]


def test_latest_is_refused_for_prod(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    release = world.seed("1.0.0")
    world.push("one", "latest")
    world.approve("1.0.0")
    _to_staging(world)
    before = world.state()

    with pytest.raises(PolicyRefusal) as refused:
        world.promote("latest", "prod")
    message = str(refused.value)
    assert "immutable: 'latest' is a moving tag" in message
    assert release.digest in message

    code, _, err = _run(["promote", "latest", "--to", "prod"], capsys)
    assert code == 9
    assert "'latest' is a moving tag" in err
    assert world.state() == before

    # The same digest by version passes every gate.
    assert world.promote("1.0.0", "prod").written == ("prod", "prod-1.0.0")


def test_dry_run_writes_nothing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.seed("1.0.0")
    world.promote("1.0.0", "dev")
    before = world.state()
    audit = world.ledger.audit_events()

    code, out, err = _run(["promote", "1.0.0", "--to", "staging", "--dry-run"], capsys)

    assert code == 0, err
    assert "dry run: nothing written" in out
    assert "tag staging: to write" in out
    assert world.state() == before
    assert world.ledger.audit_events() == audit

    code, out, err = _run(["--json", "promote", "1.0.0", "--to", "prod", "--dry-run"], capsys)
    assert code == 9
    plan = json.loads(out)
    assert plan["dry_run"] is True
    assert plan["allowed"] is False
    refused = {gate["gate"] for gate in plan["gates"] if not gate["passed"]}
    assert refused == {"source", "approval"}
    assert "promotion of 1.0.0 to prod refused" in err
    assert world.state() == before
    assert world.ledger.audit_events() == audit
