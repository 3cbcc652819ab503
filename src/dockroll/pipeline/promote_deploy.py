"""Promotion into an environment dockroll runs: the deploy and the tags, under one lock.

:mod:`dockroll.pipeline.promote` plans and judges a promotion and writes tags;
here the release is deployed into the target first, and its tags move only
once it serves, so the registry never claims what the environment does not run.
"""

from __future__ import annotations

import time

from dockroll.config import Config
from dockroll.errors import DockrollError, RegistryError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger, Promotion
from dockroll.pipeline.deploy import deploy_release, open_environment
from dockroll.pipeline.promote import (
    PromotionPlan,
    PromotionResult,
    audit_promotion,
    record_promotion,
    refuse_denied,
    write_tags,
)
from dockroll.pipeline.registry_only import refuse_registry_only_into_a_running_environment
from dockroll.registry import RegistryClient
from dockroll.rollout.executor import RolloutOutcome

__all__ = ["promote_and_deploy", "refuse_registry_only_into_a_running_environment"]


def promote_and_deploy(
    plan: PromotionPlan,
    client: RegistryClient,
    ledger: Ledger,
    config: Config,
    *,
    progress: ProgressCallback = discard,
    lock_wait: float = 0.0,
) -> tuple[PromotionResult, RolloutOutcome | None]:
    """Promote ``plan``'s release into its target and deploy it, under the target's lock.

    The tags move once the release serves (or a canary holds at a step with
    its share). When anything fails (a frozen environment, a pull, a rollout)
    no tag has moved and the promotion is marked failed, so neither the
    registry nor the ledger is ahead of what runs. The deploy part is None
    when the release already runs there.
    """
    refuse_denied(plan, ledger, config.service)
    env = open_environment(config, plan.target, ledger, progress)
    reason = plan.reason or ""
    with env.held(ledger, progress, reason=reason, operation="promote", wait=lock_wait):
        started = time.monotonic()
        # Recorded first, so the deployment that follows is newer than the promotion.
        promotion = None if plan.nothing_to_do else record_promotion(plan, ledger)
        try:
            outcome = deploy_release(
                config,
                plan.target,
                plan.release,
                ledger,
                progress=progress,
                reason=plan.reason,
                env=env,
                promoting=True,
            )
        except BaseException as exc:
            if promotion is not None:
                _record_failure(plan, ledger, promotion, exc, progress)
            raise
        written: list[str] = []
        sent = 0
        if promotion is not None:
            try:
                written, sent = write_tags(plan, client, progress)
            except DockrollError as exc:
                why = f"tags not moved: {exc}"
                audit_promotion(plan, ledger, config.service, written, error=why)
                raise RegistryError(
                    f"{plan.release.version} runs in {plan.target}, but its tags could not be "
                    f"moved: {exc.message}",
                    hint=f"`dockroll promote {plan.reference} --to {plan.target}` again points "
                    "them at it",
                ) from exc
            audit_promotion(plan, ledger, config.service, written)
    result = PromotionResult(
        plan=plan,
        written=tuple(written),
        bytes_sent=sent,
        seconds=time.monotonic() - started,
        promotion=promotion,
    )
    return result, outcome


def _record_failure(
    plan: PromotionPlan,
    ledger: Ledger,
    promotion: Promotion,
    exc: BaseException,
    progress: ProgressCallback,
) -> None:
    try:
        ledger.fail_promotion(promotion)
        audit_promotion(plan, ledger, promotion.service, [], error=str(exc) or type(exc).__name__)
    except Exception as record_error:  # the ledger may be what failed
        progress(Progress("promote", f"could not record the failed promotion: {record_error}"))
