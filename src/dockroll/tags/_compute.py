"""Turn tag rules and a build context into tags, labels and build arguments.

The semantics are docker/metadata-action's, so rules copied from a workflow
give the same tags:

* rules run from highest to lowest priority; the first tag produced is the
  version, later distinct tags follow it in order;
* ``latest`` is decided by the first rule that produces a tag (with
  ``flavor: latest=auto``): tag-like rules (``ref,event=tag``, ``semver``,
  ``pep440``, ``match``) say yes unless the version is a pre-release, all
  other rules say no;
* characters a Docker tag cannot hold are replaced by ``-``.

dockroll additionally refuses a final tag that Docker would reject (over 128
characters, or starting with ``.`` or ``-``) instead of failing later at push.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from packaging.version import InvalidVersion, Version

from dockroll.errors import TagRuleError
from dockroll.tags._context import BuildContext
from dockroll.tags._dateformat import format_moment, in_zone
from dockroll.tags._expressions import compile_template, is_raw_statement
from dockroll.tags._rules import (
    Flavor,
    TagRule,
    compile_js_regex,
    parse_flavor,
    parse_images,
    parse_rules,
    split_regex_literal,
)
from dockroll.tags._semver import parse_semver

__all__ = ["ACTION_DEFAULT_RULES", "DEFAULT_RULES", "Metadata", "compute", "github_output_lines"]

#: dockroll's rules for a dockroll.yml without any: on a release tag
#: ``v1.2.3`` they give ``v1.2.3``, ``1.2``, ``git-<sha>`` and ``latest`` (not
#: for pre-releases); on a branch ``<branch>-<sha>`` and ``git-<sha>``; on a
#: pull request ``pr-<n>`` and ``git-<sha>``.
DEFAULT_RULES: tuple[str, ...] = (
    "type=semver,pattern={{raw}}",
    "type=semver,pattern={{major}}.{{minor}}",
    "type=ref,event=tag",
    "type=ref,event=branch,suffix=-{{sha}}",
    "type=ref,event=pr",
    "type=sha,prefix=git-",
)

#: docker/metadata-action's rules for a workflow without a ``tags:`` input:
#: ``nightly`` on a schedule, the branch name, the git tag (with ``latest``)
#: or ``pr-<n>``.
ACTION_DEFAULT_RULES: tuple[str, ...] = (
    "type=schedule",
    "type=ref,event=branch",
    "type=ref,event=tag",
    "type=ref,event=pr",
)

MAX_TAG_LENGTH = 128
_INVALID_TAG_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")
_OCI = "org.opencontainers.image."


@dataclass(frozen=True)
class Metadata:
    """The result of :func:`compute`.

    ``tags`` are full references (``image:tag``) image by image, or bare tag
    names when no image was given; ``bare_tags`` are always the names alone.
    ``labels`` are the OCI labels merged with the user's (the user wins);
    ``annotations`` are the OCI labels merged with the user's annotations,
    for the action's ``annotations`` output. ``created`` is the build date as
    ``YYYY-MM-DDTHH:MM:SSZ``.
    """

    version: str
    tags: tuple[str, ...]
    bare_tags: tuple[str, ...]
    labels: Mapping[str, str]
    build_args: Mapping[str, str]
    created: str
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    latest: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: version, tags, labels and build_args."""
        return {
            "version": self.version,
            "tags": list(self.tags),
            "labels": dict(self.labels),
            "build_args": dict(self.build_args),
        }


@dataclass
class _Version:
    main: str | None = None
    partial: list[str] = field(default_factory=list)
    latest: bool | None = None


