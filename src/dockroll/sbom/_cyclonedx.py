"""The inventory of an image's filesystem, and its CycloneDX 1.5 JSON document."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockroll import __version__
from dockroll.refs import Digest
from dockroll.sbom._dpkg import (
    DebPackage,
    OsRelease,
    copyright_licenses,
    parse_os_release,
    parse_status,
)
from dockroll.sbom._purl import deb_purl, oci_purl, pypi_purl
from dockroll.sbom._python import LicenseInfo, PythonPackage, parse_metadata
from dockroll.sbom._rootfs import RootfsFiles

__all__ = [
    "SPEC_VERSION",
    "ImageInventory",
    "ImageSubject",
    "cyclonedx_document",
    "inventory",
    "render_document",
    "sbom_timestamp",
]

SPEC_VERSION = "1.5"
_SCHEMA = "http://cyclonedx.org/schema/bom-1.5.schema.json"
_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_PYTHON = re.compile(r".*(?:\.dist-info/METADATA|\.egg-info/PKG-INFO|\.egg-info)$")


@dataclass(frozen=True)
class ImageInventory:
    """What an image's filesystem holds, in a deterministic order."""

    os_release: OsRelease | None
    deb_packages: tuple[tuple[DebPackage, tuple[str, ...], tuple[str, ...]], ...]
    """(package, licenses from its copyright file, status files naming it)."""
    python_packages: tuple[tuple[PythonPackage, tuple[str, ...]], ...]
    """(package, every metadata file naming this name and version)."""


@dataclass(frozen=True)
class ImageSubject:
    """The image an SBOM describes."""

    image_id: str
    """The engine's image id, ``sha256:…`` (the digest of the image config)."""
    repository: str
    version: str
    digest: Digest | None = None
    """The registry manifest digest, once pushed."""
    tag: str | None = None


def inventory(files: RootfsFiles) -> ImageInventory:
    """Packages found in ``files``, deduplicated and sorted."""
    os_text = files.read("etc/os-release") or files.read("usr/lib/os-release")
    os_release = parse_os_release(os_text.decode("utf-8", "replace")) if os_text else None

    status_files = ["var/lib/dpkg/status"] if "var/lib/dpkg/status" in files.files else []
    status_files += files.matching(_STATUS_D)
    debs: dict[tuple[str, str, str], tuple[DebPackage, list[str]]] = {}
    for path in status_files:
        for package in parse_status(files.files[path].decode("utf-8", "replace")):
            deb_key = (package.name, package.architecture, package.version)
            debs.setdefault(deb_key, (package, []))[1].append("/" + path)
    deb_rows = []
    for key in sorted(debs):
        package, locations = debs[key]
        copyright_text = files.read(f"usr/share/doc/{package.name}/copyright")
        licenses = (
            copyright_licenses(copyright_text.decode("utf-8", "replace")) if copyright_text else ()
        )
        deb_rows.append((package, licenses, tuple(sorted(set(locations)))))

    pythons: dict[tuple[str, str], tuple[PythonPackage, list[str]]] = {}
    for path in files.matching(_PYTHON):
        parsed = parse_metadata(files.files[path].decode("utf-8", "replace"), "/" + path)
        if parsed is None:
            continue
        pythons.setdefault((parsed.normalized_name, parsed.version), (parsed, []))[1].append(
            parsed.location
        )
    python_rows = [(pythons[key][0], tuple(sorted(pythons[key][1]))) for key in sorted(pythons)]
    return ImageInventory(
        os_release=os_release, deb_packages=tuple(deb_rows), python_packages=tuple(python_rows)
    )


def sbom_timestamp(now: datetime | None = None) -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now, in UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return (now or datetime.now(UTC)).astimezone(UTC)


def _licenses_from_names(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"license": {"name": name}} for name in names]


def _python_licenses(info: LicenseInfo | None) -> list[dict[str, Any]]:
    if info is None:
        return []
    if info.expression:
        return [{"expression": info.expression}]
    return _licenses_from_names(info.names)


def _occurrences(locations: tuple[str, ...]) -> dict[str, Any]:
    return {"occurrences": [{"location": location} for location in locations]}


