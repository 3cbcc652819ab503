"""Default rules, build args, JSON and $GITHUB_OUTPUT rendering."""

from __future__ import annotations

import json

import pytest

from dockroll.tags import BuildContext, Metadata, RepoInfo, compute, github_output_lines
from tests.unit.tags.conftest import NOW, SHA_DEV

REPO = RepoInfo(
    name="app", default_branch="main", html_url="https://github.com/acme/app", license="MIT"
)


def _context(ref: str, event: str = "push", sha: str = SHA_DEV, run: str = "9") -> BuildContext:
    return BuildContext(
        source="github",
        event_name=event,
        ref=ref,
        sha=sha,
        commit_date=NOW,
        run_number=run,
        base_ref="",
        payload={"repository": {"default_branch": "main"}},
        repo=REPO,
    )


@pytest.mark.parametrize(
    ("ref", "event", "tags", "version"),
    [
        ("refs/tags/v1.2.3", "push", ("v1.2.3", "1.2", "git-860c190", "latest"), "v1.2.3"),
        (
            "refs/tags/v1.2.3-rc.1",
            "push",
            ("v1.2.3-rc.1", "1.2.3-rc.1", "git-860c190"),
            "v1.2.3-rc.1",
        ),
        ("refs/tags/1.0.0", "release", ("1.0.0", "1.0", "git-860c190", "latest"), "1.0.0"),
        ("refs/tags/release-7", "push", ("release-7", "git-860c190", "latest"), "release-7"),
        ("refs/heads/main", "push", ("main-860c190", "git-860c190"), "main-860c190"),
        ("refs/heads/feat/x", "push", ("feat-x-860c190", "git-860c190"), "feat-x-860c190"),
        ("refs/heads/main", "schedule", ("main-860c190", "git-860c190"), "main-860c190"),
        ("refs/pull/3/merge", "pull_request", ("pr-3", "git-860c190"), "pr-3"),
    ],
)
def test_default_rules(ref: str, event: str, tags: tuple[str, ...], version: str) -> None:
    meta = compute(_context(ref, event), images=["ghcr.io/Acme/App"], now=NOW)
    assert meta.bare_tags == tags
    assert meta.version == version
    assert meta.tags == tuple(f"ghcr.io/acme/app:{tag}" for tag in tags)
    assert meta.latest == ("latest" in tags)


def test_blank_and_comment_rules_mean_defaults() -> None:
    meta = compute(_context("refs/heads/main"), rules=["# nothing here", ""], now=NOW)
    assert meta.bare_tags == ("main-860c190", "git-860c190")


def test_rules_block_in_one_item() -> None:
    block = "# from a workflow\ntype=ref,event=branch\n\ntype=sha\n"
    assert compute(_context("refs/heads/main"), rules=[block], now=NOW).bare_tags == (
        "main",
        "sha-860c190",
    )


@pytest.mark.parametrize(
    ("sha", "run", "rules", "expected"),
    [
        (
            SHA_DEV,
            "9",
            ["type=raw,v9"],
            {"APP_VERSION": "v9", "GIT_SHA": "860c190", "BUILD_NUMBER": "9"},
        ),
        (
            SHA_DEV,
            "",
            ["type=ref,event=pr"],
            {"APP_VERSION": "git-860c190", "GIT_SHA": "860c190", "BUILD_NUMBER": "0"},
        ),
        (
            "",
            "",
            ["type=ref,event=pr"],
            {"APP_VERSION": "local", "GIT_SHA": "", "BUILD_NUMBER": "0"},
        ),
    ],
)
def test_build_args(sha: str, run: str, rules: list[str], expected: dict[str, str]) -> None:
    meta = compute(_context("refs/heads/main", sha=sha, run=run), rules=rules, now=NOW)
    assert dict(meta.build_args) == {**expected, "BUILD_DATE": "2020-01-10T00:30:00Z"}


def test_to_json() -> None:
    meta = compute(
        _context("refs/tags/v1.2.3"), images=["a/b"], rules=["type=ref,event=tag"], now=NOW
    )
    data = meta.to_json()
    assert set(data) == {"version", "tags", "labels", "build_args"}
    assert data["tags"] == ["a/b:v1.2.3", "a/b:latest"]
    json.dumps(data)


def _parse_output(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_github_output_lines() -> None:
    meta = compute(
        _context("refs/tags/v1.2.3"),
        images=["a/b", "c/d"],
        rules=["type=semver,pattern={{version}}"],
        labels=["vendor=acme"],
        now=NOW,
    )
    parsed = _parse_output(github_output_lines(meta))
    assert parsed["version"] == "1.2.3"
    assert parsed["tags"].splitlines() == ["a/b:1.2.3", "a/b:latest", "c/d:1.2.3", "c/d:latest"]
    assert parsed["tag-names"].splitlines() == ["1.2.3", "latest"]
    assert "vendor=acme" in parsed["labels"].splitlines()
    assert all(
        line.startswith("manifest:org.opencontainers")
        for line in parsed["annotations"].splitlines()
    )
    payload = json.loads(parsed["json"])
    assert payload["tags"] == list(meta.tags)
    assert payload["labels"]["vendor"] == "acme"


def test_output_delimiter_never_in_value() -> None:
    meta = Metadata(
        version="x",
        tags=("a", "b"),
        bare_tags=("a", "b"),
        labels={},
        build_args={},
        created="2020-01-10T00:30:00Z",
    )
    text = github_output_lines(meta)
    assert "tags<<ghadelimiter_" in text
    assert _parse_output(text)["tags"] == "a\nb"


def test_flavor_latest_true_adds_latest_on_branches() -> None:
    meta = compute(
        _context("refs/heads/main"),
        rules=["type=ref,event=branch"],
        flavor=["latest=true"],
        now=NOW,
    )
    assert meta.bare_tags == ("main", "latest")


def test_flavor_prefix_expression() -> None:
    meta = compute(
        _context("refs/heads/main"), rules=["type=sha"], flavor=["prefix={{branch}}-"], now=NOW
    )
    # a rule's own prefix (sha- by default) wins over the flavor's
    assert meta.bare_tags == ("sha-860c190",)
    meta = compute(
        _context("refs/heads/main"), rules=["type=raw,x"], flavor=["prefix={{branch}}-"], now=NOW
    )
    assert meta.bare_tags == ("main-x",)