class _Evaluator:
    """Evaluates rules against one context at one instant."""

    def __init__(self, context: BuildContext, flavor: Flavor, now: datetime) -> None:
        self.context = context
        self.flavor = flavor
        self.now = now

    # -- expressions ---------------------------------------------------------

    def _date_helper(self, moment: datetime) -> Callable[[Sequence[Any], Mapping[str, Any]], str]:
        def render(args: Sequence[Any], options: Mapping[str, Any]) -> str:
            zone = "UTC"
            for key, value in options.items():
                if key != "tz":
                    raise TagRuleError(
                        f"unknown {key} attribute in a date expression",
                        hint="date and commit_date only take tz='Zone/Name'",
                    )
                zone = str(value)
            fmt = args[0] if args and isinstance(args[0], str) else None
            return format_moment(in_zone(moment, zone), fmt)

        return render

    def _dates(self) -> dict[str, Any]:
        commit_date = self.context.commit_date or self.now
        return {"date": self._date_helper(self.now), "commit_date": self._date_helper(commit_date)}

    def global_scope(self) -> dict[str, Any]:
        ref = self.context.ref
        is_default = self._is_default_branch()
        scope = self._dates()
        scope.update(
            {
                "branch": ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else "",
                "tag": ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else "",
                "sha": lambda args, options: self._short_sha(),
                "base_ref": self.context.base_ref
                if ref.startswith(("refs/tags/", "refs/pull/"))
                else "",
                "is_default_branch": "true" if is_default else "false",
                "is_not_default_branch": "false" if is_default else "true",
            }
        )
        return scope

    def _is_default_branch(self) -> bool:
        ref = self.context.ref
        branch = ref.removeprefix("refs/heads/")
        if not branch:
            return False
        repository = self.context.payload.get("repository")
        default_branch = (
            repository.get("default_branch") if isinstance(repository, Mapping) else None
        )
        if default_branch is None:
            default_branch = self.context.repo.default_branch or None
        if default_branch == branch:
            return True
        # These events always run on the default branch's last commit.
        return any(
            event in self.context.event_name
            for event in ("create", "discussion", "issues", "schedule")
        )

    def _short_sha(self) -> str:
        if not self.context.sha and self.context.source == "none":
            raise TagRuleError(
                "{{sha}} needs a commit, but no CI environment or git checkout was found",
                hint="run inside a git repository, or use type=raw rules without {{sha}}",
            )
        return self.context.short_sha

    def render(self, text: str, scope: Mapping[str, Any] | None = None) -> str:
        return compile_template(text).render(self.global_scope() if scope is None else scope)

    # -- rule processing -----------------------------------------------------

    def with_affixes(self, value: str, rule: TagRule) -> str:
        if "prefix" in rule.attrs:
            value = self.render(rule.attrs["prefix"]) + value
        elif self.flavor.prefix:
            value = self.render(self.flavor.prefix) + value
        if "suffix" in rule.attrs:
            value = value + self.render(rule.attrs["suffix"])
        elif self.flavor.suffix:
            value = value + self.render(self.flavor.suffix)
        return value

    def latest_for(self, tag_like: bool) -> bool:
        if self.flavor.latest == "auto":
            return tag_like
        return self.flavor.latest == "true"

    def tag_source(self, rule: TagRule) -> str | None:
        """The text a semver/pep440/match rule reads: ``value=`` or the git tag."""
        ref = self.context.ref
        if not ref.startswith("refs/tags/") and not rule.get("value"):
            return None
        if rule.get("value"):
            return self.render(rule.get("value"))
        return ref.removeprefix("refs/tags/")


def _sanitize(tag: str) -> str:
    return _INVALID_TAG_CHARS.sub("-", tag)


def _set_version(version: _Version, value: str, latest: bool) -> None:
    if not value:
        return
    value = _sanitize(value)
    if version.main is None:
        version.main = value
    elif value != version.main:
        version.partial.append(value)
    if version.latest is None:
        version.latest = latest


