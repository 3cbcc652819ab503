"""OCI distribution client: resolve, retag, copy and fall back to mirrors.

``RegistryClient`` speaks the distribution API to one registry host (ping,
manifests, blobs, tags, catalog) with anonymous, Basic or Bearer-token
authentication; ``retag`` and ``copy`` promote an image by digest, byte for
byte; ``FallbackResolver`` asks a primary registry and then its mirrors.
"""

from __future__ import annotations

from dockroll.registry._auth import Challenge, RegistryAuth, auth_hint, parse_challenge
from dockroll.registry._client import BlobPush, RegistryClient, registry_scheme
from dockroll.registry._copy import CopyResult, copy, retag
from dockroll.registry._credentials import (
    ENV_PASSWORD,
    ENV_USERNAME,
    Credentials,
    docker_config_path,
    find_credentials,
)
from dockroll.registry._fallback import Attempt, FallbackResolver, Resolution
from dockroll.registry._media import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    sha256_digest,
)
from dockroll.registry._traffic import CountingTransport, Traffic

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Attempt",
    "BlobPush",
    "Challenge",
    "CopyResult",
    "CountingTransport",
    "Credentials",
    "Descriptor",
    "FallbackResolver",
    "Manifest",
    "RegistryAuth",
    "RegistryClient",
    "Resolution",
    "Traffic",
    "auth_hint",
    "copy",
    "docker_config_path",
    "find_credentials",
    "parse_challenge",
    "registry_scheme",
    "retag",
    "sha256_digest",
]
