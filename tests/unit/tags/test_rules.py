"""Rule, flavor and image parsing, and the errors bad input raises."""

from __future__ import annotations

import pytest

from dockroll.errors import TagRuleError
from dockroll.tags import BuildContext, RepoInfo, compute
from dockroll.tags._rules import Flavor, parse_flavor, parse_images, parse_rules
from tests.unit.tags.conftest import NOW, SHA_DEV


def _context(
    ref: str = "refs/heads/dev", sha: str = SHA_DEV, source: str = "github"
) -> BuildContext:
    return BuildContext(
        source=source,  # type: ignore[arg-type]
        event_name="push",
        ref=ref,
        sha=sha,
        commit_date=NOW,
        run_number="7",
        base_ref="",
        payload={"repository": {"default_branch": "master"}},
        repo=RepoInfo(name="app", default_branch="master"),
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["type=sha", "type=schedule", "type=raw,foo"], ["schedule", "raw", "sha"]),
        (["type=raw,a,priority=1", "type=raw,b,priority=5"], ["raw", "raw"]),
        (["# comment", "", "  type=edge  ", "type=ref,event=pr"], ["edge", "ref"]),
        (["type=ref,event=branch\n# note\ntype=semver,pattern={{version}}\n"], ["semver", "ref"]),
    ],
)
def test_rules_are_ordered_by_priority(lines: list[str], expected: list[str]) -> None:
    assert [rule.type for rule in parse_rules(lines)] == expected


def test_defaults_filled_per_type() -> None:
    schedule, match, ref_pr, sha = parse_rules(
        ["type=sha", "type=ref,event=pr", "type=match,pattern=x", "type=schedule"]
    )
    assert dict(schedule.attrs) == {"pattern": "nightly", "enable": "true", "priority": "1000"}
    assert match.attrs["group"] == "0"
    assert ref_pr.attrs["prefix"] == "pr-"
    assert sha.attrs["prefix"] == "sha-"
    assert sha.attrs["format"] == "short"


def test_quoted_field_keeps_commas() -> None:
    (rule,) = parse_rules([r'type=match,"pattern=\d{1,2}",group=0'])
    assert rule.attrs["pattern"] == r"\d{1,2}"