def _process(rule: TagRule, ev: _Evaluator, version: _Version, user_rules: bool) -> None:
    context = ev.context
    ref = context.ref
    kind = rule.type
    if kind == "schedule":
        if "schedule" not in context.event_name:
            return
        value = ev.render(rule.get("pattern"), ev._dates())
        _set_version(version, ev.with_affixes(value, rule), ev.latest_for(False))
    elif kind == "semver":
        _process_semver(rule, ev, version)
    elif kind == "pep440":
        _process_pep440(rule, ev, version)
    elif kind == "match":
        _process_match(rule, ev, version)
    elif kind == "ref":
        event = rule.get("event")
        if event == "branch" and ref.startswith("refs/heads/"):
            value = ev.with_affixes(ref.removeprefix("refs/heads/"), rule)
            _set_version(version, value, ev.latest_for(False))
        elif event == "tag" and ref.startswith("refs/tags/"):
            value = ev.with_affixes(ref.removeprefix("refs/tags/"), rule)
            _set_version(version, value, ev.latest_for(True))
        elif event == "pr" and ref.startswith("refs/pull/"):
            number = re.sub(r"/merge$", "", ref.removeprefix("refs/pull/"))
            _set_version(version, ev.with_affixes(number, rule), ev.latest_for(False))
    elif kind == "edge":
        if not ref.startswith("refs/heads/"):
            return
        branch = rule.get("branch") or context.repo.default_branch
        if branch != ref.removeprefix("refs/heads/"):
            return
        _set_version(version, ev.with_affixes("edge", rule), ev.latest_for(False))
    elif kind == "raw":
        value = ev.with_affixes(ev.render(rule.get("value")), rule)
        _set_version(version, value, ev.latest_for(False))
    elif kind == "sha":
        if not context.sha:
            if context.source == "none" and user_rules:
                raise TagRuleError(
                    f"rule {rule.text!r} needs a commit sha, but no CI environment "
                    "or git checkout was found",
                    hint="run inside a git repository, or use type=raw rules",
                )
            return
        sha = context.short_sha if rule.get("format") == "short" else context.sha
        _set_version(version, ev.with_affixes(sha, rule), ev.latest_for(False))


def _apply_match_attribute(rule: TagRule, raw: str) -> str:
    pattern = rule.get("match")
    if not pattern:
        return raw
    found = compile_js_regex(pattern, "", rule.text).search(raw)
    if found is None or found.re.groups < 1 or found.group(1) is None:
        return raw
    return found.group(1)


def _process_semver(rule: TagRule, ev: _Evaluator, version: _Version) -> None:
    source = ev.tag_source(rule)
    if source is None:
        return
    raw = _apply_match_attribute(rule, source).replace("/", "-")
    parsed = parse_semver(raw)
    if parsed is None:
        if rule.get("value") and raw:
            raise TagRuleError(
                f"{raw!r} is not a valid semantic version in rule {rule.text!r}",
                hint="semver values look like 1.2.3 or v1.2.3-rc.1 (see https://semver.org)",
            )
        return  # a git tag that is not a version simply gives no semver tag
    pattern = rule.get("pattern")
    if parsed.is_prerelease and not is_raw_statement(pattern):
        pattern = "{{version}}"
    value = ev.with_affixes(compile_template(pattern).render(parsed.template_scope()), rule)
    _set_version(version, value, ev.latest_for(not parsed.is_prerelease))


def _process_pep440(rule: TagRule, ev: _Evaluator, version: _Version) -> None:
    source = ev.tag_source(rule)
    if source is None:
        return
    raw = _apply_match_attribute(rule, source).replace("/", "-")
    try:
        parsed = Version(raw)
    except InvalidVersion:
        if rule.get("value") and raw:
            raise TagRuleError(
                f"{raw!r} is not a PEP 440 version in rule {rule.text!r}",
                hint="see https://peps.python.org/pep-0440/",
            ) from None
        return
    pattern = rule.get("pattern")
    if parsed.is_prerelease or parsed.is_postrelease or parsed.is_devrelease:
        value = raw if is_raw_statement(pattern) else str(parsed)
        _set_version(version, ev.with_affixes(value, rule), ev.latest_for(False))
        return
    release = (*parsed.release, 0, 0)
    scope = {
        "raw": raw,
        "version": str(parsed),
        "major": release[0],
        "minor": release[1],
        "patch": release[2],
    }
    value = ev.with_affixes(compile_template(pattern).render(scope), rule)
    _set_version(version, value, ev.latest_for(True))


