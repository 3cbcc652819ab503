"""Recording and finding releases."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dockroll.errors import LedgerError
from dockroll.ledger import Ledger
from dockroll.refs import Digest, ImageRef
from tests.unit.ledger.conftest import START, add_release, digest_of


def test_record_release_keeps_every_field(ledger: Ledger) -> None:
    built = datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    pushed = datetime(2025, 2, 28, 9, 35, tzinfo=UTC)
    release = ledger.record_release(
        service="web",
        version="1.4.0",
        digest=digest_of("web:1.4.0"),
        registry="127.0.0.1:5000",
        repository="team/web",
        tags=["1.4.0", "1.4", "git-abc1234", "1.4"],
        git_sha="abc1234def5678",
        build_date=built,
        labels={"org.opencontainers.image.version": "1.4.0"},
        pushed_at=pushed,
    )

    assert release.id > 0
    assert release.tags == ("1.4.0", "1.4", "git-abc1234")  # duplicates dropped, order kept
    assert release.build_date == built
    assert release.pushed_at == pushed
    assert release.created_by == "alice"
    assert release.created_at.tzinfo is not None
    assert release.labels == {"org.opencontainers.image.version": "1.4.0"}
    assert release.sbom_digest is None
    assert release.ref == ImageRef(
        registry="127.0.0.1:5000", repository="team/web", digest=digest_of("web:1.4.0")
    )
    assert ledger.get_release("web", "1.4.0") == release


def test_records_are_frozen_and_detached(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        release.version = "2.0.0"  # type: ignore[misc]
    with pytest.raises(TypeError):
        release.labels["x"] = "y"  # type: ignore[index]
    ledger.close()
    assert release.tags == ("1.0.0",)  # usable after the ledger is closed


def test_record_release_is_idempotent_on_service_digest_version(ledger: Ledger) -> None:
    first = add_release(ledger, "1.0.0")
    again = add_release(ledger, "1.0.0")

    assert again == first
    assert ledger.releases("web") == [first]


def test_recording_again_adds_new_tags_and_sbom_but_keeps_the_rest(ledger: Ledger) -> None:
    first = add_release(ledger, "1.0.0")
    sbom = digest_of("sbom")
    again = ledger.record_release(
        service="web",
        version="1.0.0",
        digest=first.digest,
        registry="elsewhere:5000",
        repository="other",
        tags=["latest", "1.0.0"],
        sbom_digest=sbom,
    )

    assert again.id == first.id
    assert again.tags == ("1.0.0", "latest")
    assert again.sbom_digest == sbom
    assert again.registry == "127.0.0.1:5000"
    assert again.pushed_at == first.pushed_at


def test_same_version_with_another_digest_is_another_release(ledger: Ledger) -> None:
    first = add_release(ledger, "1.0.0")
    rebuilt = ledger.record_release(
        service="web",
        version="1.0.0",
        digest=digest_of("rebuilt"),
        registry="127.0.0.1:5000",
        repository="team/web",
    )

    assert rebuilt.id != first.id
    assert ledger.get_release("web", "1.0.0") == rebuilt  # the latest push wins
    assert ledger.get_release("web", first.digest) == first


def test_get_release_by_digest_and_version(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")

    assert ledger.get_release("web", "1.0.0") == one
    assert ledger.get_release("web", two.digest) == two
    assert ledger.find_release("web", "3.0.0") is None
    assert ledger.find_release("api", "1.0.0") is None


def test_get_release_missing_is_a_ledger_error_with_a_hint(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match=r"no release 9\.9\.9 of web") as caught:
        ledger.get_release("web", "9.9.9")
    assert caught.value.hint is not None
    assert "dockroll releases" in caught.value.hint
    assert caught.value.exit_code == 8


def test_releases_newest_push_first_per_service_with_limit(ledger: Ledger) -> None:
    old = add_release(ledger, "1.0.0", pushed_at=START - timedelta(days=2))
    new = add_release(ledger, "3.0.0", pushed_at=START - timedelta(days=1))
    middle = add_release(ledger, "2.0.0", pushed_at=START - timedelta(days=1, hours=1))
    add_release(ledger, "1.0.0", service="api")

    assert [r.version for r in ledger.releases("web")] == ["3.0.0", "2.0.0", "1.0.0"]
    assert ledger.releases("web", limit=2) == [new, middle]
    assert ledger.releases("web")[-1] == old
    assert [r.service for r in ledger.releases("api")] == ["api"]
    assert ledger.releases("nothing") == []


def test_a_tag_is_not_a_digest(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="not a sha256 digest"):
        ledger.record_release(
            service="web",
            version="1.0.0",
            digest=Digest("latest"),
            registry="127.0.0.1:5000",
            repository="team/web",
        )


def test_naive_timestamps_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="naive"):
        add_release(ledger, "1.0.0", pushed_at=datetime(2025, 1, 1))


def test_timestamps_come_back_in_utc(ledger: Ledger) -> None:
    local = datetime(2025, 6, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    release = add_release(ledger, "1.0.0", pushed_at=local)

    stored = ledger.get_release("web", "1.0.0")
    assert stored.pushed_at == local
    assert stored.pushed_at.tzinfo == UTC
    assert release.pushed_at == local
