"""Debian packages from dpkg's status database (and distroless ``status.d`` files)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DebPackage", "OsRelease", "copyright_licenses", "parse_os_release", "parse_status"]

_NOT_INSTALLED_WANTS = frozenset({"deinstall", "purge"})
_NOT_INSTALLED_STATES = frozenset({"not-installed", "config-files"})
_SOURCE = re.compile(r"^(?P<name>\S+)(?:\s+\((?P<version>[^)]+)\))?$")


@dataclass(frozen=True)
class OsRelease:
    """What ``/etc/os-release`` says about the distribution."""

    id: str
    """``debian``, ``ubuntu`` … (lowercase)."""
    version_id: str | None
    pretty_name: str | None
    codename: str | None = None

    @property
    def distro(self) -> str | None:
        """The purl ``distro`` qualifier: ``debian-12``."""
        version = self.version_id or self.codename
        return f"{self.id}-{version}" if version else None


@dataclass(frozen=True)
class DebPackage:
    """One installed Debian package."""

    name: str
    version: str
    architecture: str
    source: str | None = None
    """The source package, when it differs from ``name``."""
    source_version: str | None = None
    """The source package's version, when it differs from ``version``."""
    maintainer: str | None = None
    homepage: str | None = None
    summary: str | None = None
    """The first line of the description."""


def parse_os_release(text: str) -> OsRelease | None:
    """Parse os-release (shell-style ``KEY=value`` lines); None without an ``ID``."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value.replace('\\"', '"').replace("\\\\", "\\")
    distro_id = values.get("ID", "").lower()
    if not distro_id:
        return None
    return OsRelease(
        id=distro_id,
        version_id=values.get("VERSION_ID") or None,
        pretty_name=values.get("PRETTY_NAME") or None,
        codename=values.get("VERSION_CODENAME") or None,
    )


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style paragraphs; continuation lines (leading space or tab) join their field."""
    fields: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, current = {}, None
        elif line[0] in " \t":
            if current is not None:
                fields[current] += "\n" + line[1:]
        elif ":" in line:
            key, _, value = line.partition(":")
            current = key.strip().lower()
            fields[current] = value.strip()
        # anything else is a malformed line; dpkg itself would refuse it, the SBOM skips it
    if fields:
        yield fields


def _installed(status: str | None) -> bool:
    """Whether a ``Status: want flag state`` line means the files are on disk.

    No Status field at all (distroless ``status.d``) means installed.
    """
    if status is None:
        return True
    words = status.split()
    if not words:
        return True
    if words[0] in _NOT_INSTALLED_WANTS:
        return False
    return words[-1] not in _NOT_INSTALLED_STATES


def parse_status(text: str) -> list[DebPackage]:
    """Installed packages of one dpkg status file, in file order."""
    packages: list[DebPackage] = []
    for fields in _stanzas(text):
        name = fields.get("package")
        version = fields.get("version")
        if not name or not version or not _installed(fields.get("status")):
            continue
        source_name: str | None = None
        source_version: str | None = None
        if source := fields.get("source"):
            match = _SOURCE.match(source)
            if match:
                source_name = match.group("name")
                source_version = match.group("version")
        summary = fields.get("description", "").split("\n", 1)[0].strip() or None
        packages.append(
            DebPackage(
                name=name,
                version=version,
                architecture=fields.get("architecture") or "all",
                source=source_name if source_name != name else None,
                source_version=source_version if source_version != version else None,
                maintainer=fields.get("maintainer") or None,
                homepage=fields.get("homepage") or None,
                summary=summary,
            )
        )
    return packages


def copyright_licenses(text: str) -> tuple[str, ...]:
    """License short names of a machine-readable (DEP-5) copyright file, sorted.

    Free-form copyright files name no license reliably; they give ``()``.
    """
    first = text.lstrip().split("\n", 1)[0]
    if not first.lower().startswith("format:"):
        return ()
    names: set[str] = set()
    for fields in _stanzas(text):
        license_field = fields.get("license")
        if license_field:
            short = license_field.split("\n", 1)[0].strip()
            if short:
                names.add(short)
    return tuple(sorted(names))