def _process_match(rule: TagRule, ev: _Evaluator, version: _Version) -> None:
    source = ev.tag_source(rule)
    if source is None:
        return
    pattern = rule.get("pattern")
    literal = split_regex_literal(pattern)
    group_index = int(rule.get("group").strip() or -1)
    if literal is not None:
        regex = compile_js_regex(literal[0], literal[1], rule.text)
        if "g" in literal[1]:
            # A global regex yields every whole match; the group picks one of them.
            matches = [found.group(0) for found in regex.finditer(source)]
            if not matches or not 0 <= group_index < len(matches):
                return
            value = matches[group_index]
            _set_version(version, ev.with_affixes(value, rule), ev.latest_for(True))
            return
    else:
        regex = compile_js_regex(pattern, "", rule.text)
    found = regex.search(source)
    if found is None or not 0 <= group_index <= regex.groups:
        return
    captured = found.group(group_index)
    if captured is None:
        return
    _set_version(version, ev.with_affixes(captured, rule), ev.latest_for(True))


def _check_tag(tag: str, rule_text: str) -> None:
    if len(tag) > MAX_TAG_LENGTH:
        raise TagRuleError(
            f"tag {tag[:40]!r}... from rule {rule_text!r} is {len(tag)} characters long; "
            f"Docker allows at most {MAX_TAG_LENGTH}",
            hint="shorten the prefix/suffix or use format=short",
        )
    if tag[0] in ".-":
        raise TagRuleError(
            f"tag {tag!r} from rule {rule_text!r} starts with {tag[0]!r}, "
            "which Docker does not allow",
            hint="give the rule a prefix, or make sure the expression is not empty here",
        )


