"""The promotion gates, one verdict at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dockroll.config import Config
from dockroll.errors import UsageError
from dockroll.policy import (
    Approval,
    Candidate,
    PromotionFacts,
    environment_order,
    evaluate_promotion,
    in_window,
    mutable_tags,
    source_environment,
)
from dockroll.refs import Digest

DIGEST = Digest("sha256:" + "a" * 64)
OTHER = Digest("sha256:" + "b" * 64)
# A Wednesday, 10:30 in Berlin (09:30 UTC in winter).
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def config(**prod: Any) -> Config:
    return Config.model_validate(
        {
            "service": "web",
            "image": "127.0.0.1:5000/acme/web",
            "environments": {
                "dev": {"port": 8081, "tags": ["dev"]},
                "staging": {"port": 8082, "promote_from": "dev", "tags": ["staging"]},
                "prod": {"port": 8083, "promote_from": "staging", **prod},
            },
        }
    )


def candidate(reference: str = "v1.2.0") -> Candidate:
    return Candidate(service="web", version="v1.2.0", digest=DIGEST, reference=reference)


def facts(**overrides: Any) -> PromotionFacts:
    values: dict[str, Any] = {
        "promoter": "alice",
        "now": NOW,
        "source_digest": DIGEST,
        "source_since": NOW - timedelta(hours=2),
    }
    values.update(overrides)
    return PromotionFacts(**values)


def gate(decision: Any, name: str) -> Any:
    return next(v for v in decision.verdicts if v.gate == name)


def test_environment_order_follows_promote_from() -> None:
    assert environment_order(config()) == ["dev", "staging", "prod"]


@pytest.mark.parametrize(
    ("target", "requested", "expected"),
    [("dev", None, None), ("staging", None, "dev"), ("prod", "staging", "staging")],
)
def test_source_environment(target: str, requested: str | None, expected: str | None) -> None:
    assert source_environment(config(), target, requested) == expected


def test_skipping_an_environment_is_refused_with_the_way_forward() -> None:
    with pytest.raises(UsageError, match="cannot be skipped") as info:
        source_environment(config(), "prod", "dev")
    assert "promote to staging first" in str(info.value)


def test_unknown_environment_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="dev, staging, prod"):
        source_environment(config(), "qa", None)


def test_clean_promotion_passes_every_gate() -> None:
    decision = evaluate_promotion(config(), "prod", candidate(), facts(), "staging")
    assert decision.allowed, [str(v) for v in decision.verdicts]
    assert [v.gate for v in decision.verdicts] == ["order", "source", "immutable"]


def test_source_must_hold_the_digest() -> None:
    decision = evaluate_promotion(
        config(), "prod", candidate(), facts(source_digest=OTHER), "staging"
    )
    verdict = gate(decision, "source")
    assert not verdict.passed
    assert "promote v1.2.0 to staging first" in verdict.remedy


@pytest.mark.parametrize("reference", ["latest", "staging", "127.0.0.1:5000/acme/web:latest"])
def test_moving_tags_never_reach_prod(reference: str) -> None:
    decision = evaluate_promotion(config(), "prod", candidate(reference), facts(), "staging")
    verdict = gate(decision, "immutable")
    assert not verdict.passed
    assert DIGEST in verdict.detail


def test_moving_tags_allowed_where_configured() -> None:
    decision = evaluate_promotion(
        config(allow_mutable_tags=True), "prod", candidate("latest"), facts(), "staging"
    )
    assert gate(decision, "immutable").passed


def test_mutable_tags_include_environment_tags_but_not_versioned_ones() -> None:
    tags = mutable_tags(config(tags=["prod", "prod-{{version}}"]))
    assert {"latest", "edge", "dev", "staging", "prod"} <= tags
    assert "prod-{{version}}" not in tags


def test_approval_required() -> None:
    cfg = config(requires_approval=True)
    missing = evaluate_promotion(cfg, "prod", candidate(), facts(), "staging")
    assert "dockroll approve v1.2.0 --env prod" in gate(missing, "approval").remedy
    by_bob = facts(approvals=[Approval(by="bob", at=NOW)])
    assert evaluate_promotion(cfg, "prod", candidate(), by_bob, "staging").allowed


def test_self_approval_refused_unless_allowed() -> None:
    own = facts(approvals=[Approval(by="alice", at=NOW)])
    refused = evaluate_promotion(
        config(requires_approval=True), "prod", candidate(), own, "staging"
    )
    assert "self-approval" in gate(refused, "approval").detail
    allowed = evaluate_promotion(
        config(requires_approval=True, allow_self_approval=True),
        "prod",
        candidate(),
        own,
        "staging",
    )
    assert allowed.allowed


def test_soak_time() -> None:
    cfg = config(min_soak="4h")
    young = evaluate_promotion(cfg, "prod", candidate(), facts(), "staging")
    verdict = gate(young, "soak")
    assert not verdict.passed
    assert "wait 2:00:00 more" in verdict.remedy
    old = facts(source_since=NOW - timedelta(hours=5))
    assert evaluate_promotion(cfg, "prod", candidate(), old, "staging").allowed


WINDOW = {"days": ["mon", "tue", "wed", "thu"], "start": "09:00", "end": "16:00",
          "timezone": "Europe/Berlin"}  # fmt: skip


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 11, 25, 9, 30, tzinfo=UTC), True),  # Wed 10:30 Berlin
        (datetime(2026, 11, 25, 7, 59, tzinfo=UTC), False),  # Wed 08:59 Berlin
        (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), False),  # Wed 16:00 Berlin: end is exclusive
        (datetime(2026, 11, 27, 10, 0, tzinfo=UTC), False),  # Friday
        (datetime(2026, 7, 1, 7, 30, tzinfo=UTC), True),  # Wed 09:30 Berlin in summer time
    ],
)
def test_deployment_window(when: datetime, inside: bool) -> None:
    cfg = config(window=WINDOW)
    window = cfg.environment("prod").window
    assert window is not None
    assert in_window(window, when) is inside


def test_window_refusal_and_override_with_reason() -> None:
    cfg = config(window=WINDOW)
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    refused = evaluate_promotion(cfg, "prod", candidate(), facts(now=friday), "staging")
    assert "--override-window --reason" in gate(refused, "window").remedy
    overridden = facts(now=friday, window_override_reason="hotfix for INC-42")
    decision = evaluate_promotion(cfg, "prod", candidate(), overridden, "staging")
    assert decision.allowed
    assert "INC-42" in gate(decision, "window").detail


def test_first_environment_has_no_source_gate() -> None:
    decision = evaluate_promotion(config(), "dev", candidate(), facts(), None)
    assert decision.allowed
    assert "source" not in [v.gate for v in decision.verdicts]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"days": ["funday"]}, "days are"),
        ({"start": "9am"}, "time of day"),
        ({"start": "17:00", "end": "09:00"}, "start before it ends"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_bad_windows_are_config_errors(window: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(window=window)
