"""Where a build comes from: CI environment, local git, or nothing at all.

The tag rules need the facts docker/metadata-action reads from a GitHub
Actions run: event name, git ref, commit sha and date, run number, the event
payload and the repository. :func:`detect_context` gathers them from, in
order, GitHub Actions, GitLab CI, or the git checkout in ``cwd``; without any
of these it returns a context that still lets ``type=raw`` rules work.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import httpx

from dockroll.errors import TagRuleError

__all__ = ["BuildContext", "RepoInfo", "detect_context"]

ContextSource = Literal["github", "gitlab", "git", "none"]

_DEFAULT_SHORT_SHA_LENGTH = 7
_GIT_TIMEOUT_S = 10.0
_HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RepoInfo:
    """Repository facts used for the OCI labels and ``type=edge``.

    Field meanings follow GitHub's REST repository object: ``license`` is the
    SPDX id, ``html_url`` the browsable URL.
    """

    name: str = ""
    default_branch: str = ""
    description: str = ""
    license: str = ""
    html_url: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> RepoInfo:
        """Build from a GitHub REST (or webhook) repository object."""
        license_obj = data.get("license")
        spdx = license_obj.get("spdx_id") if isinstance(license_obj, Mapping) else None
        return cls(
            name=_text(data.get("name")),
            default_branch=_text(data.get("default_branch")),
            description=_text(data.get("description")),
            license=_text(spdx),
            html_url=_text(data.get("html_url")),
        )


@dataclass(frozen=True)
class BuildContext:
    """Everything about the triggering build that tag rules can read.

    ``ref`` is a full git ref (``refs/heads/main``, ``refs/tags/v1.2.3``,
    ``refs/pull/15/merge``) or empty. ``commit_date`` is None when unknown;
    expressions then fall back to the current date, as the action does.
    ``source_date`` is ``SOURCE_DATE_EPOCH`` when set and pins the creation
    date and ``{{date}}``.
    """

    source: ContextSource
    event_name: str
    ref: str
    sha: str
    commit_date: datetime | None
    run_number: str
    base_ref: str
    payload: Mapping[str, Any]
    repo: RepoInfo
    short_sha_length: int = _DEFAULT_SHORT_SHA_LENGTH
    source_date: datetime | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def short_sha(self) -> str:
        """The commit sha cut to ``short_sha_length`` characters."""
        if self.short_sha_length >= len(self.sha):
            return self.sha
        return self.sha[: max(self.short_sha_length, 0)]


def detect_context(
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    repo_json: Path | None = None,
    http: httpx.Client | None = None,
) -> BuildContext:
    """Detect the build context from the environment and the git checkout.

    ``env`` defaults to ``os.environ`` and ``cwd`` to the current directory.
    Repository facts come from ``repo_json`` (a saved GitHub repository
    object) when given, else from the GitHub API when ``GITHUB_TOKEN`` is
    set, else from the event payload, else from the ``origin`` remote.
    ``http`` replaces the client used for the GitHub API, so tests need no
    network.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    workdir = cwd if cwd is not None else Path.cwd()
    short_len = _short_sha_length(environ)
    source_date = _source_date(environ)
    saved_repo = _load_repo_json(repo_json) if repo_json is not None else None

    if environ.get("GITHUB_ACTIONS") == "true" or environ.get("GITHUB_EVENT_NAME"):
        context = _from_github(environ, workdir, saved_repo, http)
    elif environ.get("GITLAB_CI") == "true" or environ.get("CI_PROJECT_PATH"):
        context = _from_gitlab(environ, saved_repo)
    else:
        context = _from_git(environ, workdir, saved_repo)
    return dataclasses.replace(context, short_sha_length=short_len, source_date=source_date)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _truthy_switch(value: str | None) -> bool:
    # The action tests the variable with /true/i, so "TRUE" and "true " count.
    return bool(value) and "true" in (value or "").lower()


def _short_sha_length(env: Mapping[str, str]) -> int:
    raw = env.get("DOCKER_METADATA_SHORT_SHA_LENGTH", "")
    if not raw:
        return _DEFAULT_SHORT_SHA_LENGTH
    try:
        return int(float(raw.strip()))
    except ValueError:
        raise TagRuleError(
            f"DOCKER_METADATA_SHORT_SHA_LENGTH is not a valid number: {raw!r}",
            hint="set it to the number of sha characters to keep, e.g. 12",
        ) from None


def _source_date(env: Mapping[str, str]) -> datetime | None:
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise TagRuleError(
            f"SOURCE_DATE_EPOCH is not a Unix timestamp: {raw!r}",
            hint="set it to whole seconds since 1970, e.g. $(git log -1 --format=%ct)",
        ) from None


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _load_repo_json(path: Path) -> RepoInfo:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TagRuleError(
            f"cannot read repository JSON {path}: {exc}",
            hint="pass a file saved from GET /repos/{owner}/{repo}",
        ) from exc
    if not isinstance(data, Mapping):
        raise TagRuleError(f"repository JSON {path} is not an object")
    return RepoInfo.from_api(data)


