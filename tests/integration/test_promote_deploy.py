"""`dockroll promote` into an environment dockroll runs: tags and ledger never ahead of it.

The real engine, registry and router; the sample service with a good v1.0.0 and
v1.1.0 and a v1.2.0 that never gets ready. Each refused or failed promotion must
leave the environment's moving tag, the ledger's current release and what
serves all on the release that ran before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from dockroll.ledger import PromotionStatus
from dockroll.refs import parse_reference
from dockroll.registry import RegistryClient
from tests.integration.rollout_support import (
    Seeded,
    run_dockroll,
    seed_service,
    versions,
    wait_serving,
)

pytestmark = pytest.mark.integration

ENV = "shop"


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_service(
        tmp_path_factory,
        registry,
        {ENV: {"strategy": "rolling", "tags": [ENV, f"{ENV}-{{{{version}}}}"]}},
        prefix="promdep",
    )


def _dockroll(seeded: Seeded, *args: str) -> tuple[int, str]:
    done = run_dockroll(seeded, *args)
    return done.returncode, done.stdout + done.stderr


def _moving_tag(seeded: Seeded) -> str | None:
    ref = parse_reference(seeded.config().image)
    with RegistryClient(ref.registry, lookup_credentials=False) as client:
        return client.manifest_digest(ref.repository, ENV)


def _assert_runs(seeded: Seeded, version: str) -> None:
    digest = seeded.releases[version].digest
    assert _moving_tag(seeded) == digest
    with seeded.ledger() as ledger:
        current = ledger.current_release(seeded.service, ENV)
    assert current is not None
    assert current.version == version
    assert versions(seeded.url(ENV), 20) == {version: 20}


def test_every_failed_promotion_leaves_tags_and_ledger_on_what_runs(seeded: Seeded) -> None:
    code, out = _dockroll(seeded, "promote", "v1.0.0", "--to", ENV)
    assert code == 0, out
    wait_serving(seeded.url(ENV), "v1.0.0")
    _assert_runs(seeded, "v1.0.0")

    # A freeze taken by hand outlives the command that took it.
    code, out = _dockroll(seeded, "lock", "acquire", "--env", ENV, "--reason", "freeze")
    assert code == 0, out
    code, out = _dockroll(seeded, "deploy", "v1.1.0", "--env", ENV)
    assert code == 12, out
    assert "freeze" in out
    code, out = _dockroll(seeded, "promote", "v1.1.0", "--to", ENV)
    assert code == 12, out
    _assert_runs(seeded, "v1.0.0")
    code, out = _dockroll(seeded, "--json", "lock", "status", "--env", ENV)
    assert code == 0, out
    status = json.loads(out)
    assert status["locked"]
    assert status["manual"]
    assert status["expires"] is None
    code, out = _dockroll(seeded, "lock", "release", "--env", ENV)
    assert code == 0, out

    # Retagging alone would make the tag claim a release that does not run.
    code, out = _dockroll(seeded, "promote", "v1.1.0", "--to", ENV, "--registry-only")
    assert code == 2, out
    assert "runs v1.0.0" in out
    _assert_runs(seeded, "v1.0.0")

    # A release that never gets ready is rolled back; its promotion is marked failed.
    code, out = _dockroll(seeded, "promote", "v1.2.0", "--to", ENV)
    assert code == 11, out
    _assert_runs(seeded, "v1.0.0")
    with seeded.ledger() as ledger:
        recorded = {p.version: p.status for p in ledger.promotions(seeded.service, ENV)}
    assert recorded["v1.2.0"] is PromotionStatus.FAILED
    assert "v1.1.0" not in recorded  # refused before anything was written

    # Once the environment is free and the release good, the promotion goes through.
    code, out = _dockroll(seeded, "promote", "v1.1.0", "--to", ENV)
    assert code == 0, out
    _assert_runs(seeded, "v1.1.0")
