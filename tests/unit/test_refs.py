"""Image references parse the way the Docker engine parses them."""

from __future__ import annotations

import pytest

from dockroll.errors import UsageError
from dockroll.refs import (
    Digest,
    ImageRef,
    is_digest,
    is_loopback_registry,
    parse_digest,
    parse_reference,
    registry_unreachable_hint,
    valid_tag,
)

SHA = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/nginx:latest", "docker.io", "library/nginx", "latest", None),
        ("registry-1.docker.io/acme/web", "docker.io", "acme/web", None, None),
        ("python:3.11-slim", "docker.io", "library/python", "3.11-slim", None),
        ("127.0.0.1:5000/team/web:v1.2.0", "127.0.0.1:5000", "team/web", "v1.2.0", None),
        ("127.0.0.1:5000/web", "127.0.0.1:5000", "web", None, None),
        ("localhost/web:dev", "localhost", "web", "dev", None),
        ("localhost:5001/a/b/c:x_y", "localhost:5001", "a/b/c", "x_y", None),
        ("ghcr.io/acme/web:git-abc1234", "ghcr.io", "acme/web", "git-abc1234", None),
        ("dockroll.local/python:3.11-slim", "dockroll.local", "python", "3.11-slim", None),
        (f"127.0.0.1:5000/web@{SHA}", "127.0.0.1:5000", "web", None, SHA),
        (f"127.0.0.1:5000/web:v1@{SHA}", "127.0.0.1:5000", "web", "v1", SHA),
        (f"nginx@{SHA}", "docker.io", "library/nginx", None, SHA),
        ("a/b-c__d.e:T.1", "docker.io", "a/b-c__d.e", "T.1", None),
        ("  web:v1  ", "docker.io", "library/web", "v1", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == ImageRef(registry, repository, tag, Digest(digest) if digest else None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Web:v1",
        "127.0.0.1:5000/Team/web",
        "web:",
        "web:-bad",
        "web:.bad",
        "web:has space",
        "web:" + "x" * 129,
        "web@sha256:short",
        "web@md5:" + "0" * 32,
        "web@" + SHA.upper(),
        "team//web",
        "/web",
        "web/",
        "we--b-",
        "127.0.0.1:5000/",
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_bad_reference_message_names_the_part() -> None:
    with pytest.raises(UsageError, match="'Team' is not a valid repository name component"):
        parse_reference("127.0.0.1:5000/Team/web")
    with pytest.raises(UsageError, match="tag 'bad tag'"):
        parse_reference("web:bad tag")


def test_default_tag_applies_only_without_tag_or_digest() -> None:
    assert parse_reference("web", default_tag="latest").tag == "latest"
    assert parse_reference("web:v1", default_tag="latest").tag == "v1"
    assert parse_reference(f"web@{SHA}", default_tag="latest").tag is None


@pytest.mark.parametrize(
    ("text", "name", "shown"),
    [
        ("nginx", "nginx", "nginx"),
        ("nginx:1", "nginx", "nginx:1"),
        ("acme/web:1", "acme/web", "acme/web:1"),
        ("127.0.0.1:5000/team/web:v1", "127.0.0.1:5000/team/web", "127.0.0.1:5000/team/web:v1"),
        (f"127.0.0.1:5000/web:v1@{SHA}", "127.0.0.1:5000/web", f"127.0.0.1:5000/web@{SHA}"),
    ],
)
def test_name_and_str_round_trip(text: str, name: str, shown: str) -> None:
    ref = parse_reference(text)
    assert ref.name == name
    assert str(ref) == shown
    assert parse_reference(str(ref)).name == ref.name


def test_with_tag_and_with_digest_replace_each_other() -> None:
    ref = parse_reference("127.0.0.1:5000/web:v1")
    pinned = ref.with_digest(Digest(SHA))
    assert (pinned.tag, pinned.digest) == (None, SHA)
    assert str(pinned) == f"127.0.0.1:5000/web@{SHA}"
    retagged = pinned.with_tag("prod")
    assert (retagged.tag, retagged.digest) == ("prod", None)
    assert str(retagged) == "127.0.0.1:5000/web:prod"


def test_digests() -> None:
    assert is_digest(SHA)
    assert not is_digest(SHA[:-1])
    assert not is_digest("sha512:" + "0" * 64)
    assert parse_digest(SHA) == SHA
    with pytest.raises(UsageError, match="not a digest"):
        parse_digest("sha256:xyz")


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1.2.3", True),
        ("latest", True),
        ("_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("-x", False),
        (".x", False),
        ("a/b", False),
        ("a+b", False),
        ("", False),
    ],
)
def test_valid_tag(tag: str, ok: bool) -> None:
    assert valid_tag(tag) is ok


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("localhost", True),
        ("[::1]:5000", True),
        ("127.0.0.2:5000", True),
        ("10.0.0.5:5000", False),
        ("registry.example.com", False),
        ("registry.example.com:443", False),
    ],
)
def test_loopback_registries(host: str, loopback: bool) -> None:
    assert is_loopback_registry(host) is loopback


def test_the_unreachable_hint_names_the_registry_it_is_about() -> None:
    assert registry_unreachable_hint("127.0.0.1:5000") == (
        "`dockroll dev up` starts a local registry on 127.0.0.1:5000"
    )
    assert "--registry-port 5002" in registry_unreachable_hint("127.0.0.1:5002")
    remote = registry_unreachable_hint("registry.example.com:443", through_engine=True)
    assert "registry.example.com:443" in remote
    assert "Docker engine" in remote
    assert "5000" not in remote
    assert "dev up" not in remote
