"""Shared builders: GitHub-like event fixtures modelled on docker/metadata-action's."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

NOW = datetime(2020, 1, 10, 0, 30, tzinfo=UTC)
SHA_DEV = "860c1904a1ce19322e91ac35af1ab07466440c37"
SHA_MASTER = "266574110acf203503badf966df2ea24b5d732d7"
SHA_INVALID = "983315b5e8d46e46fc4c49869e85e7ee5fb289ba"
SHA_PR = "a9c8c5828b91be19d9728548b24759e352367ef1"
SHA_PR_HEAD = "3370e228f2209994d57af4427fe64e71bb79ac96"

REPOSITORY = {
    "name": "Hello-World",
    "full_name": "octocat/Hello-World",
    "html_url": "https://github.com/octocat/Hello-World",
    "description": "This your first repo!",
    "default_branch": "master",
    "license": {"key": "mit", "spdx_id": "MIT"},
}

_PR_PAYLOAD = {
    "number": 15,
    "pull_request": {
        "number": 15,
        "head": {"ref": "test-pr", "sha": SHA_PR_HEAD},
        "base": {"ref": "master", "sha": SHA_MASTER},
    },
}

# name -> (event, ref, sha, extra payload)
EVENTS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "push_dev": ("push", "refs/heads/dev", SHA_DEV, {}),
    "push_master": ("push", "refs/heads/master", SHA_MASTER, {}),
    "push_invalidchars": ("push", "refs/heads/my/feature#1245", SHA_INVALID, {}),
    "workflow_dispatch": ("workflow_dispatch", "refs/heads/master", SHA_DEV, {}),
    "tag_release1": ("push", "refs/tags/release1", SHA_DEV, {}),
    "tag_20200110-RC2": ("push", "refs/tags/20200110-RC2", SHA_DEV, {}),
    "tag_v1.1.1": ("push", "refs/tags/v1.1.1", SHA_DEV, {"base_ref": "refs/heads/master"}),
    "tag_v2.0.8-beta.67": ("push", "refs/tags/v2.0.8-beta.67", SHA_DEV, {}),
    "tag_sometag": ("push", "refs/tags/sometag", SHA_DEV, {}),
    "tag_p1-v1.0.0": ("push", "refs/tags/p1/v1.0.0", SHA_DEV, {}),
    "tag_1.2": ("push", "refs/tags/1.2", SHA_DEV, {}),
    "tag_1.1beta2": ("push", "refs/tags/1.1beta2", SHA_DEV, {}),
    "tag_1.0dev4": ("push", "refs/tags/1.0dev4", SHA_DEV, {}),
    "tag_1.2.3rc2": ("push", "refs/tags/1.2.3rc2", SHA_DEV, {}),
    "tag_1.2post1": ("push", "refs/tags/1.2post1", SHA_DEV, {}),
    "tag_v1.2.3rc2": ("push", "refs/tags/v1.2.3rc2", SHA_DEV, {}),
    "tag_v9.5.7-alpha.2+fork.3.1.8": (
        "push",
        "refs/tags/v9.5.7-alpha.2+fork.3.1.8",
        SHA_DEV,
        {},
    ),
    "pull_request": ("pull_request", "refs/pull/15/merge", SHA_PR, _PR_PAYLOAD),
    # pull_request_target runs on the base branch; the PR number comes from the payload.
    "pull_request_target": ("pull_request_target", "refs/heads/master", SHA_MASTER, _PR_PAYLOAD),
    "schedule": ("schedule", "refs/heads/master", SHA_DEV, {}),
    "release_created": ("release", "refs/tags/v1.1.1", SHA_DEV, {"action": "created"}),
    "issues": ("issues", "refs/heads/master", SHA_DEV, {}),
}

GithubEnv = Callable[..., dict[str, str]]


@pytest.fixture
def github_env(tmp_path: Path) -> GithubEnv:
    """Build a GitHub Actions environment (and event file) for a named event."""

    def build(name: str, **extra: str) -> dict[str, str]:
        event, ref, sha, payload_extra = EVENTS[name]
        payload: dict[str, Any] = {"ref": ref, "repository": REPOSITORY, **payload_extra}
        if event == "push":
            payload["head_commit"] = {"id": sha, "timestamp": "2020-01-10T01:30:00+01:00"}
        event_path = tmp_path / f"event_{name}.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REF": ref,
            "GITHUB_SHA": sha,
            "GITHUB_REPOSITORY": "docker/test-docker-action",
            "GITHUB_RUN_NUMBER": "15",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
        }
        env.update(extra)
        return env

    return build


@pytest.fixture
def repo_json(tmp_path: Path) -> Path:
    """A saved GitHub repository object, like the action's repo.json fixture."""
    path = tmp_path / "repo.json"
    path.write_text(json.dumps({**REPOSITORY, "id": 1296269}), encoding="utf-8")
    return path


def oci_labels(version: str, revision: str, **overrides: str) -> dict[str, str]:
    """The OCI labels the action's fixtures expect, keyed and sorted."""
    labels = {
        "org.opencontainers.image.created": "2020-01-10T00:30:00.000Z",
        "org.opencontainers.image.description": "This your first repo!",
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": "https://github.com/octocat/Hello-World",
        "org.opencontainers.image.title": "Hello-World",
        "org.opencontainers.image.url": "https://github.com/octocat/Hello-World",
        "org.opencontainers.image.version": version,
    }
    labels.update(overrides)
    return dict(sorted(labels.items()))