# --- GitHub Actions ----------------------------------------------------------


def _from_github(
    env: Mapping[str, str],
    cwd: Path,
    saved_repo: RepoInfo | None,
    http: httpx.Client | None,
) -> BuildContext:
    notes: list[str] = []
    payload = _read_event_payload(env.get("GITHUB_EVENT_PATH", ""), notes)
    event_name = env.get("GITHUB_EVENT_NAME", "")
    ref = env.get("GITHUB_REF", "")
    sha = env.get("GITHUB_SHA", "")

    # pull_request_target runs on the base branch; tag it as the PR instead.
    if "pull_request_target" in event_name and payload.get("number") is not None:
        ref = f"refs/pull/{payload['number']}/merge"

    pull_request = payload.get("pull_request")
    if (
        _truthy_switch(env.get("DOCKER_METADATA_PR_HEAD_SHA"))
        and "pull_request" in event_name
        and isinstance(pull_request, Mapping)
        and isinstance(pull_request.get("head"), Mapping)
        and pull_request["head"].get("sha") is not None
    ):
        sha = str(pull_request["head"]["sha"])

    owner_repo = env.get("GITHUB_REPOSITORY", "")
    if not owner_repo and isinstance(payload.get("repository"), Mapping):
        owner_repo = _text(payload["repository"].get("full_name"))
    api_url = env.get("GITHUB_API_URL") or "https://api.github.com"
    token = env.get("GITHUB_TOKEN", "")

    commit_date = _github_commit_date(payload, sha)
    if commit_date is None and token and owner_repo and sha:
        commit_date = _github_api_commit_date(
            api_url, owner_repo=owner_repo, sha=sha, token=token, http=http, notes=notes
        )
    if commit_date is None and sha:
        commit_date = _git_commit_date(cwd, sha)

    repo = saved_repo
    if repo is None and token and owner_repo:
        repo = _github_api_repo(api_url, owner_repo, token, http, notes)
    if repo is None and isinstance(payload.get("repository"), Mapping):
        repo = RepoInfo.from_api(payload["repository"])
    if repo is None:
        repo = _repo_from_remote(cwd) or RepoInfo(
            name=owner_repo.rpartition("/")[2],
            html_url=f"{env.get('GITHUB_SERVER_URL') or 'https://github.com'}/{owner_repo}"
            if owner_repo
            else "",
        )

    return BuildContext(
        source="github",
        event_name=event_name,
        ref=ref,
        sha=sha,
        commit_date=commit_date,
        run_number=env.get("GITHUB_RUN_NUMBER", ""),
        base_ref=_github_base_ref(ref, payload, env),
        payload=MappingProxyType(payload),
        repo=repo,
        notes=tuple(notes),
    )


def _read_event_payload(path: str, notes: list[str]) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"event payload {path} unreadable: {exc}")
        return {}
    return data if isinstance(data, dict) else {}