def test_keys_are_case_insensitive_and_trimmed() -> None:
    (rule,) = parse_rules(["TYPE=raw, Value = foo "])
    assert rule.type == "raw"
    assert rule.attrs["value"] == "foo"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("type=bogus", "unknown tag type 'bogus'"),
        ("type=Semver,pattern={{version}}", "unknown tag type 'Semver'"),
        ("type=sha,pattern=x", "unknown attribute 'pattern' for type=sha"),
        ("type=sha,foo", "unknown attribute 'value' for type=sha"),
        ("type=raw,value=x,colour=red", "unknown attribute 'colour' for type=raw"),
        ("type=semver", "missing pattern attribute"),
        ("type=pep440,value=1.0", "missing pattern attribute"),
        ("type=match,value=x", "missing pattern attribute"),
        ("type=match,pattern=x,group=one", "invalid match group 'one'"),
        ("type=ref", "missing event attribute"),
        ("type=ref,event=commit", "invalid event 'commit'"),
        ("type=raw", "missing value attribute"),
        ("type=sha,format=medium", "invalid format 'medium'"),
        ("type=raw,value=a,priority=high", "invalid priority 'high'"),
        ("type=raw,a,b", "several values without a name"),
        ("type=raw,=a", "has no attribute name"),
        ("type=raw,value=a,", "empty field"),
        ('type=raw,"value=a', "malformed tag rule"),
    ],
)
def test_malformed_rules_name_the_rule(rule: str, message: str) -> None:
    with pytest.raises(TagRuleError) as excinfo:
        parse_rules([rule])
    assert message in str(excinfo.value)
    assert repr(rule) in str(excinfo.value) or rule in str(excinfo.value)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], Flavor()),
        (["latest=false"], Flavor(latest="false")),
        (
            ["latest=true\nprefix=foo-\nsuffix=-bar"],
            Flavor(latest="true", prefix="foo-", suffix="-bar"),
        ),
        (["prefix=foo-,onlatest=true"], Flavor(prefix="foo-", prefix_latest=True)),
        (["suffix=-dev,onlatest=true"], Flavor(suffix="-dev", suffix_latest=True)),
        (["prefix=a-,onlatest=false", "# x"], Flavor(prefix="a-")),
    ],
)
def test_flavor(lines: list[str], expected: Flavor) -> None:
    assert parse_flavor(lines) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("latest=maybe", "invalid latest flavor entry"),
        ("prefix", "invalid flavor entry"),
        ("colour=red", "unknown flavor entry"),
        ("suffix=-x,onlatest=yes", "invalid value 'yes' for onlatest"),
    ],
)
def test_flavor_errors(line: str, message: str) -> None:
    with pytest.raises(TagRuleError, match=message):
        parse_flavor([line])


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["user/app"], [("user/app", True)]),
        (["user/app,ghcr.io/user/app"], [("user/app", True), ("ghcr.io/user/app", True)]),
        (
            ["name=user/app\nname=ghcr.io/u/app,enable=false"],
            [("user/app", True), ("ghcr.io/u/app", False)],
        ),
        # the action's own image cases
        (["name/foo", "name/bar"], [("name/foo", True), ("name/bar", True)]),
        (
            ["name=name/bar", "name/foo,enable=false", "name=ghcr.io/UserName/Foo,enable=true"],
            [("name/bar", True), ("name/foo", False), ("ghcr.io/UserName/Foo", True)],
        ),
        (["ghcr.io/user/app,enable=false"], [("ghcr.io/user/app", False)]),
    ],
)
def test_images(lines: list[str], expected: list[tuple[str, bool]]) -> None:
    assert [(image.name, image.enable) for image in parse_images(lines)] == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("name=a,enable=maybe", "invalid enable value"),
        ("name=a,size=3", "unknown attribute 'size' in image entry"),
        ("value=name/foo", "unknown attribute 'value' in image entry"),
        ("enable=true", "image entry 'enable=true' has no name"),
        ("name=,enable=true", "has no name"),
        ("name/foo,name=name/bar,enable=true", "names more than one image"),
        ("a/b,c/d", "names more than one image"),
        ("a/b,,enable=true", "empty field"),
    ],
)
def test_image_errors(line: str, message: str) -> None:
    with pytest.raises(TagRuleError, match=message):
        parse_images([line, "other/app"])


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["type=raw,value=x,enable=yes"], "invalid value 'yes' for enable in rule"),
        (["type=raw,value=x,enable={{branch}}"], "invalid value 'dev' for enable"),
        (["type=semver,pattern={{version}},value=1.2"], "'1.2' is not a valid semantic version"),
        (["type=semver,pattern={{version}},value=banana"], "not a valid semantic version"),
        (["type=pep440,pattern={{version}},value=banana"], "not a PEP 440 version"),
        (["type=raw,value=" + "a" * 129], "is 129 characters long"),
        (["type=raw,value=a,suffix=" + "b" * 128], "is 129 characters long"),
        (["type=raw,value={{tag}}-x"], "starts with '-'"),
        (["type=raw,value=.hidden"], "starts with '.'"),
        (["type=raw,value={{date 'YYYY' tz='Mars/Olympus'}}"], "unknown time zone"),
        (["type=raw,value={{date 'YYYY' zone='UTC'}}"], "unknown zone attribute"),
        (["type=raw,value={{nope 'x'}}"], "unknown helper 'nope'"),
        (["type=raw,value={{#if branch}}x{{/if}}"], "unsupported template syntax"),
        (["type=raw,value={{branch"], "unclosed"),
        (["type=match,pattern=(unclosed"], "invalid regular expression"),
    ],
)
def test_compute_errors(rules: list[str], message: str) -> None:
    with pytest.raises(TagRuleError, match=message.replace("(", r"\(").replace("{", r"\{")):
        compute(_context(), rules=rules, now=NOW)


def test_long_tag_message_names_the_rule() -> None:
    rule = "type=raw,value=" + "a" * 200
    with pytest.raises(TagRuleError) as excinfo:
        compute(_context(), rules=[rule], now=NOW)
    assert rule[:30] in str(excinfo.value)


