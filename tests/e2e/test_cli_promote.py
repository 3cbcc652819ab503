"""``dockroll promote`` and ``dockroll approve`` run as a user runs them: the console script.

Releases are seeded the way ``dockroll push`` leaves them (images in the real
registry, recorded in the ledger); everything after that goes through the
``dockroll`` executable in a subprocess, with its exit codes, its words on
stderr and its JSON on stdout. Commands that must refuse run side by side and
are checked to have changed neither the registry's tags nor the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from dockroll.config import load_config
from dockroll.devenv.registry import RegistryInstance, start_registry, write_htpasswd
from dockroll.errors import DevEnvError
from dockroll.ledger import Release, open_ledger
from dockroll.pipeline.promote import execute_promotion, plan_promotion
from dockroll.refs import Digest
from dockroll.registry import Credentials, RegistryClient, copy
from tests.conftest import free_port
from tests.support import IN_CI, tar_archive

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICE = "web"
ACTOR = "alice"
DOCKROLL = Path(sys.executable).parent / "dockroll"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLEAN_ENV = (
    "DOCKROLL_LEDGER_URL",
    "DOCKROLL_CONFIG",
    "DOCKROLL_REGISTRY_USERNAME",
    "DOCKROLL_REGISTRY_PASSWORD",
    "DOCKROLL_DEBUG",
    "DOCKROLL_ACTOR",
)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: end-to-end tests must run)")
    pytest.skip(reason)


@dataclass(frozen=True)
class SourceImages:
    registry: str
    repository: str
    digests: dict[str, Digest]


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient, registry: str) -> SourceImages:
    """Two one-file images, imported into the engine and pushed by it."""
    if not DOCKROLL.exists():
        _unavailable(f"no dockroll console script at {DOCKROLL} (pip install -e .)")
    run = uuid.uuid4().hex[:10]
    repository = f"dockroll-test/cli-promote-src-{run}"
    reference = f"{registry}/{repository}"
    digests: dict[str, Digest] = {}
    for name in ("one", "other"):
        docker_client.api.import_image_from_data(
            tar_archive({"release.txt": f"{name} {run}\n".encode()}), repository=reference, tag=name
        )
        try:
            for line in docker_client.images.push(reference, tag=name, stream=True, decode=True):
                if "error" in line:
                    pytest.fail(f"docker push {reference}:{name} failed: {line['error']}")
                if digest := (line.get("aux") or {}).get("Digest"):
                    digests[name] = Digest(digest)
        finally:
            docker_client.images.remove(f"{reference}:{name}", force=True)
        assert name in digests, f"docker push of {reference}:{name} reported no digest"
    return SourceImages(registry, repository, digests)


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """stderr on one line, whatever the terminal width did to it."""
        return " ".join(self.err.split())

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Service:
    """A service directory with dockroll.yml, a state directory and a repository."""

    root: Path
    images: SourceImages
    repository: str
    env: dict[str, str]

    @property
    def host(self) -> str:
        return self.images.registry

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.root / 'state' / 'ledger.db'}"

    def write_config(
        self, name: str = "dockroll.yml", image: str | None = None, **prod: Any
    ) -> Path:
        environments = {
            "dev": {"port": 18180, "tags": ["dev", "dev-{{version}}"]},
            "staging": {
                "port": 18181,
                "promote_from": "dev",
                "tags": ["staging", "staging-{{version}}"],
            },
            "prod": {
                "port": 18182,
                "promote_from": "staging",
                "requires_approval": True,
                "tags": ["prod", "prod-{{version}}"],
                **prod,
            },
        }
        document = {"service": SERVICE, "image": image or self.image, "environments": environments}
        path = self.root / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def push(self, image: str, tag: str, client: RegistryClient | None = None) -> Digest:
        digest = self.images.digests[image]
        with RegistryClient(self.host, lookup_credentials=False) as source:
            destination = client or source
            copy(
                f"{self.host}/{self.images.repository}@{digest}",
                f"{destination.host}/{self.repository}:{tag}",
                source,
                destination,
            )
        return digest

    def seed(self, version: str, image: str = "one", host: str | None = None) -> Release:
        """Record ``version`` as `dockroll push` does (the image must be in the registry)."""
        with open_ledger(self.ledger_url, actor="ci") as ledger:
            return ledger.record_release(
                service=SERVICE,
                version=version,
                digest=self.images.digests[image],
                registry=host or self.host,
                repository=self.repository,
                tags=[version],
            )

    def promote_in_process(self, version: str, *targets: str) -> None:
        """Setup shortcut: the library call `dockroll promote` makes."""
        config = load_config(self.root / "dockroll.yml")
        with (
            open_ledger(self.ledger_url, actor=ACTOR) as ledger,
            RegistryClient(self.host, lookup_credentials=False) as client,
        ):
            for target in targets:
                plan = plan_promotion(config, ledger, client, version, target)
                execute_promotion(plan, client, ledger, config)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        # These images are not services: promotions here test the registry side only.
        if "promote" in args and "--dry-run" not in args:
            args = (*args, "--registry-only")
        return subprocess.Popen(
            [str(DOCKROLL), *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> Run:
        return _finish(self.start(*args, env=env))

    def tags(
        self, host: str | None = None, credentials: Credentials | None = None
    ) -> dict[str, str | None]:
        with RegistryClient(
            host or self.host, credentials=credentials, lookup_credentials=False
        ) as client:
            return {
                tag: client.manifest_digest(self.repository, tag)
                for tag in client.list_tags(self.repository)
            }

    def approve(self, version: str, by: str) -> None:
        with open_ledger(self.ledger_url) as ledger:
            ledger.record_approval(ledger.get_release(SERVICE, version), "prod", who=by)

    def promotions(self) -> list[int]:
        with open_ledger(self.ledger_url) as ledger:
            return [promotion.id for promotion in ledger.promotions(SERVICE)]

    def state(self) -> tuple[dict[str, str | None], list[int]]:
        return self.tags(), self.promotions()


def _finish(process: subprocess.Popen[str]) -> Run:
    out, err = process.communicate(timeout=120)
    return Run(process.returncode, out, err)


def _together(*processes: subprocess.Popen[str]) -> list[Run]:
    return [_finish(process) for process in processes]


def _refused(run: Run, code: int, *phrases: str) -> None:
    """A refusal as a user sees it: the exit code, an error line, no traceback."""
    assert run.code == code, f"exit {run.code}, expected {code}: {run.err}"
    assert run.err.startswith("error: "), run.err
    assert "Traceback" not in run.err
    for phrase in phrases:
        assert phrase in run.said, f"{phrase!r} not in: {run.said}"


@pytest.fixture
def service(tmp_path: Path, images: SourceImages) -> Service:
    root = tmp_path / "web"
    (root / "state").mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if key not in _CLEAN_ENV}
    env.update(DOCKROLL_STATE_DIR=str(root / "state"), DOCKROLL_ACTOR=ACTOR, COLUMNS="200")
    found = Service(root, images, f"dockroll-test/cli-promote-{uuid.uuid4().hex[:12]}", env)
    found.write_config()
    return found


def _not_today() -> str:
    # Two days ahead: not today even if the date turns while the test runs.
    return WEEKDAYS[(datetime.now(UTC) + timedelta(days=2)).weekday()]


def test_promote_through_every_environment(service: Service) -> None:
    service.write_config(window={"days": [_not_today()], "timezone": "UTC"})
    digest = service.push("one", "1.0.0")
    service.seed("1.0.0")

    dev = service.run("promote", "1.0.0", "--to", "dev")
    assert dev.code == 0, dev.err
    assert "promoted 1.0.0 to dev" in dev.out
    assert "written  dev, dev-1.0.0" in dev.out

    # Independent steps run side by side, as two people would.
    staging, approve = _together(
        service.start("promote", "1.0.0", "--to", "staging"),
        service.start("approve", "1.0.0", "--env", "prod", "--by", "bob", "--note", "LGTM"),
    )
    assert staging.code == 0, staging.err
    assert approve.code == 0, approve.err
    assert "approved 1.0.0 for prod by bob" in approve.out

    closed, no_reason = _together(
        service.start("promote", "1.0.0", "--to", "prod"),
        service.start("promote", "1.0.0", "--to", "prod", "--override-window"),
    )
    _refused(closed, 9, "[REFUSED] window: prod takes changes", "--override-window --reason")
    assert "[pass] approval" not in closed.said  # only refusing gates are listed
    _refused(no_reason, 2, "--override-window needs --reason TEXT")
    assert "prod" not in service.tags()

    prod = service.run(
        "--json",
        "promote",
        "1.0.0",
        "--to",
        "prod",
        "--override-window",
        "--reason",
        "hotfix INC-7",
        "--notes",
        "fixes the greeting",
    )
    assert prod.code == 0, prod.err
    result = prod.json()
    assert result["changed"] is True
    assert result["digest"] == digest
    assert result["written"] == ["prod", "prod-1.0.0"]
    assert result["from"] == "staging"
    assert 0 < result["bytes_sent"] < 4096  # two manifests, no layer
    tags = service.tags()
    assert {tag: tags[tag] for tag in ("dev", "staging", "prod", "prod-1.0.0")} == dict.fromkeys(
        ("dev", "staging", "prod", "prod-1.0.0"), digest
    )

    again, history, releases = _together(
        service.start("promote", "1.0.0", "--to", "prod", "--override-window", "--reason", "x"),
        service.start("--json", "history"),
        service.start("--json", "releases"),
    )
    assert again.code == 0, again.err
    assert f"prod already has 1.0.0 ({digest}); nothing written" in " ".join(again.out.split())

    assert history.code == 0, history.err
    entries = history.json()["history"]
    assert [(e["env"], e["from_env"]) for e in entries] == [
        ("prod", "staging"),
        ("staging", "dev"),
        ("dev", None),
    ]
    latest = entries[0]
    assert latest["who"] == ACTOR
    assert latest["digest"] == digest
    assert latest["version"] == "1.0.0"
    assert latest["reason"] == "hotfix INC-7"
    assert latest["notes"] == "fixes the greeting"
    assert datetime.fromisoformat(latest["at"]) > datetime.now(UTC) - timedelta(minutes=5)

    assert releases.code == 0, releases.err
    assert [(r["version"], r["digest"]) for r in releases.json()["releases"]] == [("1.0.0", digest)]


def test_refusals_are_explained_and_change_nothing(service: Service) -> None:
    service.write_config(window={"days": [_not_today()], "timezone": "UTC"})
    service.push("one", "1.0.0")
    service.push("one", "latest")
    service.push("other", "2.0.0")
    service.push("one", "3.0.0")
    service.seed("1.0.0")
    service.seed("2.0.0", image="other")
    service.seed("3.0.0")
    service.push("other", "3.0.0")  # pushed over with other content after it was recorded
    service.approve("2.0.0", by=ACTOR)
    service.promote_in_process("1.0.0", "dev", "staging")
    service.promote_in_process("2.0.0", "dev")
    service.write_config("down.yml", image=f"127.0.0.1:{free_port()}/{service.repository}")
    before = service.state()

    runs = dict(
        zip(
            (
                "unknown",
                "skip",
                "unapproved",
                "self-approved",
                "latest",
                "moved",
                "down",
                "dry",
                "dry-refused",
            ),
            _together(
                service.start("promote", "9.9.9", "--to", "staging"),
                service.start("promote", "1.0.0", "--to", "prod", "--from", "dev"),
                service.start("promote", "1.0.0", "--to", "prod"),
                service.start("promote", "2.0.0", "--to", "prod"),
                service.start("promote", "latest", "--to", "prod"),
                service.start("promote", "3.0.0", "--to", "dev"),
                service.start("--config", "down.yml", "promote", "1.0.0", "--to", "staging"),
                service.start("promote", "2.0.0", "--to", "staging", "--dry-run"),
                service.start("--json", "promote", "1.0.0", "--to", "prod", "--dry-run"),
            ),
            strict=True,
        )
    )

    _refused(runs["unknown"], 2, "unknown release '9.9.9' of web", "recent releases: ")
    _refused(
        runs["skip"],
        2,
        "prod takes releases only from staging, not from dev: environments cannot be skipped",
        "promote to staging first",
    )
    _refused(
        runs["unapproved"],
        9,
        "promotion of 1.0.0 to prod refused",
        "[REFUSED] approval: prod requires an approval and 1.0.0 has none",
        "`dockroll approve 1.0.0 --env prod --by NAME`",
        "[REFUSED] window:",
    )
    _refused(
        runs["self-approved"],
        9,
        "[REFUSED] approval: the only approval is by alice, who is promoting it, "
        "and prod does not allow self-approval",
    )
    _refused(runs["latest"], 9, "[REFUSED] immutable: 'latest' is a moving tag")
    _refused(runs["moved"], 6, "the tag was moved after the push", "promote by digest")
    _refused(runs["down"], 6, "is not answering: connection refused", "is it running?")
    dry = runs["dry"]
    assert dry.code == 0, dry.err
    assert "dry run: nothing written" in dry.out
    assert "tag staging: to write" in dry.out
    refused_plan = runs["dry-refused"]
    _refused(refused_plan, 9, "promotion of 1.0.0 to prod refused")
    gates = {gate["gate"]: gate["passed"] for gate in refused_plan.json()["gates"]}
    assert gates == {
        "order": True,
        "source": True,
        "immutable": True,
        "approval": False,
        "window": False,
    }
    assert service.state() == before


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryInstance]:
    if shutil.which("docker-registry") is None:
        _unavailable("docker-registry is needed for the auth registry")
    data = tmp_path_factory.mktemp("auth-registry")
    # Installs htpasswd (apache2-utils) where it can, as `dockroll dev up` would.
    try:
        htpasswd = write_htpasswd(data / "users", {"deployer": "correct-horse-battery"})
    except DevEnvError as exc:
        _unavailable(f"cannot write the registry password file: {exc}")
    instance = start_registry(port=free_port(), data_dir=data / "registry", htpasswd=htpasswd)
    try:
        yield instance
    finally:
        instance.stop()


def test_refused_credentials_never_show_the_password(
    service: Service, auth_registry: RegistryInstance
) -> None:
    host = auth_registry.address
    good = Credentials("deployer", "correct-horse-battery")
    with RegistryClient(host, credentials=good) as admin:
        service.push("one", "1.0.0", client=admin)
    service.seed("1.0.0", host=host)
    service.write_config(image=f"{host}/{service.repository}")
    secret = "hunter2-wrong"

    run = service.run(
        "promote",
        "1.0.0",
        "--to",
        "dev",
        env={"DOCKROLL_REGISTRY_USERNAME": "deployer", "DOCKROLL_REGISTRY_PASSWORD": secret},
    )

    _refused(
        run,
        6,
        f"registry {host} refused the credentials of 'deployer' (from environment)",
        "DOCKROLL_REGISTRY_PASSWORD",
    )
    assert secret not in run.out + run.err
    assert service.tags(host, good) == {"1.0.0": service.images.digests["one"]}
    assert service.promotions() == []
