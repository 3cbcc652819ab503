"""The push stage over a fake engine: one digest for all tags, or a clear error."""

from __future__ import annotations

import pytest

from dockroll.engine.port import PushAuth
from dockroll.errors import RegistryError, UsageError
from dockroll.events import Progress, ProgressCallback
from dockroll.pipeline.push import push_release, registry_auth_from_env
from dockroll.pipeline.records import BuildRecord
from dockroll.refs import Digest
from tests.unit.fakes import FakeEngine, fake_digest

REPO = "127.0.0.1:5000/team/web"
IMAGE_ID = "sha256:" + "1" * 64
TAGS = (f"{REPO}:v1.2.3", f"{REPO}:1.2", f"{REPO}:latest")


def record(tags: tuple[str, ...] = TAGS) -> BuildRecord:
    return BuildRecord(
        service="web",
        image_id=IMAGE_ID,
        tags=tags,
        version="v1.2.3",
        git_sha="abc1234",
        created="2024-05-01T12:00:00Z",
        size=1,
    )


@pytest.fixture
def engine() -> FakeEngine:
    fake = FakeEngine()
    fake.add_image(IMAGE_ID, *TAGS)
    return fake


def test_every_tag_is_pushed_and_shares_one_digest(engine: FakeEngine) -> None:
    events: list[Progress] = []
    auth = PushAuth("ci", "pw")

    result = push_release(record(), engine, auth=auth, progress=events.append)

    assert [ref for ref, _ in engine.pushes] == list(TAGS)
    assert all(given is auth for _, given in engine.pushes)
    assert result.digest == fake_digest(IMAGE_ID)
    assert result.references == TAGS
    assert result.repository == REPO
    assert result.pinned == f"{REPO}@{result.digest}"
    assert result.seconds >= 0
    assert Progress("push", f"digest {result.digest}") in events


def test_tags_that_land_on_different_digests_are_a_registry_error(engine: FakeEngine) -> None:
    engine.push_digests[f"{REPO}:latest"] = fake_digest("something else")
    with pytest.raises(RegistryError, match="different digests") as caught:
        push_release(record(), engine)
    assert f"{REPO}:latest → {fake_digest('something else')}" in caught.value.message
    assert f"{REPO}:v1.2.3 → {fake_digest(IMAGE_ID)}" in caught.value.message


def test_an_image_gone_since_the_build(engine: FakeEngine) -> None:
    engine.images.clear()
    with pytest.raises(UsageError, match="gone from the engine") as caught:
        push_release(record(), engine)
    assert caught.value.hint is not None
    assert "dockroll build" in caught.value.hint
    assert engine.pushes == []


def test_a_tag_retagged_since_the_build(engine: FakeEngine) -> None:
    engine.add_image("sha256:" + "2" * 64, f"{REPO}:latest")
    with pytest.raises(UsageError, match=f"{REPO}:latest no longer point") as caught:
        push_release(record(), engine)
    assert f"{REPO}:v1.2.3" not in caught.value.message
    assert engine.pushes == [], "nothing is pushed when any tag moved"


def test_push_errors_propagate(engine: FakeEngine) -> None:
    class Refusing(FakeEngine):
        def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest:
            raise RegistryError(f"registry refused {reference}")

    refusing = Refusing()
    refusing.add_image(IMAGE_ID, *TAGS)
    with pytest.raises(RegistryError, match="refused"):
        push_release(record(), refusing)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKROLL_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("DOCKROLL_REGISTRY_PASSWORD", raising=False)


@pytest.mark.usefixtures("no_credentials")
def test_no_credentials_defer_to_the_docker_config() -> None:
    assert registry_auth_from_env() is None


@pytest.mark.usefixtures("no_credentials")
def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKROLL_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", "hunter2")
    assert registry_auth_from_env() == PushAuth("ci", "hunter2")


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize("variable", ["DOCKROLL_REGISTRY_USERNAME", "DOCKROLL_REGISTRY_PASSWORD"])
def test_one_of_two_credentials_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "value")
    with pytest.raises(UsageError, match="set both DOCKROLL_REGISTRY_USERNAME"):
        registry_auth_from_env()


def test_push_auth_repr_hides_the_password() -> None:
    auth = PushAuth("ci", "hunter2")
    for text in (repr(auth), str(auth), f"{auth}", repr([auth]), repr({"auth": auth})):
        assert "hunter2" not in text
        assert "ci" in text
    assert repr(auth) == "PushAuth(username='ci', password=***)"
