"""Software bills of materials of container images, made offline from their filesystem.

An image's filesystem (as the engine exports it) is streamed once; the dpkg
database, ``os-release`` and Python package metadata are read from it and
turned into a CycloneDX 1.5 JSON document::

    files = read_rootfs(engine.export_rootfs(image_id))
    document = cyclonedx_document(subject, inventory(files))
    path.write_bytes(render_document(document))
"""

from __future__ import annotations

from dockroll.sbom._cyclonedx import (
    SPEC_VERSION,
    ImageInventory,
    ImageSubject,
    cyclonedx_document,
    inventory,
    render_document,
    sbom_timestamp,
)
from dockroll.sbom._dpkg import (
    DebPackage,
    OsRelease,
    copyright_licenses,
    parse_os_release,
    parse_status,
)
from dockroll.sbom._purl import deb_purl, oci_purl, purl, pypi_purl
from dockroll.sbom._python import LicenseInfo, PythonPackage, normalize_name, parse_metadata
from dockroll.sbom._rootfs import RootfsFiles, read_rootfs, wanted

__all__ = [
    "SPEC_VERSION",
    "DebPackage",
    "ImageInventory",
    "ImageSubject",
    "LicenseInfo",
    "OsRelease",
    "PythonPackage",
    "RootfsFiles",
    "copyright_licenses",
    "cyclonedx_document",
    "deb_purl",
    "inventory",
    "normalize_name",
    "oci_purl",
    "parse_metadata",
    "parse_os_release",
    "parse_status",
    "purl",
    "pypi_purl",
    "read_rootfs",
    "render_document",
    "sbom_timestamp",
    "wanted",
]
