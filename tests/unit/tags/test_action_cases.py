"""docker/metadata-action's own test cases, replayed through dockroll.

Each row is (case id, event fixture, images, tags rules, flavor, expected
version, expected tags). The expected values are the action's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockroll.tags import Metadata, compute, detect_context
from tests.unit.tags.conftest import (
    NOW,
    SHA_DEV,
    SHA_MASTER,
    SHA_PR,
    SHA_PR_HEAD,
    GithubEnv,
    oci_labels,
)

APP = ["user/app"]
TWO = ["org/app", "ghcr.io/user/app"]
ACTION_DEFAULTS = [
    "type=schedule",
    "type=ref,event=branch",
    "type=ref,event=tag",
    "type=ref,event=pr",
]
Case = tuple[str, str, list[str], list[str], list[str], str, list[str]]


def _both(*names: str) -> list[str]:
    return [f"{image}:{name}" for image in TWO for name in names]


PUSH: list[Case] = [
    ("push01", "push_dev", APP, ACTION_DEFAULTS, [], "dev", ["user/app:dev"]),
    ("push02", "push_master", APP, ["type=edge"], [], "edge", ["user/app:edge"]),
    ("push03", "push_master", APP, ACTION_DEFAULTS, [], "master", ["user/app:master"]),
    ("push04", "workflow_dispatch", APP, ["type=edge"], [], "edge", ["user/app:edge"]),
    ("push05", "push_dev", TWO, ACTION_DEFAULTS, [], "dev", _both("dev")),
    ("push06", "push_master", TWO, ["type=edge"], [], "edge", _both("edge")),
    (
        "push07",
        "push_dev",
        TWO,
        ["type=ref,event=branch", "type=sha"],
        [],
        "dev",
        _both("dev", "sha-860c190"),
    ),
    (
        "push08",
        "push_master",
        TWO,
        ["type=edge", "type=sha"],
        [],
        "edge",
        _both("edge", "sha-2665741"),
    ),
    (
        "push09",
        "push_dev",
        TWO,
        ["type=edge,branch=dev", "type=sha"],
        [],
        "edge",
        _both("edge", "sha-860c190"),
    ),
    (
        "push10",
        "push_master",
        TWO,
        ["type=edge,branch=dev", "type=sha"],
        [],
        "sha-2665741",
        _both("sha-2665741"),
    ),
    (
        "push11",
        "push_invalidchars",
        TWO,
        ["type=edge", "type=sha"],
        [],
        "sha-983315b",
        _both("sha-983315b"),
    ),
    (
        "push12",
        "push_invalidchars",
        TWO,
        ["type=semver,pattern={{version}}", "type=pep440,pattern={{version}}", "type=edge"],
        [],
        "",
        [],
    ),
    (
        "push13",
        "push_master",
        APP,
        ["type=ref,priority=2000,event=branch", "type=edge"],
        [],
        "master",
        ["user/app:master", "user/app:edge"],
    ),
    (
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
    (
        "push15",
        "push_master",
        APP,
        ["type=match,pattern=v(.*),group=1,value=v1.2.3", "type=edge"],
        [],
        "1.2.3",
        ["user/app:1.2.3", "user/app:edge", "user/app:latest"],
    ),
    (
        "push16",
        "push_master",
        APP,
        ["type=match,enable=false,pattern=v(.*),group=1,value=v1.2.3", "type=edge"],
        [],
        "edge",
        ["user/app:edge"],
    ),
    (
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
    (
        "push18",
        "push_dev",
        TWO,
        ["type=ref,event=branch", "type=sha,format=long"],
        [],
        "dev",
        _both("dev", f"sha-{SHA_DEV}"),
    ),
    (
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
    (
        "push20",
        "push_dev",
        ["org/app", "ghcr.io/user/app,enable=false"],
        ["type=edge,branch=master", "type=ref,event=branch,enable=false", "type=sha,format=long"],
        [],
        f"sha-{SHA_DEV}",
        [f"org/app:sha-{SHA_DEV}"],
    ),
    (
        "push21",
        "push_master",
        [],
        [
            "type=raw,value=mytag-{{branch}}",
            "type=raw,value=mytag-{{date 'YYYYMMDD'}}",
            "type=raw,value=mytag-tag-{{tag}}",
        ],
        [],
        "mytag-master",
        ["mytag-master", "mytag-20200110", "mytag-tag-"],
    ),
]

TAG: list[Case] = [
    (
        "tag01",
        "tag_release1",
        APP,
        ACTION_DEFAULTS,
        [],
        "release1",
        ["user/app:release1", "user/app:latest"],
    ),
    (
        "tag02",
        "tag_20200110-RC2",
        APP,
        ACTION_DEFAULTS,
        [],
        "20200110-RC2",
        ["user/app:20200110-RC2", "user/app:latest"],
    ),
    (
        "tag03",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}"],
        ["latest=false"],
        "20200110",
        ["user/app:20200110"],
    ),
    (
        "tag04",
        "tag_20200110-RC2",
        APP,
        ["type=match,pattern=(.*)-RC,group=1"],
        ["latest=false"],
        "20200110",
        ["user/app:20200110"],
    ),
    (
        "tag05",
        "tag_v1.1.1",
        TWO,
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    (
        "tag06",
        "tag_v1.1.1",
        TWO,
        [r'type=match,"pattern=^v(\d.\d.\d)$",group=1'],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    (
        "tag07",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d.\d-(alpha|beta).\d+"'],
        [],
        "2.0.8-beta.67",
        _both("2.0.8-beta.67", "latest"),
    ),
    (
        "tag08",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d"'],
        [],
        "2.0",
        _both("2.0", "latest"),
    ),
    (
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
    ("tag10", "tag_sometag", TWO, [r'type=match,"pattern=\d.\d"'], [], "", []),
    (
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
    (
        "tag12",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        [],
        "1.1.1",
        _both("1.1.1", "latest"),
    ),
    (
        "tag13",
        "tag_v2.0.8-beta.67",
        TWO,
        ["type=semver,pattern={{major}}.{{minor}}", "type=semver,pattern={{major}}"],
        [],
        "2.0.8-beta.67",
        _both("2.0.8-beta.67"),
    ),
    (
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
    (
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
    (
        "tag16",
        "tag_v1.1.1",
        TWO,
        ["type=raw,priority=2000,foo", "type=ref,event=tag", "type=edge"],
        [],
        "foo",
        _both("foo", "v1.1.1"),
    ),
    (
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
    (
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
    (
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
    (
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
    (
        "tag21",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        ["suffix=-dev,onlatest=true"],
        "1.1.1-dev",
        _both("1.1.1-dev", "latest-dev"),
    ),
    (
        "tag22",
        "tag_v1.1.1",
        TWO,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{major}}.{{minor}}.{{patch}}"],
        ["prefix=foo-,onlatest=true", "suffix=-dev,onlatest=true"],
        "foo-1.1.1-dev",
        _both("foo-1.1.1-dev", "foo-latest-dev"),
    ),
    (
        "tag23",
        "tag_v1.1.1",
        ["org/app"],
        ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "v1.1.1",
        ["org/app:v1.1.1", "org/app:1.1", "org/app:latest"],
    ),
    (
        "tag24",
        "tag_1.2",
        ["org/app"],
        ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "1.2",
        ["org/app:1.2", "org/app:latest"],
    ),
    (
        "tag25",
        "tag_1.1beta2",
        TWO,
        ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
        [],
        "1.1b2",
        _both("1.1b2"),
    ),
    (
        "tag26",
        "tag_1.0dev4",
        TWO,
        ["type=pep440,pattern={{major}}.{{minor}}", "type=pep440,pattern={{major}}"],
        [],
        "1.0.dev4",
        _both("1.0.dev4"),
    ),
    (
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
    (
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
    (
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
    (
        "tag30",
        "tag_sometag",
        ["ghcr.io/user/app"],
        ["type=ref,event=tag", "type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}"],
        ["latest=false"],
        "sometag",
        ["ghcr.io/user/app:sometag"],
    ),
    (
        "tag31",
        "tag_v2.0.8-beta.67",
        TWO,
        ["type=semver,pattern={{raw}}"],
        [],
        "v2.0.8-beta.67",
        _both("v2.0.8-beta.67"),
    ),
    (
        "tag32",
        "tag_v1.2.3rc2",
        TWO,
        ["type=pep440,pattern={{raw}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "v1.2.3rc2",
        _both("v1.2.3rc2", "1.2.3rc2"),
    ),
    (
        "tag33",
        "tag_v1.1.1",
        [],
        ["type=pep440,pattern={{version}}", "type=pep440,pattern={{major}}.{{minor}}"],
        [],
        "1.1.1",
        ["1.1.1", "1.1", "latest"],
    ),
    (
        "tag-build-metadata",
        "tag_v9.5.7-alpha.2+fork.3.1.8",
        APP,
        ["type=semver,pattern={{version}}", "type=semver,pattern={{raw}},priority=1"],
        [],
        "9.5.7-alpha.2",
        ["user/app:9.5.7-alpha.2", "user/app:v9.5.7-alpha.2-fork.3.1.8"],
    ),
]

LATEST: list[Case] = [
    (
        "latest01",
        "tag_release1",
        APP,
        [r'type=match,"pattern=^release\d{1,2}"'],
        [],
        "release1",
        ["user/app:release1", "user/app:latest"],
    ),
    (
        "latest02",
        "tag_20200110-RC2",
        APP,
        [r'type=match,"pattern=^\d+-RC\d{1,2}"'],
        [],
        "20200110-RC2",
        ["user/app:20200110-RC2", "user/app:latest"],
    ),
    (
        "latest03",
        "tag_20200110-RC2",
        APP,
        [r"type=match,pattern=\d{8}"],
        [],
        "20200110",
        ["user/app:20200110", "user/app:latest"],
    ),
    ("latest05", "tag_v1.1.1", TWO, ACTION_DEFAULTS, [], "v1.1.1", _both("v1.1.1", "latest")),
    (
        "latest06",
        "tag_v2.0.8-beta.67",
        TWO,
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "2.0.8",
        _both("2.0.8", "latest"),
    ),
    (
        "latest07",
        "tag_v1.1.1",
        TWO,
        ["type=ref,event=tag"],
        ["latest=false"],
        "v1.1.1",
        _both("v1.1.1"),
    ),
    (
        "latest08",
        "tag_v1.1.1",
        ["org/app", "ghcr.io/MyUSER/MyApp"],
        ["type=ref,event=tag"],
        ["latest=false"],
        "v1.1.1",
        ["org/app:v1.1.1", "ghcr.io/myuser/myapp:v1.1.1"],
    ),
    (
        "latest10",
        "tag_v2.0.8-beta.67",
        [],
        [r'type=match,"pattern=\d.\d.\d"'],
        [],
        "2.0.8",
        ["2.0.8", "latest"],
    ),
]

PR: list[Case] = [
    ("pr01", "pull_request", APP, ACTION_DEFAULTS, [], "pr-15", ["user/app:pr-15"]),
    (
        "pr03",
        "pull_request",
        TWO,
        ["type=ref,event=pr", "type=sha"],
        [],
        "pr-15",
        _both("pr-15", "sha-a9c8c58"),
    ),
    (
        "pr04",
        "pull_request",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-a9c8c58",
        _both("sha-a9c8c58", "pr-15"),
    ),
    (
        "pr05",
        "pull_request",
        TWO,
        ["type=ref,event=pr"],
        ["prefix=glo-", "suffix=-bal"],
        "pr-15-bal",
        _both("pr-15-bal"),
    ),
    (
        "pr06",
        "pull_request",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    (
        "pr07",
        "pull_request_target",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-2665741",
        _both("sha-2665741", "pr-15"),
    ),
    (
        "pr08",
        "pull_request_target",
        TWO,
        ["type=ref,event=pr,prefix="],
        ["prefix=glo-", "suffix=-bal"],
        "15-bal",
        _both("15-bal"),
    ),
    (
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
    (
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
    (
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
    (
        "pr12",
        "pull_request",
        ["org/app"],
        ["type=raw,value={{commit_date YYYY-MM-DD-HHmmSS}}"],
        [],
        "2020-01-10T00-30-00Z",
        ["org/app:2020-01-10T00-30-00Z"],
    ),
]

SCHEDULE: list[Case] = [
    (
        "schedule01",
        "schedule",
        APP,
        ACTION_DEFAULTS,
        [],
        "nightly",
        ["user/app:nightly", "user/app:master"],
    ),
    (
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
    (
        "schedule03",
        "schedule",
        APP,
        ["type=schedule,pattern={{date 'YYYYMMDD-HHmmss'}}"],
        [],
        "20200110-003000",
        ["user/app:20200110-003000"],
    ),
    (
        "schedule05",
        "schedule",
        TWO,
        ["type=schedule", "type=sha"],
        [],
        "nightly",
        _both("nightly", "sha-860c190"),
    ),
    (
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
    (
        "schedule07",
        "schedule",
        TWO,
        ["type=schedule"],
        ["prefix=glo-", "suffix=-bal"],
        "glo-nightly-bal",
        _both("glo-nightly-bal"),
    ),
    (
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
    (
        "schedule-not-scheduled",
        "push_master",
        APP,
        ["type=schedule", "type=sha"],
        [],
        "sha-2665741",
        ["user/app:sha-2665741"],
    ),
]

RELEASE: list[Case] = [
    (
        "release01",
        "release_created",
        APP,
        ACTION_DEFAULTS,
        [],
        "v1.1.1",
        ["user/app:v1.1.1", "user/app:latest"],
    ),
    (
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
    (
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

RAW: list[Case] = [
    (
        "raw01",
        "push_dev",
        APP,
        ["type=ref,event=branch", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        [],
        "dev",
        ["user/app:dev", "user/app:my", "user/app:custom", "user/app:tags"],
    ),
    (
        "raw03",
        "tag_release1",
        APP,
        ["type=ref,event=tag", "type=raw,my", "type=raw,custom"],
        [],
        "release1",
        ["user/app:release1", "user/app:my", "user/app:custom", "user/app:latest"],
    ),
    (
        "raw05",
        "tag_v1.1.1",
        TWO,
        [
            "type=semver,pattern={{version}}",
            "type=semver,pattern={{major}}.{{minor}}",
            "type=raw,my",
        ],
        [],
        "1.1.1",
        _both("1.1.1", "1.1", "my", "latest"),
    ),
    (
        "raw06",
        "tag_v1.1.1",
        TWO,
        ["type=raw,my", "type=raw,custom", "type=raw,tags"],
        [],
        "my",
        _both("my", "custom", "tags"),
    ),
    (
        "raw07",
        "push_dev",
        APP,
        ["type=ref,priority=90,event=branch", "type=raw,my", "type=raw,custom", "type=raw,tags"],
        ["latest=true"],
        "my",
        ["user/app:my", "user/app:custom", "user/app:tags", "user/app:dev", "user/app:latest"],
    ),
    (
        "raw08",
        "push_dev",
        APP,
        [r"type=match,pattern=\d{8}", "type=raw,my", "type=raw,custom"],
        ["latest=false"],
        "my",
        ["user/app:my", "user/app:custom"],
    ),
    (
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
    (
        "raw10",
        "push_dev",
        APP,
        ["type=raw,foo", "type=raw,bar,enable=false", "type=raw,baz,enable=true"],
        ["latest=false"],
        "foo",
        ["user/app:foo", "user/app:baz"],
    ),
    ("raw-shorthand", "push_dev", APP, ["foo", "bar"], [], "foo", ["user/app:foo", "user/app:bar"]),
]


def _run(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path, case: Case, **extra: str
) -> Metadata:
    _, event, images, rules, flavor, _, _ = case
    context = detect_context(github_env(event, **extra), cwd=tmp_path, repo_json=repo_json)
    return compute(context, images=images, rules=rules, flavor=flavor, now=NOW)


@pytest.mark.parametrize(
    "case", PUSH + TAG + LATEST + PR + SCHEDULE + RELEASE + RAW, ids=lambda case: case[0]
)
def test_action_case(github_env: GithubEnv, repo_json: Path, tmp_path: Path, case: Case) -> None:
    meta = _run(github_env, repo_json, tmp_path, case)
    assert meta.version == case[5]
    assert list(meta.tags) == case[6]


PR_HEAD_SHA: list[Case] = [
    ("pr01", "pull_request", APP, ACTION_DEFAULTS, [], "pr-15", ["user/app:pr-15"]),
    (
        "pr03",
        "pull_request",
        TWO,
        ["type=ref,event=pr", "type=sha"],
        [],
        "pr-15",
        _both("pr-15", "sha-3370e22"),
    ),
    (
        "pr07",
        "pull_request_target",
        TWO,
        ["type=sha,priority=2000", "type=ref,event=pr"],
        [],
        "sha-3370e22",
        _both("sha-3370e22", "pr-15"),
    ),
    (
        "pr09",
        "pull_request_target",
        ["org/app"],
        ["type=ref,event=pr", "type=sha", "type=sha,format=long"],
        [],
        "pr-15",
        ["org/app:pr-15", "org/app:sha-3370e22", f"org/app:sha-{SHA_PR_HEAD}"],
    ),
    (
        "pr12",
        "pull_request",
        ["org/app"],
        ["type=raw,value=src-{{commit_date YYYY-MM-DD}}"],
        [],
        "src-2020-01-10T00-30-00Z",
        ["org/app:src-2020-01-10T00-30-00Z"],
    ),
]


@pytest.mark.parametrize("case", PR_HEAD_SHA, ids=lambda case: case[0])
def test_pr_head_sha_switch(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path, case: Case
) -> None:
    meta = _run(github_env, repo_json, tmp_path, case, DOCKER_METADATA_PR_HEAD_SHA="true")
    assert meta.version == case[5]
    assert list(meta.tags) == case[6]
    assert meta.labels["org.opencontainers.image.revision"] == SHA_PR_HEAD


@pytest.mark.parametrize(
    "expected",
    [
        ("push_dev", "dev", SHA_DEV),
        ("pull_request", "pr-15", SHA_PR),
        ("tag_release1", "release1", SHA_DEV),
    ],
    ids=lambda expected: expected[0],
)
def test_oci_labels_match_action(
    github_env: GithubEnv, repo_json: Path, tmp_path: Path, expected: tuple[str, str, str]
) -> None:
    event, version, revision = expected
    context = detect_context(github_env(event), cwd=tmp_path, repo_json=repo_json)
    meta = compute(context, images=APP, now=NOW, rules=ACTION_DEFAULTS)
    assert dict(meta.labels) == oci_labels(version, revision)
    assert list(meta.labels) == sorted(meta.labels)


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
