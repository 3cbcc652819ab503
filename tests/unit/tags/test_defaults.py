"""The two default rule sets, as docs/configuration.md's table shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.tags import ACTION_DEFAULT_RULES, DEFAULT_RULES, compute, detect_context
from tests.unit.tags.conftest import NOW, SHA_DEV

# build -> (event, ref, dockroll's defaults, the action's defaults)
TABLE: dict[str, tuple[str, str, list[str], list[str]]] = {
    "release": (
        "push",
        "refs/tags/v1.2.3",
        ["v1.2.3", "1.2", "git-860c190", "latest"],
        ["v1.2.3", "latest"],
    ),
    "pre-release": (
        "push",
        "refs/tags/v1.3.0-rc.1",
        ["v1.3.0-rc.1", "1.3.0-rc.1", "git-860c190"],
        ["v1.3.0-rc.1", "latest"],
    ),
    "other-tag": (
        "push",
        "refs/tags/release1",
        ["release1", "git-860c190", "latest"],
        ["release1", "latest"],
    ),
    "branch": ("push", "refs/heads/main", ["main-860c190", "git-860c190"], ["main"]),
    "pull-request": ("pull_request", "refs/pull/15/merge", ["pr-15", "git-860c190"], ["pr-15"]),
    "schedule": (
        "schedule",
        "refs/heads/main",
        ["main-860c190", "git-860c190"],
        ["nightly", "main"],
    ),
}


@pytest.mark.parametrize("build", TABLE)
def test_documented_defaults(tmp_path: Path, build: str) -> None:
    event, ref, ours, actions = TABLE[build]
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"repository": {"default_branch": "main"}}), encoding="utf-8")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_REF": ref,
        "GITHUB_SHA": SHA_DEV,
    }
    context = detect_context(env, cwd=tmp_path)
    assert list(compute(context, now=NOW).bare_tags) == ours
    assert list(compute(context, now=NOW, default_rules=DEFAULT_RULES).bare_tags) == ours
    actual = compute(context, now=NOW, default_rules=ACTION_DEFAULT_RULES).bare_tags
    assert list(actual) == actions