def _deb_component(
    package: DebPackage, licenses: tuple[str, ...], locations: tuple[str, ...], ref: str
) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": package.name,
        "version": package.version,
    }
    if package.maintainer:
        component["publisher"] = package.maintainer
    if package.summary:
        component["description"] = package.summary
    if licenses:
        component["licenses"] = _licenses_from_names(licenses)
    component["purl"] = ref
    if package.homepage:
        component["externalReferences"] = [{"type": "website", "url": package.homepage}]
    properties = [{"name": "dockroll:package:type", "value": "deb"}]
    properties.append({"name": "dockroll:deb:arch", "value": package.architecture})
    if package.source:
        properties.append({"name": "dockroll:deb:source", "value": package.source})
    if package.source_version:
        properties.append({"name": "dockroll:deb:source-version", "value": package.source_version})
    component["properties"] = properties
    component["evidence"] = _occurrences(locations)
    return component


def _python_component(
    package: PythonPackage, locations: tuple[str, ...], ref: str
) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": package.normalized_name,
        "version": package.version,
    }
    if package.summary:
        component["description"] = package.summary
    licenses = _python_licenses(package.license)
    if licenses:
        component["licenses"] = licenses
    component["purl"] = ref
    if package.homepage and package.homepage.startswith(("http://", "https://")):
        component["externalReferences"] = [{"type": "website", "url": package.homepage}]
    component["properties"] = [
        {"name": "dockroll:package:type", "value": "python"},
        {"name": "dockroll:python:name", "value": package.name},
    ]
    component["evidence"] = _occurrences(locations)
    return component


def _serial_number(subject: ImageSubject, timestamp: datetime, reproducible: bool) -> str:
    if reproducible:
        # Same image, same SOURCE_DATE_EPOCH → the same document, byte for byte.
        seed = f"dockroll-sbom:{subject.image_id}:{subject.version}:{int(timestamp.timestamp())}"
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}"
    return f"urn:uuid:{uuid.uuid4()}"


def cyclonedx_document(
    subject: ImageSubject, found: ImageInventory, *, timestamp: datetime | None = None
) -> dict[str, Any]:
    """The CycloneDX 1.5 BOM of ``subject`` listing what ``found`` holds."""
    reproducible = timestamp is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit()
    when = timestamp or sbom_timestamp()
    image_hex = subject.image_id.removeprefix("sha256:")
    image: dict[str, Any] = {
        "type": "container",
        "bom-ref": subject.image_id,
        "name": subject.repository,
        "version": subject.version,
        "hashes": [{"alg": "SHA-256", "content": image_hex}],
    }
    if subject.digest:
        image["purl"] = oci_purl(subject.repository, subject.digest, subject.tag)
    image_properties = [{"name": "dockroll:image:id", "value": subject.image_id}]
    if subject.digest:
        image_properties.append({"name": "dockroll:image:digest", "value": subject.digest})
    if subject.tag:
        image_properties.append({"name": "dockroll:image:tag", "value": subject.tag})
    image["properties"] = image_properties

    components: list[dict[str, Any]] = []
    image_needs: list[str] = []
    os_needs: list[str] = []
    os_ref: str | None = None
    if found.os_release is not None:
        release = found.os_release
        os_ref = f"os:{release.id}@{release.version_id or release.codename or 'unknown'}"
        os_component: dict[str, Any] = {
            "type": "operating-system",
            "bom-ref": os_ref,
            "name": release.id,
        }
        if release.version_id or release.codename:
            os_component["version"] = release.version_id or release.codename
        if release.pretty_name:
            os_component["description"] = release.pretty_name
        components.append(os_component)
        image_needs.append(os_ref)
    seen: set[str] = {subject.image_id, *([os_ref] if os_ref else [])}
    for package, licenses, locations in found.deb_packages:
        ref = deb_purl(package, found.os_release)
        if ref in seen:
            continue
        seen.add(ref)
        components.append(_deb_component(package, licenses, locations, ref))
        (os_needs if os_ref else image_needs).append(ref)
    for python_package, locations in found.python_packages:
        ref = pypi_purl(python_package.name, python_package.version)
        if ref in seen:
            continue
        seen.add(ref)
        components.append(_python_component(python_package, locations, ref))
        image_needs.append(ref)

    dependencies: list[dict[str, Any]] = [{"ref": subject.image_id, "dependsOn": image_needs}]
    if os_ref:
        dependencies.append({"ref": os_ref, "dependsOn": os_needs})
    return {
        "$schema": _SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": _serial_number(subject, when, reproducible),
        "version": 1,
        "metadata": {
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "author": "dockroll authors",
                        "name": "dockroll",
                        "version": __version__,
                    }
                ]
            },
            "component": image,
        },
        "components": components,
        "dependencies": dependencies,
    }


def render_document(document: dict[str, Any]) -> bytes:
    """The document as the bytes written to disk (and hashed for the ledger)."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
