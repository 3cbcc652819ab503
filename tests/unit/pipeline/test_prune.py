"""Retention's selection: seeded history in, exactly what must be kept out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from dockroll.config import Config
from dockroll.errors import UsageError
from dockroll.ledger import Release, ReleaseId
from dockroll.pipeline.prune import (
    Disposition,
    PruneDecision,
    RegistryView,
    environment_tag_patterns,
    plan_prune,
)
from dockroll.refs import Digest

REGISTRY, REPOSITORY = "127.0.0.1:5000", "acme/web"
REPO = f"{REGISTRY}/{REPOSITORY}"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def digest(seed: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


def release(
    number: int,
    version: str,
    *,
    pushed_hours: int,
    built_hours: int | None = None,
    seed: str | None = None,
    repository: str = REPOSITORY,
) -> Release:
    return Release(
        id=ReleaseId(number),
        service="web",
        version=version,
        digest=digest(seed or version),
        registry=REGISTRY,
        repository=repository,
        tags=(version,),
        pushed_at=T0 + timedelta(hours=pushed_hours),
        created_by="ci",
        created_at=T0 + timedelta(hours=pushed_hours),
        build_date=T0 + timedelta(hours=built_hours if built_hours is not None else pushed_hours),
    )


def view(releases: list[Release], extra_tags: dict[str, str] | None = None) -> RegistryView:
    tags = {r.version: r.digest for r in releases}
    tags.update({tag: digest(seed) for tag, seed in (extra_tags or {}).items()})
    return RegistryView(tags, frozenset(r.digest for r in releases))


def outcome(decisions: tuple[PruneDecision, ...]) -> dict[str, str]:
    return {d.release.version: d.disposition.value for d in decisions}


def test_keeps_the_newest_by_push_time_not_build_date() -> None:
    # 1.0.2 was built first but pushed last (a rebuild of an old commit pushed late).
    history = [
        release(1, "1.0.0", pushed_hours=1, built_hours=1),
        release(2, "1.0.1", pushed_hours=2, built_hours=10),
        release(3, "1.0.2", pushed_hours=3, built_hours=0),
        release(4, "1.0.3", pushed_hours=4, built_hours=4),
    ]
    plan = plan_prune(history, view(history), keep=2, repository=REPO, held={})
    assert outcome(plan.decisions) == {
        "1.0.3": "newest",
        "1.0.2": "newest",
        "1.0.1": "delete",
        "1.0.0": "delete",
    }
    assert [d.release.version for d in plan.decisions] == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    assert [d.release.version for d in plan.deletions] == ["1.0.1", "1.0.0"]


def test_held_protected_and_newest_are_kept_and_everything_else_goes() -> None:
    history = [release(n, f"1.0.{n}", pushed_hours=n) for n in range(1, 8)]
    registry = view(history, {"v1.0.2": "1.0.2", "prod": "1.0.3", "staging": "1.0.6"})
    plan = plan_prune(
        history,
        registry,
        keep=2,
        repository=REPO,
        held={"prod": digest("1.0.1"), "staging": None, "dev": digest("1.0.7")},
        env_tag_patterns={"prod": ("prod",), "staging": ("staging", "staging-*")},
        protected=["v*"],
    )
    assert outcome(plan.decisions) == {
        "1.0.7": "newest",
        "1.0.6": "newest",
        "1.0.5": "delete",
        "1.0.4": "delete",
        "1.0.3": "held",
        "1.0.2": "protected",
        "1.0.1": "held",
    }
    reasons = {d.release.version: d.reason for d in plan.decisions}
    assert reasons["1.0.7"] == "newest 2, running in dev"
    assert reasons["1.0.6"] == "newest 2, staging tag staging points at it"
    assert reasons["1.0.3"] == "prod tag prod points at it"
    assert reasons["1.0.2"] == "protected by tag v1.0.2"
    assert reasons["1.0.1"] == "running in prod"


def test_a_deletion_lists_every_tag_it_takes_with_it() -> None:
    history = [release(1, "1.0.0", pushed_hours=1), release(2, "1.0.1", pushed_hours=2)]
    registry = view(history, {"main-abc1234": "1.0.0", "git-abc1234": "1.0.0"})
    plan = plan_prune(history, registry, keep=1, repository=REPO, held={})
    (gone,) = plan.deletions
    assert gone.tags == ("1.0.0", "git-abc1234", "main-abc1234")


def test_a_digest_shared_with_a_kept_release_is_kept() -> None:
    history = [
        release(1, "1.0.0", pushed_hours=1, seed="same"),
        release(2, "1.0.0-rebuild", pushed_hours=2),
        release(3, "1.0.1", pushed_hours=3, seed="same"),
    ]
    plan = plan_prune(history, view(history), keep=1, repository=REPO, held={})
    assert outcome(plan.decisions) == {
        "1.0.1": "newest",
        "1.0.0-rebuild": "delete",
        "1.0.0": "shared_digest",
    }


def test_pattern_limits_what_is_considered_and_counted() -> None:
    history = [
        release(1, "v1.0.0", pushed_hours=1),
        release(2, "main-aaa", pushed_hours=2),
        release(3, "main-bbb", pushed_hours=3),
        release(4, "v1.1.0", pushed_hours=4),
        release(5, "main-ccc", pushed_hours=5),
    ]
    plan = plan_prune(history, view(history), keep=1, repository=REPO, held={}, pattern="main-*")
    assert outcome(plan.decisions) == {
        "main-ccc": "newest",
        "v1.1.0": "outside_pattern",
        "main-bbb": "delete",
        "main-aaa": "delete",
        "v1.0.0": "outside_pattern",
    }


def test_releases_gone_or_elsewhere_are_not_touched_and_not_counted() -> None:
    history = [
        release(1, "1.0.0", pushed_hours=1),
        release(2, "1.0.1", pushed_hours=2),
        release(3, "1.0.2", pushed_hours=3),
        release(4, "old-repo", pushed_hours=4, repository="acme/legacy"),
    ]
    registry = RegistryView(
        {"1.0.0": digest("1.0.0"), "1.0.1": digest("1.0.1")},
        frozenset({digest("1.0.0"), digest("1.0.1")}),
    )
    plan = plan_prune(history, registry, keep=1, repository=REPO, held={})
    assert outcome(plan.decisions) == {
        "old-repo": "other_repository",
        "1.0.2": "gone",
        "1.0.1": "newest",
        "1.0.0": "delete",
    }


def test_keep_zero_still_spares_what_runs() -> None:
    history = [release(1, "1.0.0", pushed_hours=1), release(2, "1.0.1", pushed_hours=2)]
    plan = plan_prune(
        history, view(history), keep=0, repository=REPO, held={"prod": digest("1.0.0")}
    )
    assert outcome(plan.decisions) == {"1.0.1": "delete", "1.0.0": "held"}
    assert all(d.keep == (d.disposition is not Disposition.DELETE) for d in plan.decisions)


def test_negative_keep_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--keep"):
        plan_prune([], RegistryView({}, frozenset()), keep=-1, repository=REPO, held={})


def test_environment_tag_templates_become_patterns() -> None:
    config = Config.model_validate(
        {
            "service": "web",
            "image": "127.0.0.1:5000/acme/web",
            "environments": {
                "staging": {"port": 8081, "tags": ["staging", "staging-{{version}}"]},
                "prod": {"port": 8082, "promote_from": "staging", "tags": ["prod-{{sha}}-x"]},
            },
        }
    )
    assert environment_tag_patterns(config) == {
        "staging": ("staging", "staging-*"),
        "prod": ("prod-*-x",),
    }
