"""Imports point down: a lower layer never loads a higher one (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dockroll import analysis
from dockroll.analysis import settings as old_settings
from dockroll.checks import settings

_PROBE = "import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"


def _loaded_by(module: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("module", "above"),
    [
        ("dockroll.config", ("dockroll.analysis", "dockroll.rollout", "dockroll.pipeline")),
        ("dockroll.checks.settings", ("dockroll.config", "dockroll.analysis")),
    ],
)
def test_a_layer_does_not_import_the_ones_above(module: str, above: tuple[str, ...]) -> None:
    loaded = _loaded_by(module)
    wrong = sorted(m for m in loaded if any(m == a or m.startswith(f"{a}.") for a in above))
    assert wrong == [], f"{module} loads {wrong}"


def test_the_settings_models_stay_importable_from_the_analysis_package() -> None:
    assert analysis.AnalysisSettings is settings.AnalysisSettings
    assert old_settings.NoDataPolicy is settings.NoDataPolicy
    assert old_settings.__all__ == settings.__all__
