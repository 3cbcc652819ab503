"""The guard of ``promote --registry-only``, kept apart from the deploy pipeline.

A promotion that only moves tags needs to know what runs in the target, not
how to deploy there: this module reads the replicas' labels from the engine
and nothing else, so the command loads neither the rollout executor nor the
router.
"""

from __future__ import annotations

from dockroll import labels
from dockroll.config import Config
from dockroll.errors import DockrollError, UsageError
from dockroll.pipeline.engines import environment_engine
from dockroll.pipeline.promote import PromotionPlan

__all__ = ["refuse_registry_only_into_a_running_environment"]


def refuse_registry_only_into_a_running_environment(config: Config, plan: PromotionPlan) -> None:
    """Refuse ``--registry-only`` where dockroll runs another release.

    Its tags would then claim the environment runs what it does not. An
    environment with no replicas here (fed by its tag, or whose engine this
    machine cannot reach) is left to the tag alone.
    """
    engine = environment_engine(config, plan.target)
    try:
        engine.ping()
        running = [
            info
            for info in engine.containers(labels.selector(config.service, plan.target))
            if info.running
        ]
    except DockrollError:
        return
    finally:
        engine.close()
    others = sorted(
        {
            info.labels.get(labels.VERSION, "")
            for info in running
            if info.labels.get(labels.DIGEST, "") != plan.release.digest
        }
    )
    if others:
        raise UsageError(
            f"{plan.target} runs {', '.join(others)}, deployed by dockroll: --registry-only "
            f"would point its tags at {plan.release.version} while the old release keeps "
            "serving",
            hint=f"`dockroll promote {plan.reference} --to {plan.target}` (without "
            "--registry-only) moves the tags and deploys the release together",
        )
