"""Mirrors and retention against real registries (Debian's docker-registry).

Each test starts its own primary and mirror on free loopback ports with the
devenv's registry starter (data under tmp_path), so stopping one never
disturbs the shared registry. Images are real OCI images uploaded through the
registry client; the ledger is a SQLite file in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.cli.app import main
from dockroll.config import Config, load_config
from dockroll.devenv.registry import RegistryInstance, start_registry
from dockroll.ledger import Ledger, Release, open_ledger
from dockroll.pipeline.mirror import mirror_releases, resolve_with_fallback
from dockroll.pipeline.promote import execute_promotion, plan_promotion
from dockroll.refs import Digest
from dockroll.registry import OCI_MANIFEST, Manifest, RegistryClient, sha256_digest
from tests.conftest import free_port
from tests.support import IN_CI, tar_archive

pytestmark = pytest.mark.integration

REPOSITORY = "acme/web"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _unavailable(reason: str) -> None:
    # Same rule as tests/conftest.py: skip locally, fail in CI.
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[Callable[[], RegistryInstance]]:
    """Start private registries (deletes enabled); each is stopped at the end."""
    if shutil.which("docker-registry") is None:
        _unavailable("docker-registry is not installed (apt-get install docker-registry)")
    started: list[RegistryInstance] = []

    def start() -> RegistryInstance:
        port = free_port()
        instance = start_registry(port=port, data_dir=tmp_path / f"registry-{port}")
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registries: Callable[[], RegistryInstance],
) -> Iterator[Setup]:
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKROLL_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKROLL_ACTOR", "tester")
    primary, mirror = registries(), registries()
    document = {
        "service": "web",
        "image": f"{primary.address}/{REPOSITORY}",
        "environments": {
            "dev": {"port": 18080, "tags": ["dev"]},
            "staging": {"port": 18081, "promote_from": "dev", "tags": ["staging"]},
            "prod": {
                "port": 18082,
                "promote_from": "staging",
                "tags": ["prod", "prod-{{version}}"],
            },
        },
        "mirrors": [{"registry": mirror.address}],
        "retention": {"keep": 2, "protected_tags": ["keep-*"]},
    }
    path = tmp_path / "dockroll.yml"
    path.write_text(yaml.safe_dump(document))
    config = load_config(path)
    with (
        open_ledger() as ledger,
        RegistryClient(primary.address, lookup_credentials=False) as client,
        RegistryClient(mirror.address, lookup_credentials=False) as mirror_client,
    ):
        yield Setup(path, config, primary, mirror, ledger, client, mirror_client)


class Setup:
    def __init__(  # noqa: PLR0917 - built in one place, by the fixture
        self,
        path: Path,
        config: Config,
        primary: RegistryInstance,
        mirror: RegistryInstance,
        ledger: Ledger,
        client: RegistryClient,
        mirror_client: RegistryClient,
    ) -> None:
        self.path, self.config = path, config
        self.primary, self.mirror = primary, mirror
        self.ledger, self.client, self.mirror_client = ledger, client, mirror_client

    def push(self, version: str, *, pushed_hours: int, extra_tags: tuple[str, ...] = ()) -> Release:
        """Upload a one-layer image tagged ``version`` (+ extras) and record it as a release."""
        layer = tar_archive(
            {"app/version.txt": f"{version}\n".encode(), "app/blob": os.urandom(4096)}
        )
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
            },
            sort_keys=True,
        ).encode()
        self.client.push_blob(REPOSITORY, sha256_digest(layer), layer)
        self.client.push_blob(REPOSITORY, sha256_digest(config), config)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
            ],
        }
        manifest = Manifest.from_bytes(json.dumps(document).encode(), OCI_MANIFEST)
        tags = (version, *extra_tags)
        for tag in tags:
            self.client.put_manifest(REPOSITORY, tag, manifest)
        return self.ledger.record_release(
            service="web",
            version=version,
            digest=manifest.digest,
            registry=self.primary.address,
            repository=REPOSITORY,
            tags=tags,
            pushed_at=T0 + timedelta(hours=pushed_hours),
            # Built in the opposite order: retention must go by push time.
            build_date=T0 - timedelta(hours=pushed_hours),
        )

    def promote(self, release: Release, target: str) -> None:
        plan = plan_promotion(
            self.config, self.ledger, self.client, release.version, target, notes="test"
        )
        execute_promotion(plan, self.client, self.ledger, self.config)

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        if "promote" in args:  # the images here are not services: registry side only
            args = (*args, "--registry-only")
        code = main(["--config", str(self.path), "--json", *args])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out.strip() else None, err


def test_mirror_keeps_the_digest_and_tags_and_a_second_run_writes_nothing(setup: Setup) -> None:
    release = setup.push("1.0.0", pushed_hours=1, extra_tags=("git-aaaaaaa",))
    setup.promote(release, "dev")
    setup.promote(release, "staging")

    result = mirror_releases(setup.config, setup.client, [release])
    (report,) = result.reports
    assert result.ok
    (copied,) = report.releases
    assert copied.status == "copied"
    assert set(copied.tags) == {"1.0.0", "git-aaaaaaa", "dev", "staging"}
    primary_manifest = setup.client.get_manifest(REPOSITORY, release.digest)
    mirrored = setup.mirror_client.get_manifest(REPOSITORY, release.digest)
    assert mirrored.digest == release.digest
    assert mirrored.content == primary_manifest.content
    for tag in copied.tags:
        assert setup.mirror_client.resolve(REPOSITORY, tag) == release.digest
    for blob in mirrored.blobs():
        assert setup.mirror_client.blob_exists(REPOSITORY, blob.digest)
    # prod never got it, so its tags are not there
    assert setup.mirror_client.manifest_digest(REPOSITORY, "prod") is None

    before = setup.mirror_client.traffic
    again = mirror_releases(setup.config, setup.client, [release])
    (repeat,) = again.reports[0].releases
    assert repeat.status == "up_to_date"
    assert repeat.written == ()
    assert repeat.bytes_sent == 0
    moved = setup.mirror_client.traffic - before
    assert moved.bytes_sent == 0  # the test's own client is not used by mirror_releases


def test_the_cli_mirrors_by_default_what_environments_hold_and_the_newest(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    old = setup.push("1.0.0", pushed_hours=1)
    setup.push("1.0.1", pushed_hours=2)
    newest = setup.push("1.0.2", pushed_hours=3)
    setup.promote(old, "dev")

    code, data, _ = setup.cli(capsys, "mirror")
    assert code == 0, data
    assert data["releases"] == ["1.0.2", "1.0.0"]
    assert setup.mirror_client.manifest_digest(REPOSITORY, "1.0.1") is None
    assert setup.mirror_client.resolve(REPOSITORY, "dev") == old.digest
    assert setup.mirror_client.resolve(REPOSITORY, "1.0.2") == newest.digest

    code, data, _ = setup.cli(capsys, "mirror", "--all")
    assert code == 0
    statuses = {r["version"]: r["status"] for r in data["mirrors"][0]["releases"]}
    assert statuses == {"1.0.2": "up_to_date", "1.0.1": "copied", "1.0.0": "up_to_date"}


def test_a_stopped_mirror_is_reported_by_name(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.push("1.0.0", pushed_hours=1)
    setup.mirror.stop()

    code, data, err = setup.cli(capsys, "mirror", "1.0.0")
    assert code == 6
    (report,) = data["mirrors"]
    assert report["ok"] is False
    assert report["registry"] == setup.mirror.address
    assert "is not answering" in report["error"]
    assert f"1 of 1 mirrors failed: {setup.mirror.address}/{REPOSITORY}" in err

    result = mirror_releases(setup.config, setup.client, setup.ledger.releases("web"))
    assert not result.ok
    assert "connection refused" in (result.reports[0].error or "")


def test_the_fallback_resolver_answers_from_the_mirror_when_the_primary_is_down(
    setup: Setup,
) -> None:
    release = setup.push("1.0.0", pushed_hours=1)
    assert mirror_releases(setup.config, setup.client, [release]).ok
    answered = resolve_with_fallback(setup.config, "1.0.0")
    assert (answered.registry, answered.fell_back) == (setup.primary.address, False)

    setup.primary.stop()
    resolution = resolve_with_fallback(setup.config, "1.0.0", timeout=2)
    assert resolution.registry == setup.mirror.address
    assert resolution.digest == release.digest
    assert resolution.fell_back
    first = resolution.attempts[0]
    assert (first.registry, first.outcome) == (setup.primary.address, "unavailable")
    by_digest = resolve_with_fallback(setup.config, f"{setup.config.image}@{release.digest}")
    assert by_digest.ref.registry == setup.mirror.address


def test_prune_keeps_exactly_what_it_must(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    releases = {
        version: setup.push(version, pushed_hours=hours, extra_tags=extra)
        for version, hours, extra in [
            ("1.0.0", 1, ("keep-first",)),
            ("1.0.1", 2, ("git-1111111",)),
            ("1.0.2", 3, ()),
            ("1.0.3", 4, ("main-3333333",)),
            ("1.0.4", 5, ()),
            ("1.0.5", 6, ()),
        ]
    }
    # prod runs 1.0.2 per the ledger and the registry's prod tags
    for env in ("dev", "staging", "prod"):
        setup.promote(releases["1.0.2"], env)
    digests = {version: r.digest for version, r in releases.items()}

    code, data, _ = setup.cli(capsys, "prune")
    assert code == 0
    assert data["dry_run"] is True
    actions = {r["version"]: (r["action"], r["reason"]) for r in data["releases"]}
    assert actions == {
        "1.0.5": ("keep", "newest 2"),
        "1.0.4": ("keep", "newest 2"),
        "1.0.3": ("delete", "older than the newest 2"),
        "1.0.2": ("keep", "running in dev"),
        "1.0.1": ("delete", "older than the newest 2"),
        "1.0.0": ("keep", "protected by tag keep-first"),
    }
    tags_of = {r["version"]: r["tags"] for r in data["releases"]}
    assert tags_of["1.0.3"] == ["1.0.3", "main-3333333"]
    # a dry run deletes nothing
    for digest in digests.values():
        assert setup.client.manifest_digest(REPOSITORY, digest) == digest

    code, data, _ = setup.cli(capsys, "prune", "--yes")
    assert code == 0
    assert data["deleted"] == 2
    present = {version for version, digest in digests.items() if _present(setup.client, digest)}
    assert present == {"1.0.5", "1.0.4", "1.0.2", "1.0.0"}
    remaining = set(setup.client.list_tags(REPOSITORY))
    assert not remaining & {"1.0.3", "main-3333333", "1.0.1", "git-1111111"}
    assert {"prod", "prod-1.0.2", "staging", "dev", "keep-first", "1.0.5"} <= remaining
    audited = setup.ledger.audit_events(service="web", action="prune")
    assert sorted(event.target or "" for event in audited) == ["1.0.1", "1.0.3"]
    assert {tuple(event.detail["tags_removed"]) for event in audited} == {
        ("1.0.1", "git-1111111"),
        ("1.0.3", "main-3333333"),
    }

    # nothing left to delete; a second run is a no-op
    code, data, _ = setup.cli(capsys, "prune", "--yes")
    assert (code, data["deleted"]) == (0, 0)
    gone = {r["version"] for r in data["releases"] if r["disposition"] == "gone"}
    assert gone == {"1.0.1", "1.0.3"}


def test_prune_refuses_an_unknown_environment_and_a_zero_keep(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.push("1.0.0", pushed_hours=1)
    code, _, err = setup.cli(capsys, "prune", "--env", "qa")
    assert code == 2
    assert "neither dockroll.yml nor the ledger knows" in err
    code, _, err = setup.cli(capsys, "prune", "--keep", "0")
    assert code == 2


def _present(client: RegistryClient, digest: Digest) -> bool:
    return client.manifest_digest(REPOSITORY, digest) is not None


def test_promote_mirrors_right_away_and_a_down_mirror_only_warns(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    release = setup.push("1.0.0", pushed_hours=1)
    code, data, _ = setup.cli(capsys, "promote", "1.0.0", "--to", "dev", "--notes", "n")
    assert code == 0
    assert data["mirrors"][0]["ok"] is True
    assert setup.mirror_client.resolve(REPOSITORY, "dev") == release.digest

    setup.mirror.stop()
    code, data, err = setup.cli(capsys, "promote", "1.0.0", "--to", "staging", "--notes", "n")
    assert code == 0
    assert data["changed"] is True
    assert data["mirrors"][0]["ok"] is False
    assert f"mirror {setup.mirror.address}/{REPOSITORY} did not get 1.0.0" in err
    assert setup.client.resolve(REPOSITORY, "staging") == release.digest