def _github_base_ref(ref: str, payload: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if ref.startswith("refs/tags/") and isinstance(payload.get("base_ref"), str):
        return str(payload["base_ref"]).removeprefix("refs/heads/")
    if ref.startswith("refs/pull/"):
        pull_request = payload.get("pull_request")
        if isinstance(pull_request, Mapping) and isinstance(pull_request.get("base"), Mapping):
            base = pull_request["base"].get("ref")
            if isinstance(base, str):
                return base
        return env.get("GITHUB_BASE_REF", "")
    return ""


def _github_commit_date(payload: Mapping[str, Any], sha: str) -> datetime | None:
    commits = payload.get("commits")
    if isinstance(commits, list):
        for commit in commits:
            if isinstance(commit, Mapping) and commit.get("id") == sha:
                found = _parse_timestamp(commit.get("timestamp"))
                if found is not None:
                    return found
    head = payload.get("head_commit")
    if isinstance(head, Mapping) and head.get("id") == sha:
        return _parse_timestamp(head.get("timestamp"))
    return None


def _github_get(
    url: str, token: str, http: httpx.Client | None, notes: list[str]
) -> Mapping[str, Any] | None:
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    client = http if http is not None else httpx.Client(timeout=_HTTP_TIMEOUT_S)
    try:
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            notes.append(f"GET {url} answered {response.status_code}")
            return None
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # The token is only in the headers; the URL and error text are safe to keep.
        notes.append(f"GET {url} failed: {type(exc).__name__}")
        return None
    finally:
        if http is None:
            client.close()
    return data if isinstance(data, Mapping) else None


def _github_api_repo(
    api_url: str, owner_repo: str, token: str, http: httpx.Client | None, notes: list[str]
) -> RepoInfo | None:
    data = _github_get(f"{api_url.rstrip('/')}/repos/{owner_repo}", token, http, notes)
    return RepoInfo.from_api(data) if data is not None else None


def _github_api_commit_date(
    api_url: str,
    *,
    owner_repo: str,
    sha: str,
    token: str,
    http: httpx.Client | None,
    notes: list[str],
) -> datetime | None:
    url = f"{api_url.rstrip('/')}/repos/{owner_repo}/commits/{sha}"
    data = _github_get(url, token, http, notes)
    if data is None:
        return None
    commit = data.get("commit")
    committer = commit.get("committer") if isinstance(commit, Mapping) else None
    return _parse_timestamp(committer.get("date")) if isinstance(committer, Mapping) else None


# --- GitLab CI ---------------------------------------------------------------


def _from_gitlab(env: Mapping[str, str], saved_repo: RepoInfo | None) -> BuildContext:
    sha = env.get("CI_COMMIT_SHA", "")
    mr_iid = env.get("CI_MERGE_REQUEST_IID", "")
    tag = env.get("CI_COMMIT_TAG", "")
    branch = env.get("CI_COMMIT_BRANCH", "") or env.get("CI_COMMIT_REF_NAME", "")
    default_branch = env.get("CI_DEFAULT_BRANCH", "")
    base_ref = ""

    if mr_iid:
        event_name = "pull_request"
        ref = f"refs/pull/{mr_iid}/merge"
        base_ref = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "")
        head_sha = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "")
        if _truthy_switch(env.get("DOCKER_METADATA_PR_HEAD_SHA")) and head_sha:
            sha = head_sha
    elif tag:
        event_name = "push"
        ref = f"refs/tags/{tag}"
    else:
        event_name = "push"
        ref = f"refs/heads/{branch}" if branch else ""
    if env.get("CI_PIPELINE_SOURCE") == "schedule":
        event_name = "schedule"

    project_path = env.get("CI_PROJECT_PATH", "")
    repo = saved_repo or RepoInfo(
        name=env.get("CI_PROJECT_NAME", "") or project_path.rpartition("/")[2],
        default_branch=default_branch,
        description=env.get("CI_PROJECT_DESCRIPTION", ""),
        html_url=env.get("CI_PROJECT_URL", ""),
    )
    # A payload shaped like GitHub's lets the expressions read it the same way.
    payload: dict[str, Any] = {"repository": {"default_branch": repo.default_branch}}
    if mr_iid:
        payload["number"] = mr_iid
        payload["pull_request"] = {"base": {"ref": base_ref}, "head": {"sha": sha}}
    return BuildContext(
        source="gitlab",
        event_name=event_name,
        ref=ref,
        sha=sha,
        commit_date=_parse_timestamp(env.get("CI_COMMIT_TIMESTAMP")),
        run_number=env.get("CI_PIPELINE_IID", ""),
        base_ref=base_ref,
        payload=MappingProxyType(payload),
        repo=repo,
    )


# --- local git ---------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def _git_commit_date(cwd: Path, sha: str) -> datetime | None:
    return _parse_timestamp(_git(cwd, "show", "-s", "--format=%cI", sha))


_REMOTE_RE = re.compile(
    r"^(?:(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host1>[^/:]+)(?::\d+)?/"
    r"|(?:[^@/]+@)?(?P<host2>[^/:]+):)"
    r"(?P<path>[^?#]+?)(?:\.git)?/?$"
)


def _repo_from_remote(cwd: Path, default_branch: str = "") -> RepoInfo | None:
    url = _git(cwd, "remote", "get-url", "origin")
    if not url:
        return None
    match = _REMOTE_RE.match(url)
    if match is None:
        return None
    host = match.group("host1") or match.group("host2")
    path = match.group("path").strip("/")
    if "/" not in path:
        return None
    return RepoInfo(
        name=path.rpartition("/")[2],
        default_branch=default_branch,
        html_url=f"https://{host}/{path}",
    )


def _from_git(env: Mapping[str, str], cwd: Path, saved_repo: RepoInfo | None) -> BuildContext:
    sha = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if sha is None:
        inside = _git(cwd, "rev-parse", "--is-inside-work-tree") == "true"
        return BuildContext(
            source="git" if inside else "none",
            event_name="push",
            ref="",
            sha="",
            commit_date=None,
            run_number="",
            base_ref="",
            payload=MappingProxyType({}),
            repo=saved_repo or RepoInfo(),
            notes=("no commit found: only type=raw rules can produce tags",),
        )

    tags = _git(cwd, "tag", "--points-at", "HEAD", "--sort=-v:refname")
    branch = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    if tags:
        ref = f"refs/tags/{tags.splitlines()[0]}"
    elif branch:
        ref = f"refs/heads/{branch}"
    else:
        ref = ""

    remote_head = _git(cwd, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if remote_head:
        default_branch = remote_head.removeprefix("origin/")
    elif branch in {"main", "master"}:
        default_branch = branch
    else:
        default_branch = ""

    repo = saved_repo or _repo_from_remote(cwd, default_branch)
    if repo is None:
        top = _git(cwd, "rev-parse", "--show-toplevel")
        repo = RepoInfo(name=Path(top).name if top else "", default_branch=default_branch)
    return BuildContext(
        source="git",
        event_name="push",
        ref=ref,
        sha=sha,
        commit_date=_git_commit_date(cwd, sha),
        run_number="",
        base_ref="",
        payload=MappingProxyType({"repository": {"default_branch": repo.default_branch}}),
        repo=repo,
    )