def test_exactly_128_characters_is_fine() -> None:
    meta = compute(_context(), rules=["type=raw,value=" + "a" * 128], now=NOW)
    assert meta.bare_tags == ("a" * 128,)


def test_invalid_semver_from_git_tag_is_skipped_not_an_error() -> None:
    meta = compute(
        _context(ref="refs/tags/v1.2"),
        rules=["type=semver,pattern={{version}}", "type=ref,event=tag"],
        now=NOW,
    )
    assert meta.bare_tags == ("v1.2", "latest")


def test_empty_value_expression_gives_no_tag() -> None:
    meta = compute(
        _context(), rules=["type=semver,pattern={{version}},value={{tag}}", "x"], now=NOW
    )
    assert meta.bare_tags == ("x",)


def test_sha_rule_without_any_source_is_an_error() -> None:
    context = _context(ref="", sha="", source="none")
    with pytest.raises(TagRuleError, match="needs a commit sha"):
        compute(context, rules=["type=sha"], now=NOW)
    with pytest.raises(TagRuleError, match="needs a commit"):
        compute(context, rules=["type=raw,value=x-{{sha}}"], now=NOW)
    assert compute(context, rules=["type=raw,value=fixed"], now=NOW).bare_tags == ("fixed",)


def test_sha_rule_with_empty_sha_in_ci_is_skipped_like_the_action() -> None:
    meta = compute(_context(ref="", sha=""), rules=["type=sha", "type=raw,{{branch}}"], now=NOW)
    assert meta.tags == ()
    assert meta.version == ""


# docker/metadata-action's tag parsing table: a rule, then its type and attributes
# (priority included), or None where the action refuses the rule.
ACTION_TAG_PARSE: list[tuple[str, tuple[str, dict[str, str]] | None]] = [
    (
        "type=schedule,enable=true,pattern={{date 'YYYYMMDD'}}",
        ("schedule", {"priority": "1000", "enable": "true", "pattern": "{{date 'YYYYMMDD'}}"}),
    ),
    (
        "type=schedule,enable=true,pattern={{date 'YYYYMMDD' tz='Asia/Tokyo'}}",
        (
            "schedule",
            {
                "priority": "1000",
                "enable": "true",
                "pattern": "{{date 'YYYYMMDD' tz='Asia/Tokyo'}}",
            },
        ),
    ),
    (
        "type=semver,enable=true,pattern={{version}}",
        (
            "semver",
            {
                "priority": "900",
                "enable": "true",
                "pattern": "{{version}}",
                "value": "",
                "match": "",
            },
        ),
    ),
    (
        "type=semver,priority=1,enable=true,pattern={{version}}",
        (
            "semver",
            {"priority": "1", "enable": "true", "pattern": "{{version}}", "value": "", "match": ""},
        ),
    ),
    (
        "type=semver,priority=1,enable=true,pattern={{version}},value=v1.0.0",
        (
            "semver",
            {
                "priority": "1",
                "enable": "true",
                "pattern": "{{version}}",
                "value": "v1.0.0",
                "match": "",
            },
        ),
    ),
    (
        r'type=semver,priority=1,enable=true,pattern={{version}},value=p1/v1.0.0,"match=v(\d.\d.\d)$"',
        (
            "semver",
            {
                "priority": "1",
                "enable": "true",
                "pattern": "{{version}}",
                "value": "p1/v1.0.0",
                "match": r"v(\d.\d.\d)$",
            },
        ),
    ),
    (
        "type=match,enable=true,pattern=v(.*),group=1",
        (
            "match",
            {"priority": "800", "enable": "true", "pattern": "v(.*)", "group": "1", "value": ""},
        ),
    ),
    (
        r'type=match,enable=true,"pattern=^v(\d.\d.\d)$",group=1',
        (
            "match",
            {
                "priority": "800",
                "enable": "true",
                "pattern": r"^v(\d.\d.\d)$",
                "group": "1",
                "value": "",
            },
        ),
    ),
    (
        "type=match,priority=700,enable=true,pattern=v(.*),group=1",
        (
            "match",
            {"priority": "700", "enable": "true", "pattern": "v(.*)", "group": "1", "value": ""},
        ),
    ),
    (
        "type=match,enable=true,pattern=v(.*),group=1,value=v1.2.3",
        (
            "match",
            {
                "priority": "800",
                "enable": "true",
                "pattern": "v(.*)",
                "group": "1",
                "value": "v1.2.3",
            },
        ),
    ),
    ("type=match,enable=true,pattern=v(.*),group=foo", None),
    ("type=edge", ("edge", {"priority": "700", "enable": "true", "branch": ""})),
    (
        "type=edge,enable=true,branch=master",
        ("edge", {"priority": "700", "enable": "true", "branch": "master"}),
    ),
    ("type=ref,event=tag", ("ref", {"priority": "600", "enable": "true", "event": "tag"})),
    ("type=ref,event=branch", ("ref", {"priority": "600", "enable": "true", "event": "branch"})),
    (
        "type=ref,event=pr",
        ("ref", {"priority": "600", "enable": "true", "prefix": "pr-", "event": "pr"}),
    ),
    ("type=ref,event=foo", None),
    ("type=ref", None),
    ("acustomtag", ("raw", {"priority": "200", "enable": "true", "value": "acustomtag"})),
    ("type=raw", None),
    (
        "type=raw,value=acustomtag2",
        ("raw", {"priority": "200", "enable": "true", "value": "acustomtag2"}),
    ),
    (
        "type=raw,enable=true,value=acustomtag4",
        ("raw", {"priority": "200", "enable": "true", "value": "acustomtag4"}),
    ),
    (
        "type=raw,enable=false,value=acustomtag5",
        ("raw", {"priority": "200", "enable": "false", "value": "acustomtag5"}),
    ),
    (
        "type=sha",
        ("sha", {"priority": "100", "enable": "true", "prefix": "sha-", "format": "short"}),
    ),
    (
        "type=sha,format=long",
        ("sha", {"priority": "100", "enable": "true", "prefix": "sha-", "format": "long"}),
    ),
    (
        "type=sha,prefix=",
        ("sha", {"priority": "100", "enable": "true", "prefix": "", "format": "short"}),
    ),
    (
        "type=sha,enable=false",
        ("sha", {"priority": "100", "enable": "false", "prefix": "sha-", "format": "short"}),
    ),
    ("type=semver", None),
    ("type=match", None),
    ("type=foo", None),
    ("type=sha,format=foo", None),
]