def _iso_created(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _merge_labels(base: list[str], extra: list[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entry in [*base, *extra]:
        key, sep, value = entry.partition("=")
        if sep:
            merged[key] = value
    # The action sorts with String.localeCompare; a case-folded sort matches it
    # for the label keys people write.
    return dict(sorted(merged.items(), key=lambda item: (item[0].casefold(), item[0])))


def compute(
    context: BuildContext,
    *,
    images: Sequence[str] = (),
    rules: Sequence[str] = (),
    flavor: Sequence[str] = (),
    labels: Sequence[str] = (),
    annotations: Sequence[str] = (),
    now: datetime | None = None,
    default_rules: Sequence[str] = DEFAULT_RULES,
) -> Metadata:
    """Compute tags, labels and build args for ``context``.

    ``rules``, ``flavor``, ``labels``, ``annotations`` and ``images`` take
    the lines of the action's inputs, one per item or several per item separated by newlines;
    blank lines and ``#`` comments are ignored. No rules means
    ``default_rules``: :data:`DEFAULT_RULES` (dockroll's), or
    :data:`ACTION_DEFAULT_RULES` for what the action does without ``tags:``.
    Images written ``name,enable=false`` are left out. ``now`` (default:
    ``SOURCE_DATE_EPOCH`` from the context, else the current time) dates the
    image and ``{{date}}``.
    """
    moment = now or context.source_date or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    user_rules = bool([line for line in rules if line.strip()])
    parsed_rules = parse_rules(rules) if user_rules else []
    if not parsed_rules:
        user_rules = False
        parsed_rules = parse_rules(default_rules)
    parsed_flavor = parse_flavor(flavor)
    image_names = [image.name.lower() for image in parse_images(images) if image.enable]
    ev = _Evaluator(context, parsed_flavor, moment)

    version = _Version()
    origin: dict[str, str] = {}
    for rule in parsed_rules:
        enabled = ev.render(rule.get("enable"))
        if enabled not in {"true", "false"}:
            raise TagRuleError(
                f"invalid value {enabled!r} for enable in rule {rule.text!r}",
                hint="enable must be true or false (an expression may give either)",
            )
        if enabled == "false":
            continue
        before = [version.main, *version.partial]
        _process(rule, ev, version, user_rules)
        for tag in [version.main, *version.partial]:
            if tag is not None and tag not in before:
                origin.setdefault(tag, rule.text)

    partial = list(dict.fromkeys(version.partial))
    names: list[str] = []
    if version.main is not None:
        names = [version.main, *partial]
        if version.latest:
            names.append(
                _sanitize(
                    (parsed_flavor.prefix if parsed_flavor.prefix_latest else "")
                    + "latest"
                    + (parsed_flavor.suffix if parsed_flavor.suffix_latest else "")
                )
            )
    for name in names:
        _check_tag(name, origin.get(name, "flavor latest"))

    if image_names and names:
        tags = tuple(f"{image}:{name}" for image in image_names for name in names)
    else:
        tags = tuple(names)

    main_version = version.main or ""
    oci = [
        f"{_OCI}title={context.repo.name}",
        f"{_OCI}description={context.repo.description}",
        f"{_OCI}url={context.repo.html_url}",
        f"{_OCI}source={context.repo.html_url}",
        f"{_OCI}version={main_version}",
        f"{_OCI}created={_iso_created(moment)}",
        f"{_OCI}revision={context.sha}",
        f"{_OCI}licenses={context.repo.license}",
    ]
    user_labels = [ev.render(line) for line in _label_lines(labels)]
    user_annotations = [ev.render(line) for line in _label_lines(annotations)]
    created = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    build_args = {
        "APP_VERSION": main_version or (f"git-{context.short_sha}" if context.sha else "local"),
        "GIT_SHA": context.short_sha,
        "BUILD_DATE": created,
        "BUILD_NUMBER": context.run_number or "0",
    }
    return Metadata(
        version=main_version,
        tags=tags,
        bare_tags=tuple(names),
        labels=MappingProxyType(_merge_labels(oci, user_labels)),
        build_args=MappingProxyType(build_args),
        created=created,
        annotations=MappingProxyType(_merge_labels(oci, user_annotations)),
        latest=bool(version.latest) and bool(names),
    )


def _label_lines(labels: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for item in labels:
        for line in item.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                lines.append(stripped)
    return lines


def _heredoc(name: str, value: str) -> str:
    if "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    # A delimiter derived from the value cannot occur in it by accident.
    digest = hashlib.sha256(value.encode()).hexdigest()
    delimiter = f"ghadelimiter_{digest[:32]}"
    while delimiter in value:
        delimiter += "_"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def github_output_lines(metadata: Metadata) -> str:
    """The action's outputs in ``$GITHUB_OUTPUT`` syntax.

    Gives ``version``, ``tags``, ``tag-names``, ``labels``, ``annotations``
    (at ``manifest`` level) and ``json``, with newline-separated lists; bake
    files are not written.
    """
    labels = [f"{key}={value}" for key, value in metadata.labels.items()]
    annotations = [f"manifest:{key}={value}" for key, value in metadata.annotations.items()]
    payload = {
        "tags": list(metadata.tags),
        "tag-names": list(metadata.bare_tags),
        "labels": dict(metadata.labels),
        "annotations": annotations,
    }
    outputs = [
        ("version", metadata.version),
        ("tags", "\n".join(metadata.tags)),
        ("tag-names", "\n".join(metadata.bare_tags)),
        ("labels", "\n".join(labels)),
        ("annotations", "\n".join(annotations)),
        ("json", json.dumps(payload, separators=(",", ":"))),
    ]
    return "".join(_heredoc(name, value) for name, value in outputs)
