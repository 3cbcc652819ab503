"""Python distributions from their core metadata (``METADATA`` / ``PKG-INFO``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import HeaderParser
from email.policy import compat32

__all__ = ["LicenseInfo", "PythonPackage", "normalize_name", "parse_metadata"]

_NORMALIZE = re.compile(r"[-_.]+")
_LICENSE_CLASSIFIER = "License :: "
_SHORT_LICENSE = 80
"""A ``License:`` field longer than this is the license text, not its name."""


def normalize_name(name: str) -> str:
    """The PEP 503 normalised project name: ``Flask_Login`` → ``flask-login``."""
    return _NORMALIZE.sub("-", name).lower()


@dataclass(frozen=True)
class LicenseInfo:
    """A license as the metadata states it: an SPDX expression, or names."""

    expression: str | None = None
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PythonPackage:
    """One installed Python distribution."""

    name: str
    """The name as the project spells it (``Flask``)."""
    version: str
    location: str
    """Path of its metadata file in the image, absolute."""
    license: LicenseInfo | None = None
    summary: str | None = None
    homepage: str | None = None

    @property
    def normalized_name(self) -> str:
        return normalize_name(self.name)


def _license(
    expression: str | None, license_field: str | None, classifiers: list[str]
) -> LicenseInfo | None:
    if expression and expression.strip():
        return LicenseInfo(expression=expression.strip())
    if license_field:
        text = license_field.strip()
        if text and "\n" not in text and len(text) <= _SHORT_LICENSE and text.upper() != "UNKNOWN":
            return LicenseInfo(names=(text,))
    names = sorted(
        {
            classifier.rsplit("::", 1)[-1].strip()
            for classifier in classifiers
            if classifier.startswith(_LICENSE_CLASSIFIER)
            and classifier.rsplit("::", 1)[-1].strip() not in ("OSI Approved", "")
        }
    )
    return LicenseInfo(names=tuple(names)) if names else None


def parse_metadata(text: str, location: str) -> PythonPackage | None:
    """A package from core metadata text; None when it names no project or version."""
    message = HeaderParser(policy=compat32).parsestr(text, headersonly=True)
    name = (message.get("Name") or "").strip()
    version = (message.get("Version") or "").strip()
    if not name or not version:
        return None
    homepage = (message.get("Home-page") or "").strip() or None
    if homepage is None:
        for url in message.get_all("Project-URL") or []:
            label, _, link = str(url).partition(",")
            if label.strip().lower() in ("homepage", "home", "source", "source code"):
                homepage = link.strip() or None
                break
    return PythonPackage(
        name=name,
        version=version,
        location=location,
        license=_license(
            message.get("License-Expression"),
            message.get("License"),
            [str(c) for c in message.get_all("Classifier") or []],
        ),
        summary=(message.get("Summary") or "").strip() or None,
        homepage=homepage,
    )
