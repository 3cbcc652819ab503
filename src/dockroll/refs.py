"""Image references and digests, parsed the way the Docker engine parses them.

``127.0.0.1:5000/team/web:v1.2.0`` → registry ``127.0.0.1:5000``, repository
``team/web``, tag ``v1.2.0``. A name without a registry part belongs to Docker
Hub (``docker.io``), and a single-component Hub name lives under ``library/``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import NewType

from dockroll.errors import UsageError

__all__ = [
    "DOCKER_HUB",
    "Digest",
    "ImageRef",
    "is_digest",
    "is_loopback_registry",
    "parse_digest",
    "parse_reference",
    "registry_hostname",
    "registry_unreachable_hint",
    "valid_tag",
]

Digest = NewType("Digest", str)
"""A content digest, ``sha256:<64 hex>``."""

DOCKER_HUB = "docker.io"
LOCAL_REGISTRY_PORT = 5000
"""Where `dockroll dev up` starts its registry unless told ``--registry-port``."""
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))


def parse_digest(value: str) -> Digest:
    if not is_digest(value):
        raise UsageError(f"{value!r} is not a digest; expected sha256: followed by 64 hex digits")
    return Digest(value)


def valid_tag(value: str) -> bool:
    """Whether ``value`` can be an image tag (at most 128 of ``[A-Za-z0-9_.-]``)."""
    return bool(_TAG.match(value))


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; at most one of tag and digest may be empty."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """Registry and repository as the engine spells them (Hub names shortened)."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> ImageRef:
        return replace(self, tag=None, digest=digest)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        if self.tag:
            return f"{self.name}:{self.tag}"
        return self.name


def parse_reference(reference: str, *, default_tag: str | None = None) -> ImageRef:
    """Parse ``[registry/]repository[:tag][@digest]``, raising a clear error when malformed."""
    text = reference.strip()
    if not text:
        raise UsageError("an image reference cannot be empty")
    rest, _, digest = text.partition("@")
    if digest and not is_digest(digest):
        raise UsageError(f"{reference!r}: {digest!r} is not a sha256 digest")
    tag: str | None = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not valid_tag(tag):
            raise UsageError(
                f"{reference!r}: tag {tag!r} may hold only letters, digits, '_', '.' and '-' "
                "(at most 128, not starting with '.' or '-')"
            )
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    for component in repository.split("/"):
        if not _COMPONENT.match(component):
            raise UsageError(
                f"{reference!r}: {component!r} is not a valid repository name component "
                "(lowercase letters, digits and single separators)"
            )
    if tag is None and not digest:
        tag = default_tag
    return ImageRef(
        registry=registry,
        repository=repository,
        tag=tag,
        digest=Digest(digest) if digest else None,
    )


def registry_hostname(host: str) -> str:
    """``127.0.0.1:5000`` → ``127.0.0.1``, ``[::1]:5000`` → ``::1``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback_registry(host: str) -> bool:
    """Whether the registry ``host[:port]`` is on this machine's loopback interface."""
    name = registry_hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_unreachable_hint(host: str, *, through_engine: bool = False) -> str:
    """What to do when the registry ``host`` does not answer.

    Only a loopback registry is one ``dockroll dev up`` can start; any other is
    named, with where the request came from (``through_engine``: the Docker
    engine pulls and pushes, so its DNS and proxy settings apply).
    """
    if is_loopback_registry(host):
        _, _, port = host.rpartition(":") if host.count(":") == 1 else ("", "", "")
        if not port.isdigit() or int(port) == LOCAL_REGISTRY_PORT:
            return f"`dockroll dev up` starts a local registry on {host}"
        return f"`dockroll dev up --registry-port {port}` starts a local registry on {host}"
    if through_engine:
        return (
            f"check that {host} is up and that the Docker engine reaches it "
            "(the engine pulls and pushes: its DNS and proxy settings apply)"
        )
    return f"check the address {host} and that the registry there is up"
