"""Promotions, approvals and what an environment runs."""

from __future__ import annotations

import pytest

from dockroll.errors import LedgerError
from dockroll.ledger import (
    DeploymentStatus,
    Ledger,
    PromotionStatus,
    Release,
    ReleaseId,
)
from tests.unit.ledger.conftest import add_release, digest_of


def test_record_promotion_keeps_every_field(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    promotion = ledger.record_promotion(
        release,
        from_env="dev",
        to_env="staging",
        tags=["staging", "staging-1.0.0"],
        reason="QA sign-off",
        notes="## 1.0.0\n- faster checkout",
        who="bob",
    )

    assert promotion.release_id == release.id
    assert promotion.version == "1.0.0"
    assert promotion.digest == release.digest
    assert (promotion.from_env, promotion.to_env) == ("dev", "staging")
    assert promotion.tags == ("staging", "staging-1.0.0")
    assert promotion.status is PromotionStatus.SUCCEEDED
    assert promotion.promoted_by == "bob"
    assert promotion.notes == "## 1.0.0\n- faster checkout"
    assert ledger.promotions("web") == [promotion]


def test_promotions_newest_first_and_filtered_by_target_env(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    first = ledger.record_promotion(one, from_env="dev", to_env="staging")
    second = ledger.record_promotion(one, from_env="staging", to_env="prod")
    third = ledger.record_promotion(two, from_env="dev", to_env="staging")
    ledger.record_promotion(add_release(ledger, "1.0.0", service="api"), to_env="staging")

    assert ledger.promotions("web") == [third, second, first]
    assert ledger.promotions("web", "staging") == [third, first]
    assert ledger.promotions("web", "prod") == [second]
    assert ledger.promotions("web", limit=1) == [third]


def test_a_release_from_another_ledger_is_refused(ledger: Ledger) -> None:
    add_release(ledger, "1.0.0")
    stranger = Release(
        id=ReleaseId(999),
        service="web",
        version="1.0.0",
        digest=digest_of("x"),
        registry="r",
        repository="r",
        tags=(),
        pushed_at=ledger.get_release("web", "1.0.0").pushed_at,
        created_by="x",
        created_at=ledger.get_release("web", "1.0.0").created_at,
    )
    with pytest.raises(LedgerError, match="not recorded"):
        ledger.record_promotion(stranger, to_env="staging")
    with pytest.raises(LedgerError, match="not recorded"):
        ledger.record_approval(stranger, "prod")
    with pytest.raises(LedgerError, match="not recorded"):
        ledger.start_deployment(stranger, "prod", strategy="rolling")


def test_approvals_by_version_and_env_newest_first(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    a = ledger.record_approval(one, "prod", note="change CHG-1", who="carol")
    b = ledger.record_approval(one, "prod", who="dave")
    c = ledger.record_approval(one, "staging")
    ledger.record_approval(two, "prod")

    assert ledger.approvals("web", "1.0.0", "prod") == [b, a]
    assert ledger.approvals("web", "1.0.0") == [c, b, a]
    assert a.approved_by == "carol"
    assert a.note == "change CHG-1"
    assert a.version == "1.0.0"
    assert a.digest == one.digest
    assert c.approved_by == "alice"
    assert ledger.approvals("web", "3.0.0", "prod") == []
    assert ledger.approvals("api", "1.0.0", "prod") == []


def test_current_release_follows_the_last_promotion(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    assert ledger.current_release("web", "staging") is None

    ledger.record_promotion(one, from_env="dev", to_env="staging")
    assert ledger.current_release("web", "staging") == one
    ledger.record_promotion(two, from_env="dev", to_env="staging")
    assert ledger.current_release("web", "staging") == two
    ledger.record_promotion(one, to_env="staging", status=PromotionStatus.FAILED)
    assert ledger.current_release("web", "staging") == two
    assert ledger.current_release("web", "prod") is None


def test_current_release_follows_the_last_succeeded_deployment(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    first = ledger.start_deployment(one, "prod", strategy="rolling")
    ledger.finish_deployment(first, DeploymentStatus.SUCCEEDED)
    assert ledger.current_release("web", "prod") == one

    # The new release is promoted, but its deployment fails: the old one still runs.
    ledger.record_promotion(two, from_env="staging", to_env="prod")
    assert ledger.current_release("web", "prod") == two
    failed = ledger.start_deployment(two, "prod", strategy="rolling")
    assert ledger.current_release("web", "prod") == one
    ledger.finish_deployment(failed, DeploymentStatus.FAILED)
    assert ledger.current_release("web", "prod") == one

    retried = ledger.start_deployment(two, "prod", strategy="blue-green")
    ledger.finish_deployment(retried, DeploymentStatus.SUCCEEDED)
    assert ledger.current_release("web", "prod") == two