# docker/metadata-action's flavor table: lines, then the flavor or None where it refuses them.
ACTION_FLAVORS: list[tuple[list[str], Flavor | None]] = [
    (["randomstr", "latest=auto"], None),
    (["unknwown=foo"], None),
    (["latest"], None),
    (["latest=true"], Flavor(latest="true")),
    (["latest=false"], Flavor(latest="false")),
    (["latest=auto"], Flavor()),
    (["latest=foo"], None),
    (["prefix=sha-"], Flavor(prefix="sha-")),
    (["suffix=-alpine"], Flavor(suffix="-alpine")),
    (
        ["latest=false", "prefix=dev-", "suffix=-alpine"],
        Flavor(latest="false", prefix="dev-", suffix="-alpine"),
    ),
    (["prefix=dev-,onlatest=true"], Flavor(prefix="dev-", prefix_latest=True)),
    (["suffix=-alpine,onlatest=true"], Flavor(suffix="-alpine", suffix_latest=True)),
    (
        ["prefix=dev-,onlatest=true", "suffix=-alpine,onlatest=true"],
        Flavor(prefix="dev-", prefix_latest=True, suffix="-alpine", suffix_latest=True),
    ),
    (["prefix= "], Flavor()),
]


@pytest.mark.parametrize(("text", "expected"), ACTION_TAG_PARSE)
def test_action_tag_parse_table(text: str, expected: tuple[str, dict[str, str]] | None) -> None:
    if expected is None:
        with pytest.raises(TagRuleError):
            parse_rules([text])
        return
    (rule,) = parse_rules([text])
    assert (rule.type, dict(rule.attrs)) == expected
    assert rule.priority == float(expected[1]["priority"])


@pytest.mark.parametrize(("lines", "expected"), ACTION_FLAVORS)
def test_action_flavor_table(lines: list[str], expected: Flavor | None) -> None:
    if expected is None:
        with pytest.raises(TagRuleError):
            parse_flavor(lines)
        return
    assert parse_flavor(lines) == expected
