"""``dockroll tags`` through ``main(argv)``: the action's inputs vs dockroll.yml's rules."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.cli.app import main
from dockroll.config import load_config
from dockroll.pipeline.metadata import release_metadata

SHA = "860c1904a1ce19322e91ac35af1ab07466440c37"
REPOSITORY = {
    "name": "Hello-World",
    "html_url": "https://github.com/octocat/Hello-World",
    "description": "This your first repo!",
    "default_branch": "master",
    "license": {"spdx_id": "MIT"},
}


@pytest.fixture(autouse=True)
def github_push(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitHub Actions push of ``SHA`` to ``ref``, run in an empty directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    for name in ("DOCKROLL_CONFIG", "DOCKROLL_DEBUG", "GITHUB_TOKEN", "SOURCE_DATE_EPOCH"):
        monkeypatch.delenv(name, raising=False)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": REPOSITORY}), encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_REF", "refs/heads/dev")
    monkeypatch.setenv("GITHUB_SHA", SHA)
    return work


def _on_tag(monkeypatch: pytest.MonkeyPatch, tag: str) -> None:
    monkeypatch.setenv("GITHUB_REF", f"refs/tags/{tag}")


def _tags(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["--json", "tags", *argv]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return list(data["tags"])


def _config(work: Path, rules: list[str] | None = None, flavor: list[str] | None = None) -> None:
    lines = ["service: web", "image: 127.0.0.1:5000/team/web", "tags:"]
    lines.append(f"  rules: {json.dumps(rules or [])}")
    lines.append(f"  flavor: {json.dumps(flavor or [])}")
    (work / "dockroll.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- --images without --tags: the action's defaults ------------------------------------


def test_images_without_tags_give_the_actions_default_tags_on_a_branch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _tags(capsys, "--images", "user/app") == ["user/app:dev"]


def test_images_without_tags_give_the_actions_default_tags_on_a_release(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _on_tag(monkeypatch, "v1.2.3")
    assert _tags(capsys, "--images", "user/app") == ["user/app:v1.2.3", "user/app:latest"]


def test_images_ignore_the_tags_section_of_dockroll_yml(
    capsys: pytest.CaptureFixture[str], github_push: Path
) -> None:
    # --images stands for the action's inputs; dockroll.yml's rules and flavor are not
    # mixed in, or the same workflow inputs would give other tags here.
    _config(github_push, rules=["type=sha,prefix=git-"], flavor=["suffix=-x"])
    assert _tags(capsys, "--images", "user/app") == ["user/app:dev"]
    assert _tags(capsys, "--images", "user/app", "--tags", "type=raw,value=a") == ["user/app:a"]


# --- dockroll.yml: empty rules keep dockroll's defaults -------------------------------


def test_config_with_empty_rules_keeps_dockrolls_defaults_on_a_branch(
    capsys: pytest.CaptureFixture[str], github_push: Path
) -> None:
    _config(github_push)
    image = "127.0.0.1:5000/team/web"
    assert _tags(capsys) == [f"{image}:dev-860c190", f"{image}:git-860c190"]


def test_config_with_empty_rules_keeps_dockrolls_defaults_on_a_release(
    capsys: pytest.CaptureFixture[str], github_push: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(github_push)
    _on_tag(monkeypatch, "v1.2.3")
    image = "127.0.0.1:5000/team/web"
    assert _tags(capsys) == [
        f"{image}:v1.2.3",
        f"{image}:1.2",
        f"{image}:git-860c190",
        f"{image}:latest",
    ]


def test_config_rules_and_flavor_apply_without_images(
    capsys: pytest.CaptureFixture[str], github_push: Path
) -> None:
    _config(github_push, rules=["type=sha"], flavor=["suffix=-x"])
    assert _tags(capsys) == ["127.0.0.1:5000/team/web:sha-860c190-x"]


# --- the images input's attribute form -------------------------------------------------


@pytest.mark.parametrize(
    "images",
    [
        ["org/app", "ghcr.io/user/app,enable=false"],
        ["org/app", "name=ghcr.io/user/app,enable=false"],
        ["org/app\nname=ghcr.io/user/app,enable=false"],
        ["name=org/app,enable=true", "ghcr.io/user/app,enable=false"],
    ],
    ids=["bare-name", "name-attribute", "one-block", "both-attributes"],
)
def test_an_image_with_enable_false_is_left_out(
    capsys: pytest.CaptureFixture[str], images: list[str]
) -> None:
    argv = [arg for image in images for arg in ("--images", image)]
    assert _tags(capsys, *argv, "--tags", "type=sha") == ["org/app:sha-860c190"]


def test_comma_separated_names_are_several_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tags(capsys, "--images", "org/app,ghcr.io/User/App") == [
        "org/app:dev",
        "ghcr.io/user/app:dev",
    ]


def test_only_disabled_images_give_bare_tag_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert _tags(capsys, "--images", "org/app,enable=false") == ["dev"]


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (["org/app,size=3"], "unknown attribute 'size' in image entry 'org/app,size=3'"),
        (["value=org/app"], "unknown attribute 'value' in image entry 'value=org/app'"),
        (["name=,enable=true"], "image entry 'name=,enable=true' has no name"),
        (["enable=false"], "image entry 'enable=false' has no name"),
        (["org/app,enable=no"], "invalid enable value 'no' in image entry 'org/app,enable=no'"),
        (
            ["org/app,name=ghcr.io/user/app"],
            "image entry 'org/app,name=ghcr.io/user/app' names more than one image",
        ),
        (["org/app", "a/b,c/d"], "image entry 'a/b,c/d' names more than one image"),
        (["org/app,,enable=false"], "malformed image entry 'org/app,,enable=false': empty field"),
    ],
)
def test_malformed_image_entries_are_refused(
    capsys: pytest.CaptureFixture[str], images: list[str], message: str
) -> None:
    argv = [arg for image in images for arg in ("--images", image)]
    assert main(["tags", *argv]) == 2
    captured = capsys.readouterr()
    assert message in " ".join(captured.err.split())
    assert captured.out == ""


def test_annotations_reach_the_github_outputs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    argv = ["--images", "user/app", "--labels", "maintainer=Ops", "--github-output"]
    argv += ["--annotations", "org.opencontainers.image.title=Web"]
    assert _tags(capsys, *argv) == ["user/app:dev"]
    outputs = _heredocs(output.read_text(encoding="utf-8"))
    assert "manifest:org.opencontainers.image.title=Web" in outputs["annotations"]
    assert not any("maintainer" in line for line in outputs["annotations"])
    assert "maintainer=Ops" in outputs["labels"]


def _heredocs(text: str) -> dict[str, list[str]]:
    """The multi-line outputs of a $GITHUB_OUTPUT file, by name."""
    outputs: dict[str, list[str]] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, sep, delimiter = line.partition("<<")
        if sep:
            outputs[name] = list(iter(lines.__next__, delimiter))
    return outputs


# --- the CI workflow -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _workflow_tags_command() -> list[str]:
    """The `dockroll tags` command of ci-cd.yml's `meta` step, as argv."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci-cd.yml").read_text("utf-8"))
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    (script,) = [step["run"] for step in steps if step.get("id") == "meta"]
    lines = iter(script.splitlines())
    command = next(line for line in lines if "dockroll" in line and " tags" in line)
    while command.endswith("\\"):
        command = command[:-1] + next(lines)
    argv = shlex.split(os.path.expandvars(command.partition(">")[0]))
    assert argv[0] == "dockroll"
    return argv[1:]


def test_the_workflows_tags_step_agrees_with_dockroll_build(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The workflow tags the multi-platform build with these; `dockroll build` computes
    # its own from dockroll.yml. Both must name the same release.
    monkeypatch.setenv("DOCKROLL_REGISTRY", "ghcr.io/acme")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    monkeypatch.chdir(ROOT / "examples" / "flask-app")
    argv = _workflow_tags_command()
    assert main(argv) == 0
    computed = json.loads(capsys.readouterr().out)
    built = release_metadata(load_config(None))
    assert computed["tags"] == list(built.tags)
    assert computed["tags"][0].startswith("ghcr.io/acme/dockroll/flask-app:")


def test_a_malformed_image_entry_is_the_only_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside CI and git the context brings a warning; the bad input comes first, alone.
    for name in ("GITHUB_ACTIONS", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_SHA"):
        monkeypatch.delenv(name)
    assert main(["tags", "--images", "org/app", "--images", "a/b,c/d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: image entry 'a/b,c/d' names more than one image")
    assert "must be the only images line" in err
    assert "warning" not in err
