"""The CI definitions: the GitHub Actions workflow and the GitLab CI template.

actionlint checks the workflow the way GitHub will run it (expressions and their
types, action inputs, job dependencies, runner labels, and the `run:` scripts
through shellcheck and pyflakes when those are installed). The JSON schemas that
SchemaStore publishes, as bundled in check-jsonschema's wheel, check both files'
structure offline. A broken sample proves each checker still fails on findings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import validators

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
CI_CD = ROOT / ".github" / "workflows" / "ci-cd.yml"
GITLAB = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"

BROKEN_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ steps.nowhere.outputs.version }}
"""


def _actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
        "actionlint"
    )
    if found is None:
        pytest.fail("actionlint is not installed: pip install -e '.[dev]'")
    return found


def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def _schema_errors(schema: str, document: dict[Any, Any]) -> list[str]:
    """What a SchemaStore schema vendored in check-jsonschema's wheel finds (no download)."""
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / f"{schema}.json"
    loaded = json.loads(vendored.read_text(encoding="utf-8"))
    validator_class = validators.validator_for(loaded)
    validator = validator_class(loaded, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:300]}"
        for error in validator.iter_errors(document)
    ]


def _load(text: str) -> dict[Any, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    # YAML 1.1 reads the bare key `on` as the boolean True; GitHub reads YAML 1.2.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _workflow(path: Path) -> dict[Any, Any]:
    return _load(path.read_text(encoding="utf-8"))


def test_there_are_workflows() -> None:
    assert CI_CD in WORKFLOWS


def test_actionlint_finds_nothing() -> None:
    result = _run([_actionlint(), "-no-color", "-oneline", *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow() -> None:
    result = _run(
        [_actionlint(), "-no-color", "-oneline", "-stdin-filename", "broken.yml", "-"],
        stdin=BROKEN_WORKFLOW,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'property "nowhere" is not defined' in result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_the_github_workflow_schema(path: Path) -> None:
    assert _schema_errors("github-workflows", _workflow(path)) == []


def test_the_github_workflow_schema_rejects_a_workflow_without_jobs() -> None:
    assert _schema_errors("github-workflows", _load("on: push\nname: no jobs\n")) != []


def test_gitlab_template_matches_the_gitlab_ci_schema() -> None:
    assert _schema_errors("gitlab-ci", _load(GITLAB.read_text(encoding="utf-8"))) == []


def test_the_gitlab_ci_schema_rejects_a_misspelt_keyword() -> None:
    broken = _load("build:\n  stage: build\n  scriptt: [make]\n")
    assert _schema_errors("gitlab-ci", broken) != []


def test_workflow_triggers() -> None:
    on = _workflow(CI_CD)["on"]
    assert on["push"]["branches"] == ["main", "develop"]
    assert on["pull_request"]["branches"] == ["main"]
    assert on["release"]["types"] == ["published"]
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == ["staging", "prod"]
    assert inputs["version"]["required"] is True


def test_workflow_permissions_are_per_job() -> None:
    workflow = _workflow(CI_CD)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        assert job["permissions"].get("contents") == "read", name


def test_nothing_is_pushed_or_deployed_for_a_pull_request() -> None:
    jobs = _workflow(CI_CD)["jobs"]
    steps = {step.get("name"): step for step in jobs["build-test-push"]["steps"]}
    for name in ("Log in to GHCR", "Push every tag to GHCR"):
        assert steps[name]["if"] == "github.event_name != 'pull_request'"
    assert "pull_request" not in jobs["deploy-dev"]["if"]


def test_each_environment_has_its_job_and_concurrency_group() -> None:
    jobs = _workflow(CI_CD)["jobs"]
    for job, environment in (
        ("deploy-dev", "dev"),
        ("promote-staging", "staging"),
        ("promote-prod", "prod"),
    ):
        assert jobs[job]["environment"]["name"] == environment
        assert jobs[job]["concurrency"] == {
            "group": f"deploy-{environment}",
            "cancel-in-progress": False,
        }
    for job in ("promote-staging", "promote-prod"):
        assert jobs[job]["if"].startswith("github.event_name == 'workflow_dispatch'")


def test_actions_are_pinned() -> None:
    for step in (
        step for job in _workflow(CI_CD)["jobs"].values() for step in job["steps"] if "uses" in step
    ):
        action, _, ref = step["uses"].partition("@")
        assert ref, action
        # A major version (v4) or a full commit.
        assert (ref.startswith("v") and ref[1:].isdigit()) or len(ref) == 40, step["uses"]


def test_gitlab_template_stages_and_promotions() -> None:
    template = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    assert template["stages"] == ["build", "test", "scan", "push", "deploy"]
    for job, environment in (("promote-staging", "staging"), ("promote-prod", "prod")):
        assert template[job]["environment"]["name"] == environment
        assert all(rule.get("when") == "manual" for rule in template[job]["rules"])
    assert template["deploy-dev"]["environment"]["name"] == "dev"
    assert "when" not in template["deploy-dev"]["rules"][0]
