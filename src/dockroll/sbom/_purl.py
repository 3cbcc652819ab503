"""Package URLs (purl) for the packages an SBOM lists."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from dockroll.sbom._dpkg import DebPackage, OsRelease
from dockroll.sbom._python import normalize_name

__all__ = ["deb_purl", "oci_purl", "purl", "pypi_purl"]


def _encode(value: str) -> str:
    # The purl spec: percent-encode everything but unreserved characters; ':' stays as is.
    return quote(value, safe="").replace("%3A", ":")


def purl(
    kind: str,
    name: str,
    version: str | None = None,
    *,
    namespace: str | None = None,
    qualifiers: Mapping[str, str | None] | None = None,
) -> str:
    """``pkg:kind/namespace/name@version?key=value…`` with qualifiers sorted by key."""
    text = f"pkg:{kind}/"
    if namespace:
        text += "/".join(_encode(part) for part in namespace.split("/")) + "/"
    text += _encode(name)
    if version:
        text += "@" + _encode(version)
    pairs = sorted((key, value) for key, value in (qualifiers or {}).items() if value)
    if pairs:
        text += "?" + "&".join(f"{key}={_encode(value)}" for key, value in pairs)
    return text


def deb_purl(package: DebPackage, os_release: OsRelease | None) -> str:
    """``pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12``."""
    return purl(
        "deb",
        package.name,
        package.version,
        namespace=os_release.id if os_release else "debian",
        qualifiers={
            "arch": package.architecture,
            "distro": os_release.distro if os_release else None,
        },
    )


def pypi_purl(name: str, version: str) -> str:
    """``pkg:pypi/flask@3.1.3`` (the PEP 503 normalised name)."""
    return purl("pypi", normalize_name(name), version)


def oci_purl(repository: str, digest: str, tag: str | None = None) -> str:
    """``pkg:oci/web@sha256:…?repository_url=127.0.0.1:5000/team/web&tag=v1``."""
    name = repository.rsplit("/", 1)[-1].lower()
    return purl("oci", name, digest, qualifiers={"repository_url": repository, "tag": tag})
