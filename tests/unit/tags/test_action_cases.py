"""docker/metadata-action's own test table, replayed through dockroll.

Every row of the action's ``meta.test.ts`` tables (null, push, tag, latest,
pr, pr-head-sha, schedule, release, raw, json) with its inputs and the
version, tags, labels, annotations or ``json`` output the action expects. A row without a ``tags``
input (``NO_TAGS``) runs the action's default rules, as the action does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from dockroll.tags import (
    ACTION_DEFAULT_RULES,
    Metadata,
    compute,
    detect_context,
    github_output_lines,
)
from tests.unit.tags.conftest import (
    NOW,
    SHA_DEV,
    SHA_INVALID,
    SHA_MASTER,
    SHA_PR,
    SHA_PR_HEAD,
    GithubEnv,
    oci_labels,
)

APP = ["user/app"]
TWO = ["org/app", "ghcr.io/user/app"]
#: The action run without a ``tags:`` input.
NO_TAGS: list[str] = []


class Row(NamedTuple):
    """One row: inputs, then what the action gives for them."""

    id: str
    event: str
    images: list[str]
    tags: list[str]
    flavor: list[str]
    version: str
    expected_tags: list[str]
    labels: Sequence[str] = ()
    annotations: Sequence[str] = ()
    #: labels and annotations besides (or instead of) the computed OCI ones
    expected_labels: Mapping[str, str] = {}
    expected_annotations: Mapping[str, str] = {}


def _both(*names: str) -> list[str]:
    return [f"{image}:{name}" for image in TWO for name in names]


NULL: list[Row] = [
    Row("null01", "null", APP, NO_TAGS, [], "", []),
    Row("null02", "empty", APP, ["type=sha", "type=raw,{{branch}}"], [], "", []),
]

PUSH: list[Row] = [
    Row("push01", "push_dev", APP, NO_TAGS, [], "dev", ["user/app:dev"]),
    Row("push02", "push_master", APP, ["type=edge"], [], "edge", ["user/app:edge"]),
    Row("push03", "push_master", APP, NO_TAGS, [], "master", ["user/app:master"]),
    Row("push04", "workflow_dispatch", APP, ["type=edge"], [], "edge", ["user/app:edge"]),
    Row("push05", "push_dev", TWO, NO_TAGS, [], "dev", _both("dev")),
    Row("push06", "push_master", TWO, ["type=edge"], [], "edge", _both("edge")),
    Row(
        "push07",
        "push_dev",
        TWO,
        ["type=ref,event=branch", "type=sha"],
        [],
        "dev",
        _both("dev", "sha-860c190"),
    ),
    Row(
        "push08",
        "push_master",
        TWO,
        ["type=edge", "type=sha"],
        [],
        "edge",
        _both("edge", "sha-2665741"),
    ),
    Row(
        "push09",
        "push_dev",
        TWO,
        ["type=edge,branch=dev", "type=sha"],
        [],
        "edge",
        _both("edge", "sha-860c190"),
    ),
    Row(
        "push10",
        "push_master",
        TWO,
        ["type=edge,branch=dev", "type=sha"],
        [],
        "sha-2665741",
        _both("sha-2665741"),
    ),
    Row(
        "push11",
        "push_invalidchars",
        TWO,
        ["type=edge", "type=sha"],
        [],
        "sha-983315b",
        _both("sha-983315b"),
    ),
    Row(
        "push12",
        "push_invalidchars",
        TWO,
        ["type=semver,pattern={{version}}", "type=pep440,pattern={{version}}", "type=edge"],
        [],
        "",
        [],
    ),
    Row(
        "push13",
        "push_master",
        APP,
        ["type=ref,priority=2000,event=branch", "type=edge"],
        [],
        "master",
        ["user/app:master", "user/app:edge"],
    ),
    Row(
        "push14",
        "push_master",
        APP,
        [
            "type=semver,pattern={{version}},value=v1.2.3",
            "type=pep440,pattern={{version}},value=v1.2.3",
            "type=edge",
        ],
        [],
        "1.2.3",
        ["user/app:1.2.3", "user/app:edge", "user/app:latest"],
    ),
    Row(
        "push15",
        "push_master",
        APP,
        ["type=match,pattern=v(.*),group=1,value=v1.2.3", "type=edge"],
        [],
        "1.2.3",
        ["user/app:1.2.3", "user/app:edge", "user/app:latest"],
    ),
    Row(
        "push16",
        "push_master",
        APP,
        ["type=match,enable=false,pattern=v(.*),group=1,value=v1.2.3", "type=edge"],
        [],
        "edge",
        ["user/app:edge"],
    ),
    Row(
        "push17",
        "push_master",
        APP,
        [
            "type=raw,value=mytag-{{branch}}",
            "type=raw,value=mytag-{{date 'YYYYMMDD'}}",
            "type=raw,value=mytag-cd-{{commit_date 'YYYYMMDD'}}",
            "type=raw,value=mytag-{{date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
            "type=raw,value=mytag-tag-{{tag}}",
            "type=raw,value=mytag-baseref-{{base_ref}}",
            "type=raw,value=mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        [
            "user/app:mytag-master",
            "user/app:mytag-20200110",
            "user/app:mytag-cd-20200110",
            "user/app:mytag-20200110-093000",
            "user/app:mytag-tag-",
            "user/app:mytag-baseref-",
            "user/app:mytag-defbranch",
        ],
    ),
    Row(
        "push18",
        "push_dev",
        TWO,
        ["type=ref,event=branch", "type=sha,format=long"],
        [],
        "dev",
        _both("dev", f"sha-{SHA_DEV}"),
    ),
    Row(
        "push19",
        "push_dev",
        TWO,
        [
            "type=edge,branch=master",
            "type=ref,event=branch,enable=false",
            "type=sha,format=long",
            "type=raw,value=defbranch,enable={{is_default_branch}}",
        ],
        [],
        f"sha-{SHA_DEV}",
        _both(f"sha-{SHA_DEV}"),
    ),
    Row(
        "push20",
        "push_dev",
        ["org/app", "ghcr.io/user/app,enable=false"],
        ["type=edge,branch=master", "type=ref,event=branch,enable=false", "type=sha,format=long"],
        [],
        f"sha-{SHA_DEV}",
        [f"org/app:sha-{SHA_DEV}"],
    ),
    Row(
        "push21",
        "push_master",
        [],
        [
            "type=raw,value=mytag-{{branch}}",
            "type=raw,value=mytag-{{date 'YYYYMMDD'}}",
            "type=raw,value=mytag-{{date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
            "type=raw,value=mytag-src-{{commit_date 'YYYYMMDD'}}",
            "type=raw,value=mytag-tag-{{tag}}",
            "type=raw,value=mytag-baseref-{{base_ref}}",
            "type=raw,value=mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        [
            "mytag-master",
            "mytag-20200110",
            "mytag-20200110-093000",
            "mytag-src-20200110",
            "mytag-tag-",
            "mytag-baseref-",
            "mytag-defbranch",
        ],
        labels=["org.opencontainers.image.created={{commit_date 'YYYY-MM-DDTHH:mm:ss.SSS[Z]'}}"],
    ),
    Row(
        "push22",
        "push_dev",
        ["org/app"],
        [
            "type=edge,branch=master",
            "type=sha,format=long",
            "type=raw,value=notdefbranch,enable={{is_not_default_branch}}",
        ],
        [],
        "notdefbranch",
        ["org/app:notdefbranch", f"org/app:sha-{SHA_DEV}"],
    ),
]

TAG: list[Row] = [
    Row(
        "tag01",
        "tag_release1",
        APP,
        NO_TAGS,
        [],
        "release1",
        ["user/app:release1", "user/app:latest"],
    ),
    Row(
        "tag02",
        "tag_20200110-RC2",
        APP,
        NO_TAGS,
        [],
        "20200110-RC2",
        ["user/app:20200110-RC2", "user/app:latest"],
    ),
    Row(
        "tag03",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}"],
        ["latest=false"],
        "20200110",
        ["user/app:20200110"],
    ),
    Row(
        "tag04",
        "tag_20200110-RC2",
        APP,
        ["type=match,pattern=(.*)-RC,group=1"],
        ["latest=false"],
        "20200110",
        ["user/app:20200110"],
    ),
    Row(
        "tag05",
        "tag_v1.1.1",
        TWO,
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    Row(
        "tag06",
        "tag_v1.1.1",
        TWO,
        [r'type=match,"pattern=^v(\d.\d.\d)$",group=1'],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    Row(
        "tag07",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d.\d-(alpha|beta).\d+"'],
        [],
        "2.0.8-beta.67",
        _both("2.0.8-beta.67", "latest"),
    ),
    Row(
        "tag08",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d"'],
        [],
        "2.0",
        _both("2.0", "latest"),
    ),
    Row(
        "tag09",
        "tag_v2.0.8-beta.67",
        TWO,
        [
            'type=match,"pattern=v(.*)-beta.(.*)",group=1',
            'type=match,"pattern=v(.*)-beta.(.*)",group=2',
        ],
        [],
        "2.0.8",
        _both("2.0.8", "67", "latest"),
    ),
    Row("tag10", "tag_sometag", TWO, [r'type=match,"pattern=\d.\d"'], [], "", []),
    Row(
        "tag11",
        "tag_v1.1.1",
        TWO,
        [
            "type=semver,pattern={{version}}",
            "type=semver,pattern={{major}}.{{minor}}",
            "type=semver,pattern={{major}}",
        ],
        [],
        "1.1.1",
        _both("1.1.1", "1.1", "1", "latest"),
    ),
    Row(
        "tag12",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    Row(
        "tag13",
        "tag_v2.0.8-beta.67",
        TWO,
        ["type=semver,pattern={{major}}.{{minor}}", "type=semver,pattern={{major}}"],
        [],
        "2.0.8-beta.67",
        _both("2.0.8-beta.67"),
    ),
    Row(
        "tag14",
        "tag_sometag",
        ["ghcr.io/user/app"],
        [
            "type=ref,event=tag",
            "type=semver,pattern={{version}}",
            "type=semver,pattern={{major}}.{{minor}}",
            "type=semver,pattern={{major}}",
        ],
        ["latest=false"],
        "sometag",
        ["ghcr.io/user/app:sometag"],
    ),
    Row(
        "tag15",
        "tag_v2.0.8-beta.67",
        TWO,
        [
            "type=raw,priority=2000,foo",
            "type=semver,pattern={{version}}",
            r'type=match,"pattern=\d.\d"',
        ],
        [],
        "foo",
        _both("foo", "2.0.8-beta.67", "2.0"),
    ),
    Row(
        "tag16",
        "tag_v1.1.1",
        TWO,
        ["type=raw,priority=2000,foo", "type=ref,event=tag", "type=edge"],
        [],
        "foo",
        _both("foo", "v1.1.1"),
    ),
    Row(
        "tag17",
        "tag_p1-v1.0.0",
        TWO,
        [
            r'type=match,"pattern=/^v(\d.\d.\d)$/ig",group=1',
            r"type=match,pattern=\d.\d.\d",
            r"type=match,pattern=\d.\d",
            "type=ref,event=pr",
            "type=sha",
        ],
        [],
        "1.0.0",
        _both("1.0.0", "1.0", "sha-860c190", "latest"),
    ),
    Row(
        "tag18",
        "tag_p1-v1.0.0",
        TWO,
        [
            r"type=match,pattern=p1/v(\d.\d.\d),group=1",
            r"type=match,pattern=p1/v(\d.\d),group=1",
            r"type=match,pattern=p1/v(\d.\d),group=3",
            "type=ref,event=pr",
            "type=sha",
        ],
        [],
        "1.0.0",
        _both("1.0.0", "1.0", "sha-860c190", "latest"),
    ),
    Row(
        "tag19",
        "tag_p1-v1.0.0",
        TWO,
        [
            r"type=match,pattern=p1/v(\d.\d.\d),group=1",
            r"type=match,pattern=p1/v(\d.\d),group=1,suffix=",
            "type=ref,event=pr",
            "type=sha",
        ],
        ["suffix=-dev"],
        "1.0.0-dev",
        _both("1.0.0-dev", "1.0", "sha-860c190-dev", "latest"),
    ),
    Row(
        "tag20",
        "tag_v1.1.1",
        TWO,
        [
            "type=raw,{{tag}}-{{sha}}-foo",
            "type=raw,{{base_ref}}-foo",
            "type=raw,defbranch-foo,enable={{is_default_branch}}",
        ],
        [],
        "v1.1.1-860c190-foo",
        _both("v1.1.1-860c190-foo", "master-foo"),
    ),
    Row(
        "tag21",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        ["suffix=-dev,onlatest=true"],
        "1.1.1-dev",
        _both("1.1.1-dev", "latest-dev"),
    ),
    Row(
        "tag22",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        ["prefix=foo-,onlatest=true", "suffix=-dev,onlatest=true"],
        "foo-1.1.1-dev",
        _both("foo-1.1.1-dev", "foo-latest-dev"),
    ),
    Row(
        "tag23",
        "tag_v1.1.1",
        ["org/app"],
        ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "v1.1.1",
        ["org/app:v1.1.1", "org/app:1.1", "org/app:latest"],
    ),
    Row(
        "tag24",
        "tag_1.2",
        ["org/app"],
        ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "1.2",
        ["org/app:1.2", "org/app:latest"],
    ),
    Row(
        "tag25",
        "tag_1.1beta2",
        TWO,
        ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
        [],
        "1.1b2",
        _both("1.1b2"),
    ),
    Row(
        "tag26",
        "tag_1.0dev4",
        TWO,
        ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
        [],
        "1.0.dev4",
        _both("1.0.dev4"),
    ),
    Row(
        "tag27",
        "tag_1.2.3rc2",
        TWO,
        [
            "type=pep440,pattern={{raw}}",
            "type=pep440,pattern={{version}}",
            "type=pep440,pattern={{major}}.{{minor}}",
            "type=pep440,pattern={{major}}",
        ],
        [],
        "1.2.3rc2",
        _both("1.2.3rc2"),
    ),
    Row(
        "tag28",
        "tag_v1.1.1",
        ["org/app"],
        [
            "type=pep440,pattern={{version}}",
            "type=pep440,pattern={{major}}.{{minor}}.{{patch}}",
            "type=pep440,pattern={{major}}.{{minor}}",
            "type=pep440,pattern={{major}}",
        ],
        [],
        "1.1.1",
        ["org/app:1.1.1", "org/app:1.1", "org/app:1", "org/app:latest"],
    ),
    Row(
        "tag29",
        "tag_1.2post1",
        ["org/app"],
        [
            "type=pep440,pattern={{version}}",
            "type=pep440,pattern={{major}}.{{minor}}",
            "type=pep440,pattern={{major}}",
        ],
        [],
        "1.2.post1",
        ["org/app:1.2.post1"],
    ),
    Row(
        "tag30",
        "tag_sometag",
        ["ghcr.io/user/app"],
        [
            "type=ref,event=tag",
            "type=pep440,pattern={{version}}",
            "type=pep440,pattern={{major}}.{{minor}}",
            "type=pep440,pattern={{major}}",
        ],
        ["latest=false"],
        "sometag",
        ["ghcr.io/user/app:sometag"],
    ),
    Row(
        "tag31",
        "tag_v2.0.8-beta.67",
        TWO,
        ["type=semver,pattern={{raw}}"],
        [],
        "v2.0.8-beta.67",
        _both("v2.0.8-beta.67"),
    ),
    Row(
        "tag32",
        "tag_v1.2.3rc2",
        TWO,
        ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "v1.2.3rc2",
        _both("v1.2.3rc2", "1.2.3rc2"),
    ),
    Row(
        "tag33",
        "tag_v1.1.1",
        [],
        [
            "type=pep440,pattern={{version}}",
            "type=pep440,pattern={{major}}.{{minor}}.{{patch}}",
            "type=pep440,pattern={{major}}.{{minor}}",
            "type=pep440,pattern={{major}}",
        ],
        [],
        "1.1.1",
        ["1.1.1", "1.1", "1", "latest"],
    ),
    Row(
        "tag34",
        "tag_p1-v1.0.0",
        ["org/app"],
        [r'type=semver,pattern={{version}},"match=v(\d.\d.\d)$"'],
        [],
        "1.0.0",
        ["org/app:1.0.0", "org/app:latest"],
    ),
    Row(
        "push35",
        "push_master",
        APP,
        [
            r'type=semver,pattern={{version}},value=p1/v1.2.3,"match=v(\d.\d.\d)$"',
            r'type=pep440,pattern={{version}},value=p1/v1.2.3,"match=v(\d.\d.\d)$"',
            "type=edge",
        ],
        [],
        "1.2.3",
        ["user/app:1.2.3", "user/app:edge", "user/app:latest"],
    ),
]

LATEST: list[Row] = [
    Row(
        "latest01",
        "tag_release1",
        APP,
        [r'type=match,"pattern=^release\d{1,2}"'],
        [],
        "release1",
        ["user/app:release1", "user/app:latest"],
    ),
    Row(
        "latest02",
        "tag_20200110-RC2",
        APP,
        [r'type=match,"pattern=^\d+-RC\d{1,2}"'],
        [],
        "20200110-RC2",
        ["user/app:20200110-RC2", "user/app:latest"],
    ),
    Row(
        "latest03",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}"],
        [],
        "20200110",
        ["user/app:20200110", "user/app:latest"],
    ),
    Row(
        "latest04",
        "tag_v1.1.1",
        APP,
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "1.1.1",
        ["user/app:1.1.1", "user/app:latest"],
    ),
    Row("latest05", "tag_v1.1.1", TWO, NO_TAGS, [], "v1.1.1", _both("v1.1.1", "latest")),
    Row(
        "latest06",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "2.0.8",
        _both("2.0.8", "latest"),
    ),
    Row(
        "latest07",
        "tag_v1.1.1",
        TWO,
        ["type=ref,event=tag"],
        ["latest=false"],
        "v1.1.1",
        _both("v1.1.1"),
    ),
    Row(
        "latest08",
        "tag_v1.1.1",
        ["org/app", "ghcr.io/MyUSER/MyApp"],
        ["type=ref,event=tag"],
        ["latest=false"],
        "v1.1.1",
        ["org/app:v1.1.1", "ghcr.io/myuser/myapp:v1.1.1"],
    ),
    Row(
        "latest09",
        "tag_v1.1.1",
        ["org/app", "ghcr.io/MyUSER/MyApp"],
        ["type=ref,event=tag"],
        ["latest=false"],
        "v1.1.1",
        ["org/app:v1.1.1", "ghcr.io/myuser/myapp:v1.1.1"],
        labels=[
            "maintainer=CrazyMax",
            'org.opencontainers.image.description=this is a "good" example',
            "org.opencontainers.image.title=MyCustomTitle",
            "org.opencontainers.image.vendor=MyCompany",
        ],
        annotations=[
            "maintainer=Foo",
            'org.opencontainers.image.description=this is a "bad" example',
            "org.opencontainers.image.title=MyNotTitle",
            "org.opencontainers.image.vendor=MyNotCompany",
        ],
        expected_labels={
            "maintainer": "CrazyMax",
            "org.opencontainers.image.description": 'this is a "good" example',
            "org.opencontainers.image.title": "MyCustomTitle",
            "org.opencontainers.image.vendor": "MyCompany",
        },
        expected_annotations={
            "maintainer": "Foo",
            "org.opencontainers.image.description": 'this is a "bad" example',
            "org.opencontainers.image.title": "MyNotTitle",
            "org.opencontainers.image.vendor": "MyNotCompany",
        },
    ),
    Row(
        "latest10",
        "tag_v2.0.8-beta.67",
        [],
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "2.0.8",
        ["2.0.8", "latest"],
    ),
]

PR: list[Row] = [
    Row("pr01", "pull_request", APP, NO_TAGS, [], "pr-15", ["user/app:pr-15"]),
    Row("pr02", "pull_request", TWO, NO_TAGS, [], "pr-15", _both("pr-15")),
    Row(
        "pr03",
        "pull_request",
        TWO,
        ["type=ref,event=pr", "type=sha"],
        [],
        "pr-15",
        _both("pr-15", "sha-a9c8c58"),
    ),
    Row(
        "pr04",
        "pull_request",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-a9c8c58",
        _both("sha-a9c8c58", "pr-15"),
    ),
    Row(
        "pr05",
        "pull_request",
        TWO,
        ["type=ref,event=pr"],
        ["prefix=glo-", "suffix=-bal"],
        "pr-15-bal",
        _both("pr-15-bal"),
    ),
    Row(
        "pr06",
        "pull_request",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    Row(
        "pr07",
        "pull_request_target",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-2665741",
        _both("sha-2665741", "pr-15"),
    ),
    Row(
        "pr08",
        "pull_request_target",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    Row(
        "pr09",
        "pull_request_target",
        ["org/app"],
        [
            "type=ref,event=tag",
            "type=ref,event=pr",
            "type=ref,event=branch",
            "type=sha",
            "type=sha,format=long",
        ],
        [],
        "pr-15",
        ["org/app:pr-15", "org/app:sha-2665741", f"org/app:sha-{SHA_MASTER}"],
    ),
    Row(
        "pr10",
        "pull_request_target",
        ["org/app"],
        [
            "type=raw,value=mytag-{{base_ref}}",
            "type=raw,mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        ["org/app:mytag-master"],
    ),
    Row(
        "pr11",
        "pull_request",
        ["org/app"],
        [
            "type=raw,value=mytag-{{base_ref}}",
            "type=raw,mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        ["org/app:mytag-master"],
    ),
    Row(
        "pr12",
        "pull_request",
        ["org/app"],
        ["type=raw,value={{commit_date YYYY-MM-DD-HHmmSS}}"],
        [],
        "2020-01-10T00-30-00Z",
        ["org/app:2020-01-10T00-30-00Z"],
    ),
]

PR_HEAD_SHA: list[Row] = [
    Row("pr01", "pull_request", APP, NO_TAGS, [], "pr-15", ["user/app:pr-15"]),
    Row("pr02", "pull_request", TWO, NO_TAGS, [], "pr-15", _both("pr-15")),
    Row(
        "pr03",
        "pull_request",
        TWO,
        ["type=ref,event=pr", "type=sha"],
        [],
        "pr-15",
        _both("pr-15", "sha-3370e22"),
    ),
    Row(
        "pr04",
        "pull_request",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-3370e22",
        _both("sha-3370e22", "pr-15"),
    ),
    Row(
        "pr05",
        "pull_request",
        TWO,
        ["type=ref,event=pr"],
        ["prefix=glo-", "suffix=-bal"],
        "pr-15-bal",
        _both("pr-15-bal"),
    ),
    Row(
        "pr06",
        "pull_request",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    Row(
        "pr07",
        "pull_request_target",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-3370e22",
        _both("sha-3370e22", "pr-15"),
    ),
    Row(
        "pr08",
        "pull_request_target",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    Row(
        "pr09",
        "pull_request_target",
        ["org/app"],
        [
            "type=ref,event=tag",
            "type=ref,event=pr",
            "type=ref,event=branch",
            "type=sha",
            "type=sha,format=long",
        ],
        [],
        "pr-15",
        ["org/app:pr-15", "org/app:sha-3370e22", f"org/app:sha-{SHA_PR_HEAD}"],
    ),
    Row(
        "pr10",
        "pull_request_target",
        ["org/app"],
        [
            "type=raw,value=mytag-{{base_ref}}",
            "type=raw,mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        ["org/app:mytag-master"],
    ),
    Row(
        "pr11",
        "pull_request",
        ["org/app"],
        [
            "type=raw,value=mytag-{{base_ref}}",
            "type=raw,mytag-defbranch,enable={{is_default_branch}}",
        ],
        [],
        "mytag-master",
        ["org/app:mytag-master"],
    ),
    Row(
        "pr12",
        "pull_request",
        ["org/app"],
        ["type=raw,value=src-{{commit_date YYYY-MM-DD}}"],
        [],
        "src-2020-01-10T00-30-00Z",
        ["org/app:src-2020-01-10T00-30-00Z"],
    ),
]

SCHEDULE: list[Row] = [
    Row(
        "schedule01",
        "schedule",
        APP,
        NO_TAGS,
        [],
        "nightly",
        ["user/app:nightly", "user/app:master"],
    ),
    Row(
        "schedule02",
        "schedule",
        APP,
        [
            "type=schedule,pattern={{date 'YYYYMMDD'}}",
            "type=schedule,pattern=source-date-{{commit_date 'YYYY-MM-DD'}}",
        ],
        [],
        "20200110",
        ["user/app:20200110", "user/app:source-date-2020-01-10"],
    ),
    Row(
        "schedule03",
        "schedule",
        APP,
        ["type=schedule,pattern={{date 'YYYYMMDD-HHmmss'}}"],
        [],
        "20200110-003000",
        ["user/app:20200110-003000"],
    ),
    Row("schedule04", "schedule", TWO, NO_TAGS, [], "nightly", _both("nightly", "master")),
    Row(
        "schedule05",
        "schedule",
        TWO,
        ["type=schedule", "type=sha"],
        [],
        "nightly",
        _both("nightly", "sha-860c190"),
    ),
    Row(
        "schedule06",
        "schedule",
        TWO,
        [
            "type=schedule",
            "type=sha,priority=2000",
            "type=raw,value=defbranch,enable={{is_default_branch}}",
        ],
        [],
        "sha-860c190",
        _both("sha-860c190", "nightly", "defbranch"),
    ),
    Row(
        "schedule07",
        "schedule",
        TWO,
        ["type=schedule"],
        ["prefix=glo-", "suffix=-bal"],
        "glo-nightly-bal",
        _both("glo-nightly-bal"),
    ),
    Row(
        "schedule08",
        "schedule",
        APP,
        [
            "type=schedule,pattern={{date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
            "type=schedule,pattern=src-{{commit_date 'YYYYMMDD-HHmmss' tz='Asia/Tokyo'}}",
        ],
        [],
        "20200110-093000",
        ["user/app:20200110-093000", "user/app:src-20200110-093000"],
    ),
]

RELEASE: list[Row] = [
    Row(
        "release01",
        "release_created",
        APP,
        NO_TAGS,
        [],
        "v1.1.1",
        ["user/app:v1.1.1", "user/app:latest"],
    ),
    Row(
        "release02",
        "release_created",
        APP,
        [
            "type=ref,event=tag",
            "type=raw,value=baseref-{{base_ref}}",
            "type=raw,value=defbranch,enable={{is_default_branch}}",
        ],
        [],
        "v1.1.1",
        ["user/app:v1.1.1", "user/app:baseref-", "user/app:latest"],
    ),
    Row(
        "release03",
        "release_created",
        APP,
        [
            "type=raw,value=src-{{commit_date 'YYYYMMDD-HHmmss'}}",
            "type=raw,value={{date 'YYYYMMDD-HHmmss'}}",
        ],
        [],
        "src-20200110-003000",
        ["user/app:src-20200110-003000", "user/app:20200110-003000"],
    ),
]

RAW: list[Row] = [
    Row(
        "raw01",
        "push_dev",
        APP,
        ["type=ref,event=branch", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        [],
        "dev",
        ["user/app:dev", "user/app:my", "user/app:custom", "user/app:tags"],
    ),
    Row(
        "raw02",
        "push_dev",
        APP,
        ["type=ref,event=branch", "type=raw,my"],
        [],
        "dev",
        ["user/app:dev", "user/app:my"],
    ),
    Row(
        "raw03",
        "tag_release1",
        APP,
        ["type=ref,event=tag", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        [],
        "release1",
        ["user/app:release1", "user/app:my", "user/app:custom", "user/app:tags", "user/app:latest"],
    ),
    Row(
        "raw04",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        ["latest=false"],
        "20200110",
        ["user/app:20200110", "user/app:my", "user/app:custom", "user/app:tags"],
    ),
    Row(
        "raw05",
        "tag_v1.1.1",
        TWO,
        [
            "type=semver,pattern={{version}}",
            "type=semver,pattern={{major}}.{{minor}}",
            "type=semver,pattern={{major}}",
            "type=raw,my",
            "type=raw,custom",
            "type=raw,tags",
        ],
        [],
        "1.1.1",
        _both("1.1.1", "1.1", "1", "my", "custom", "tags", "latest"),
    ),
    Row(
        "raw06",
        "tag_v1.1.1",
        TWO,
        ["type=raw,my", "type=raw,custom", "type=raw,tags"],
        [],
        "my",
        _both("my", "custom", "tags"),
    ),
    Row(
        "raw07",
        "push_dev",
        APP,
        ["type=ref,priority=90,event=branch", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        ["latest=true"],
        "my",
        ["user/app:my", "user/app:custom", "user/app:tags", "user/app:dev", "user/app:latest"],
    ),
    Row(
        "raw08",
        "push_dev",
        APP,
        [r"type=match,pattern=\d{8}", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        ["latest=false"],
        "my",
        ["user/app:my", "user/app:custom", "user/app:tags"],
    ),
    Row(
        "raw09",
        "push_dev",
        APP,
        [
            r"type=match,pattern=\d{8}",
            "type=raw,my,prefix=foo-,suffix=-bar",
            "type=raw,custom",
            "type=raw,tags",
        ],
        ["latest=false", "prefix=glo-", "suffix=-bal"],
        "foo-my-bar",
        ["user/app:foo-my-bar", "user/app:glo-custom-bal", "user/app:glo-tags-bal"],
    ),
    Row(
        "raw10",
        "push_dev",
        APP,
        ["type=raw,foo", "type=raw,bar,enable=false", "type=raw,baz,enable=true"],
        ["latest=false"],
        "foo",
        ["user/app:foo", "user/app:baz"],
    ),
]

#: dockroll's own rows in the same form: cases the action's table leaves out.
EXTRA: list[Row] = [
    Row(
        "tag-build-metadata",
        "tag_v9.5.7-alpha.2+fork.3.1.8",
        APP,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{raw}},priority=1"],
        [],
        "9.5.7-alpha.2",
        ["user/app:9.5.7-alpha.2", "user/app:v9.5.7-alpha.2-fork.3.1.8"],
    ),
    Row(
        "schedule-not-scheduled",
        "push_master",
        APP,
        ["type=schedule", "type=sha"],
        [],
        "sha-2665741",
        ["user/app:sha-2665741"],
    ),
    Row(
        "raw-shorthand",
        "push_dev",
        APP,
        ["foo", "bar"],
        [],
        "foo",
        ["user/app:foo", "user/app:bar"],
    ),
    Row("defaults-no-images", "tag_v1.1.1", [], NO_TAGS, [], "v1.1.1", ["v1.1.1", "latest"]),
]

ACTION_ROWS = NULL + PUSH + TAG + LATEST + PR + SCHEDULE + RELEASE + RAW


def _revision(event: str, pr_head_sha: bool) -> str:
    if event in {"null", "empty"}:
        return ""
    if pr_head_sha:
        return SHA_PR_HEAD
    return {
        "pull_request": SHA_PR,
        "pull_request_target": SHA_MASTER,
        "push_master": SHA_MASTER,
        "push_invalidchars": SHA_INVALID,
    }.get(event, SHA_DEV)


def _env(github_env: GithubEnv, event: str, **extra: str) -> dict[str, str]:
    if event == "null":
        return {}  # no CI variables at all, and no git checkout
    if event == "empty":
        # The action always reads a GitHub Actions context; its empty fixture is a run
        # whose variables are all empty.
        return {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "",
            "GITHUB_EVENT_PATH": "",
            "GITHUB_REF": "",
            "GITHUB_SHA": "",
            "GITHUB_REPOSITORY": "",
            "GITHUB_RUN_NUMBER": "",
        }
    return github_env(event, **extra)


def _run(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path, row: Row, **extra: str
) -> Metadata:
    context = detect_context(
        _env(github_env, row.event, **extra), cwd=tmp_path, repo_json=repo_json
    )
    return compute(
        context,
        images=row.images,
        rules=row.tags,
        flavor=row.flavor,
        labels=row.labels,
        annotations=row.annotations,
        now=NOW,
        default_rules=ACTION_DEFAULT_RULES,
    )


def _check(meta: Metadata, row: Row, revision: str) -> None:
    assert meta.version == row.version
    assert list(meta.tags) == row.expected_tags
    oci = oci_labels(row.version, revision)
    assert dict(meta.labels) == {**oci, **row.expected_labels}
    assert dict(meta.annotations) == {**oci, **row.expected_annotations}


def test_the_table_holds_every_row_of_the_actions() -> None:
    assert len(ACTION_ROWS) + len(PR_HEAD_SHA) == 114
    assert len(JSON_ROWS) == 7
    assert len({row.id for row in ACTION_ROWS}) == len(ACTION_ROWS)


@pytest.mark.parametrize("row", ACTION_ROWS + EXTRA, ids=lambda row: row.id)
def test_action_case(github_env: GithubEnv, repo_json: Path, tmp_path: Path, row: Row) -> None:
    meta = _run(github_env, repo_json, tmp_path, row)
    _check(meta, row, _revision(row.event, pr_head_sha=False))


@pytest.mark.parametrize("row", PR_HEAD_SHA, ids=lambda row: row.id)
def test_pr_head_sha_switch(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path, row: Row
) -> None:
    meta = _run(github_env, repo_json, tmp_path, row, DOCKER_METADATA_PR_HEAD_SHA="true")
    _check(meta, row, _revision(row.event, pr_head_sha=True))


def test_labels_keep_the_actions_order(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path
) -> None:
    row = next(row for row in LATEST if row.id == "latest09")
    meta = _run(github_env, repo_json, tmp_path, row)
    assert list(meta.labels) == sorted(meta.labels)
    assert list(meta.annotations) == sorted(meta.annotations)


# The action's json table: (id, event, images, tags, flavor, labels, version, tag names,
# labels besides the computed OCI ones). Its `json` output holds tags, tag names, labels
# and the OCI labels as manifest annotations.
JsonRow = tuple[
    str, str, list[str], list[str], list[str], list[str], str, list[str], dict[str, str]
]
RAW_MY_CUSTOM_TAGS = ["type=raw,my", "type=raw,custom", "type=raw,tags"]
JSON_ROWS: list[JsonRow] = [
    (
        "json01",
        "push_dev",
        APP,
        ["type=ref,event=branch", *RAW_MY_CUSTOM_TAGS],
        [],
        ["invalid", "foo="],
        "dev",
        ["dev", "my", "custom", "tags"],
        {"foo": ""},
    ),
    (
        "json02",
        "push_dev",
        APP,
        ["type=ref,event=branch", "type=raw,my"],
        [],
        [],
        "dev",
        ["dev", "my"],
        {},
    ),
    (
        "json03",
        "tag_release1",
        APP,
        ["type=ref,event=tag", *RAW_MY_CUSTOM_TAGS],
        [],
        [],
        "release1",
        ["release1", "my", "custom", "tags", "latest"],
        {},
    ),
    (
        "json04",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}", *RAW_MY_CUSTOM_TAGS],
        ["latest=false"],
        [],
        "20200110",
        ["20200110", "my", "custom", "tags"],
        {},
    ),
    (
        "json05",
        "tag_v1.1.1",
        TWO,
        [
            "type=semver,pattern={{version}}",
            "type=semver,pattern={{major}}.{{minor}}",
            "type=semver,pattern={{major}}",
            *RAW_MY_CUSTOM_TAGS,
        ],
        [],
        [],
        "1.1.1",
        ["1.1.1", "1.1", "1", "my", "custom", "tags", "latest"],
        {},
    ),
    ("json06", "tag_v1.1.1", TWO, RAW_MY_CUSTOM_TAGS, [], [], "my", ["my", "custom", "tags"], {}),
    (
        "json07",
        "tag_v1.1.1",
        ["org/app"],
        NO_TAGS,
        [],
        [
            "foo",
            "maintainer=CrazyMax",
            "org.opencontainers.image.title=MyCustom=Title",
            "org.opencontainers.image.description=Another description",
            "org.opencontainers.image.vendor=MyCompany",
        ],
        "v1.1.1",
        ["v1.1.1", "latest"],
        {
            "maintainer": "CrazyMax",
            "org.opencontainers.image.title": "MyCustom=Title",
            "org.opencontainers.image.description": "Another description",
            "org.opencontainers.image.vendor": "MyCompany",
        },
    ),
]


@pytest.mark.parametrize("case", JSON_ROWS, ids=lambda case: case[0])
def test_json_output(github_env: GithubEnv, repo_json: Path, tmp_path: Path, case: JsonRow) -> None:
    name, event, images, tags, flavor, labels, version, names, extra_labels = case
    row = Row(name, event, images, tags, flavor, version, [], labels=labels)
    meta = _run(github_env, repo_json, tmp_path, row)
    outputs = github_output_lines(meta)
    payload = json.loads(outputs.split("json=", 1)[1])
    oci = oci_labels(version, SHA_DEV)
    assert payload == {
        "tags": [f"{image.lower()}:{tag}" for image in images for tag in names],
        "tag-names": names,
        "labels": {**oci, **extra_labels},
        "annotations": [f"manifest:{key}={value}" for key, value in oci.items()],
    }


def test_user_labels_override_and_expressions(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path
) -> None:
    context = detect_context(github_env("tag_v1.1.1"), cwd=tmp_path, repo_json=repo_json)
    meta = compute(
        context,
        images=["org/app"],
        rules=["type=ref,event=tag"],
        flavor=["latest=false"],
        labels=[
            "maintainer=CrazyMax",
            'org.opencontainers.image.description=this is a "good" example',
            "org.opencontainers.image.title=MyCustom=Title",
            "org.opencontainers.image.vendor=MyCompany",
            "invalid",
            "foo=",
            "org.opencontainers.image.created={{commit_date 'YYYY-MM-DDTHH:mm:ss.SSS[Z]'}}",
        ],
        now=NOW,
    )
    assert dict(meta.labels) == {
        "foo": "",
        "maintainer": "CrazyMax",
        **oci_labels(
            "v1.1.1",
            SHA_DEV,
            **{
                "org.opencontainers.image.description": 'this is a "good" example',
                "org.opencontainers.image.title": "MyCustom=Title",
                "org.opencontainers.image.vendor": "MyCompany",
            },
        ),
    }
    # user labels never leak into annotations
    assert meta.annotations["org.opencontainers.image.title"] == "Hello-World"


def test_invalid_chars_in_branch_are_sanitised(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path
) -> None:
    context = detect_context(github_env("push_invalidchars"), cwd=tmp_path, repo_json=repo_json)
    meta = compute(
        context, images=APP, rules=["type=ref,event=branch", "type=raw,x-{{branch}}"], now=NOW
    )
    assert meta.tags == ("user/app:my-feature-1245", "user/app:x-my-feature-1245")
