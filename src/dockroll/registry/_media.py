"""Media types of manifests and the descriptors they point to."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockroll.errors import RegistryError
from dockroll.refs import Digest

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "sha256_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
"""What dockroll accepts, in the order it prefers them."""


def sha256_digest(content: bytes) -> Digest:
    """The ``sha256:…`` digest of ``content``."""
    return Digest("sha256:" + hashlib.sha256(content).hexdigest())


@dataclass(frozen=True)
class Descriptor:
    """A typed, sized pointer to a blob or manifest, as manifests spell it."""

    media_type: str
    digest: Digest
    size: int
    platform: str | None = None
    """``os/architecture[/variant]`` for an index entry, else None."""
    urls: tuple[str, ...] = ()
    """Where a foreign (non-distributable) layer lives; such blobs are not copied."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        platform = data.get("platform")
        spelled: str | None = None
        if isinstance(platform, Mapping):
            parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
            if platform.get("variant"):
                parts.append(str(platform["variant"]))
            spelled = "/".join(parts)
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=Digest(str(data["digest"])),
            size=int(data.get("size", 0)),
            platform=spelled,
            urls=tuple(str(url) for url in data.get("urls") or ()),
        )


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry stores it.

    ``content`` is never re-serialised: its sha256 *is* the digest, so a copy
    that re-encoded the JSON would change the image's identity.
    """

    content: bytes
    media_type: str
    digest: Digest

    @classmethod
    def from_bytes(cls, content: bytes, media_type: str | None = None) -> Manifest:
        """Wrap raw bytes, taking the media type from the JSON when not given."""
        if media_type is None:
            media_type = str(_parse(content).get("mediaType", ""))
        return cls(content=content, media_type=media_type, digest=sha256_digest(content))

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def is_index(self) -> bool:
        """Whether this is a multi-platform index (OCI index or Docker manifest list)."""
        return self.media_type in INDEX_MEDIA_TYPES

    def json(self) -> dict[str, Any]:
        """The decoded document (for reading only; write ``content``)."""
        return _parse(self.content)

    def children(self) -> list[Descriptor]:
        """The manifests an index points to; empty for an image manifest."""
        if not self.is_index:
            return []
        return [Descriptor.from_json(entry) for entry in self.json().get("manifests", [])]

    def blobs(self) -> list[Descriptor]:
        """Config then layers of an image manifest; empty for an index."""
        if self.is_index:
            return []
        document = self.json()
        found: list[Descriptor] = []
        if isinstance(document.get("config"), Mapping):
            found.append(Descriptor.from_json(document["config"]))
        found.extend(Descriptor.from_json(layer) for layer in document.get("layers", []))
        return found


def _parse(content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError as exc:
        raise RegistryError(f"the manifest is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise RegistryError("the manifest is not a JSON object")
    return document
