"""Context detection from GitHub Actions, GitLab CI and plain git checkouts."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dockroll.errors import TagRuleError
from dockroll.tags import DEFAULT_RULES, RepoInfo, compute, detect_context
from tests.unit.tags.conftest import NOW, REPOSITORY, SHA_DEV, SHA_PR, SHA_PR_HEAD, GithubEnv


def _api(routes: dict[str, object], seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"message": "Not Found"})
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    "expected",
    [
        ("push_dev", "refs/heads/dev", SHA_DEV, ""),
        ("tag_v1.1.1", "refs/tags/v1.1.1", SHA_DEV, "master"),
        ("pull_request", "refs/pull/15/merge", SHA_PR, "master"),
        (
            "pull_request_target",
            "refs/pull/15/merge",
            "266574110acf203503badf966df2ea24b5d732d7",
            "master",
        ),
    ],
    ids=lambda expected: expected[0],
)
def test_github_context(
    github_env: GithubEnv, tmp_path: Path, expected: tuple[str, str, str, str]
) -> None:
    event, ref, sha, base_ref = expected
    context = detect_context(github_env(event), cwd=tmp_path)
    assert context.source == "github"
    assert (context.ref, context.sha, context.base_ref) == (ref, sha, base_ref)
    assert context.run_number == "15"
    # without a token the repository comes from the event payload
    assert context.repo == RepoInfo.from_api(REPOSITORY)
    assert context.repo.license == "MIT"


def test_github_commit_date_from_head_commit(github_env: GithubEnv, tmp_path: Path) -> None:
    context = detect_context(github_env("push_dev"), cwd=tmp_path)
    assert context.commit_date == datetime(2020, 1, 10, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("switch", ["true", "TRUE", "yes-true"])
def test_pr_head_sha_switch(github_env: GithubEnv, tmp_path: Path, switch: str) -> None:
    env = github_env("pull_request", DOCKER_METADATA_PR_HEAD_SHA=switch)
    assert detect_context(env, cwd=tmp_path).sha == SHA_PR_HEAD


def test_pr_head_sha_switch_ignored_outside_pull_requests(
    github_env: GithubEnv, tmp_path: Path
) -> None:
    env = github_env("push_dev", DOCKER_METADATA_PR_HEAD_SHA="true")
    assert detect_context(env, cwd=tmp_path).sha == SHA_DEV


@pytest.mark.parametrize(
    ("length", "expected"),
    [("", "sha-860c190"), ("12", "sha-860c1904a1ce"), ("99", f"sha-{SHA_DEV}")],
)
def test_short_sha_length(
    github_env: GithubEnv, tmp_path: Path, length: str, expected: str
) -> None:
    env = github_env("push_dev", DOCKER_METADATA_SHORT_SHA_LENGTH=length)
    meta = compute(detect_context(env, cwd=tmp_path), rules=["type=sha"], now=NOW)
    assert meta.bare_tags == (expected,)


def test_short_sha_length_must_be_a_number(github_env: GithubEnv, tmp_path: Path) -> None:
    with pytest.raises(TagRuleError, match="DOCKER_METADATA_SHORT_SHA_LENGTH"):
        detect_context(
            github_env("push_dev", DOCKER_METADATA_SHORT_SHA_LENGTH="long"), cwd=tmp_path
        )


def test_github_api_used_with_token(github_env: GithubEnv, tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    api_repo = {**REPOSITORY, "name": "from-api", "description": None, "license": None}
    commit = {"commit": {"committer": {"date": "2021-02-03T04:05:06Z"}}}
    client = _api(
        {
            "/repos/docker/test-docker-action": api_repo,
            f"/repos/docker/test-docker-action/commits/{SHA_PR}": commit,
        },
        seen,
    )
    env = github_env("pull_request", GITHUB_TOKEN="s3cr3t")
    context = detect_context(env, cwd=tmp_path, http=client)
    assert context.repo == RepoInfo(
        name="from-api",
        default_branch="master",
        html_url="https://github.com/octocat/Hello-World",
    )
    assert context.commit_date == datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert all(request.headers["Authorization"] == "Bearer s3cr3t" for request in seen)
    assert "s3cr3t" not in " ".join(context.notes)


def test_github_api_failure_falls_back_to_payload(github_env: GithubEnv, tmp_path: Path) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network", request=request)

    client = httpx.Client(transport=httpx.MockTransport(boom))
    context = detect_context(
        github_env("push_dev", GITHUB_TOKEN="t0ken"), cwd=tmp_path, http=client
    )
    assert context.repo.name == "Hello-World"
    assert context.notes
    assert "t0ken" not in " ".join(context.notes)


def test_repo_json_wins_over_everything(github_env: GithubEnv, tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps({"name": "saved", "default_branch": "trunk", "html_url": "u"}))
    seen: list[httpx.Request] = []
    context = detect_context(
        github_env("push_dev", GITHUB_TOKEN="t"), cwd=tmp_path, repo_json=saved, http=_api({}, seen)
    )
    assert context.repo == RepoInfo(name="saved", default_branch="trunk", html_url="u")
    assert not [
        request for request in seen if request.url.path == "/repos/docker/test-docker-action"
    ]


def test_repo_json_unreadable(tmp_path: Path) -> None:
    with pytest.raises(TagRuleError, match="cannot read repository JSON"):
        detect_context({}, cwd=tmp_path, repo_json=tmp_path / "missing.json")


def test_is_default_branch_for_events_on_default_branch(
    github_env: GithubEnv, tmp_path: Path
) -> None:
    rules = [
        "type=raw,yes,enable={{is_default_branch}}",
        "type=raw,no,enable={{is_not_default_branch}}",
    ]
    issues = compute(detect_context(github_env("issues"), cwd=tmp_path), rules=rules, now=NOW)
    dev = compute(detect_context(github_env("push_dev"), cwd=tmp_path), rules=rules, now=NOW)
    assert issues.bare_tags == ("yes",)
    assert dev.bare_tags == ("no",)


# --- GitLab ------------------------------------------------------------------

_GITLAB = {
    "GITLAB_CI": "true",
    "CI_COMMIT_SHA": SHA_DEV,
    "CI_PIPELINE_IID": "42",
    "CI_DEFAULT_BRANCH": "main",
    "CI_PROJECT_PATH": "group/sub/app",
    "CI_PROJECT_URL": "https://gitlab.example.com/group/sub/app",
    "CI_COMMIT_TIMESTAMP": "2020-01-10T09:30:00+09:00",
}


@pytest.mark.parametrize(
    ("extra", "event", "ref", "tags"),
    [
        ({"CI_COMMIT_BRANCH": "main"}, "push", "refs/heads/main", ("main-860c190", "git-860c190")),
        (
            {"CI_COMMIT_TAG": "v1.4.0"},
            "push",
            "refs/tags/v1.4.0",
            ("v1.4.0", "1.4", "git-860c190", "latest"),
        ),
        (
            {"CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"},
            "pull_request",
            "refs/pull/7/merge",
            ("pr-7", "git-860c190"),
        ),
        (
            {"CI_COMMIT_BRANCH": "main", "CI_PIPELINE_SOURCE": "schedule"},
            "schedule",
            "refs/heads/main",
            ("main-860c190", "git-860c190"),
        ),
    ],
)
def test_gitlab_context(
    tmp_path: Path, extra: dict[str, str], event: str, ref: str, tags: tuple[str, ...]
) -> None:
    context = detect_context({**_GITLAB, **extra}, cwd=tmp_path)
    assert context.source == "gitlab"
    assert (context.event_name, context.ref, context.run_number) == (event, ref, "42")
    assert context.commit_date == datetime(2020, 1, 10, 0, 30, tzinfo=UTC)
    assert context.repo == RepoInfo(
        name="app", default_branch="main", html_url="https://gitlab.example.com/group/sub/app"
    )
    meta = compute(context, now=NOW)
    assert meta.bare_tags == tags
    assert meta.build_args["BUILD_NUMBER"] == "42"


def test_gitlab_merge_request_expressions(tmp_path: Path) -> None:
    env = {**_GITLAB, "CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    meta = compute(
        detect_context(env, cwd=tmp_path),
        rules=["type=raw,into-{{base_ref}}", "type=edge,branch=main", "type=schedule,pattern=n"],
        now=NOW,
    )
    assert meta.bare_tags == ("into-main",)


def test_gitlab_head_sha_switch(tmp_path: Path) -> None:
    env = {
        **_GITLAB,
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": SHA_PR_HEAD,
        "DOCKER_METADATA_PR_HEAD_SHA": "true",
    }
    assert detect_context(env, cwd=tmp_path).sha == SHA_PR_HEAD


def test_gitlab_default_branch_edge(tmp_path: Path) -> None:
    context = detect_context({**_GITLAB, "CI_COMMIT_BRANCH": "main"}, cwd=tmp_path)
    meta = compute(context, rules=["type=edge", "type=raw,d,enable={{is_default_branch}}"], now=NOW)
    assert meta.bare_tags == ("edge", "d")


# --- plain git ---------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(cwd),
            "GIT_COMMITTER_DATE": "2020-01-10T00:30:00Z",
            "GIT_AUTHOR_DATE": "2020-01-10T00:30:00Z",
        },
    )
    return completed.stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "work"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("hello\n")
    _git(repo, "add", "README")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_git_branch(git_repo: Path) -> None:
    sha = _git(git_repo, "rev-parse", "HEAD")
    context = detect_context({}, cwd=git_repo)
    assert (context.source, context.event_name, context.ref, context.sha) == (
        "git",
        "push",
        "refs/heads/main",
        sha,
    )
    assert context.commit_date == NOW
    assert context.repo.default_branch == "main"
    meta = compute(context, now=NOW)
    assert meta.bare_tags == (f"main-{sha[:7]}", f"git-{sha[:7]}")
    assert meta.build_args["BUILD_NUMBER"] == "0"


def test_git_tag_at_head_wins(git_repo: Path) -> None:
    _git(git_repo, "tag", "v2.3.4")
    sha = _git(git_repo, "rev-parse", "HEAD")[:7]
    meta = compute(detect_context({}, cwd=git_repo), now=NOW)
    assert meta.bare_tags == ("v2.3.4", "2.3", f"git-{sha}", "latest")
    assert meta.version == "v2.3.4"


def test_git_prerelease_tag_has_no_latest(git_repo: Path) -> None:
    _git(git_repo, "tag", "v2.3.4-rc.1")
    meta = compute(detect_context({}, cwd=git_repo), now=NOW)
    assert "latest" not in meta.bare_tags
    assert meta.bare_tags[0] == "v2.3.4-rc.1"


def test_git_remote_and_feature_branch(git_repo: Path) -> None:
    _git(git_repo, "remote", "add", "origin", "git@github.com:Acme/Widget.git")
    _git(git_repo, "checkout", "-q", "-b", "feature/login")
    context = detect_context({}, cwd=git_repo)
    assert context.repo == RepoInfo(name="Widget", html_url="https://github.com/Acme/Widget")
    assert context.ref == "refs/heads/feature/login"
    meta = compute(context, rules=["type=edge", "type=ref,event=branch"], now=NOW)
    assert meta.bare_tags == ("feature-login",)


@pytest.mark.parametrize(
    ("url", "html"),
    [
        ("https://github.com/acme/app.git", "https://github.com/acme/app"),
        ("ssh://git@gitlab.example.com:2222/group/app.git", "https://gitlab.example.com/group/app"),
        ("https://token@github.com/acme/app", "https://github.com/acme/app"),
    ],
)
def test_git_remote_urls(git_repo: Path, url: str, html: str) -> None:
    _git(git_repo, "remote", "add", "origin", url)
    assert detect_context({}, cwd=git_repo).repo.html_url == html


def test_git_default_branch_from_origin_head(git_repo: Path) -> None:
    _git(git_repo, "update-ref", "refs/remotes/origin/trunk", "HEAD")
    _git(git_repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk")
    _git(git_repo, "checkout", "-q", "-b", "topic")
    assert detect_context({}, cwd=git_repo).repo.default_branch == "trunk"


def test_no_git_at_all(tmp_path: Path) -> None:
    context = detect_context({}, cwd=tmp_path)
    assert (context.source, context.event_name, context.ref, context.sha) == (
        "none",
        "push",
        "",
        "",
    )
    meta = compute(context, now=NOW)
    assert meta.tags == ()
    assert meta.build_args["APP_VERSION"] == "local"
    assert compute(context, rules=["type=raw,value=dev"], now=NOW).bare_tags == ("dev",)


def test_empty_repository_has_no_sha(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    context = detect_context({}, cwd=tmp_path)
    assert (context.source, context.sha) == ("git", "")


# --- SOURCE_DATE_EPOCH ----------------------------------------------------------


def test_source_date_epoch_pins_dates(tmp_path: Path) -> None:
    context = detect_context({"SOURCE_DATE_EPOCH": "1578616200"}, cwd=tmp_path)
    assert context.source_date == NOW
    meta = compute(context, rules=["type=raw,value=d-{{date 'YYYYMMDD-HHmm'}}"])
    assert meta.bare_tags == ("d-20200110-0030",)
    assert meta.created == "2020-01-10T00:30:00Z"
    assert meta.labels["org.opencontainers.image.created"] == "2020-01-10T00:30:00.000Z"
    assert meta.build_args["BUILD_DATE"] == "2020-01-10T00:30:00Z"


def test_source_date_epoch_invalid(tmp_path: Path) -> None:
    with pytest.raises(TagRuleError, match="SOURCE_DATE_EPOCH"):
        detect_context({"SOURCE_DATE_EPOCH": "yesterday"}, cwd=tmp_path)


def test_default_rules_are_the_documented_strategy() -> None:
    assert DEFAULT_RULES[0] == "type=semver,pattern={{raw}}"
