"""Semantic versions as the ``type=semver`` rule reads them.

A version must be strict SemVer 2.0.0 (``MAJOR.MINOR.PATCH`` with optional
pre-release and build parts), optionally written with a leading ``v``.
Anything looser (``v1.2``, ``1.2.3.4``, ``01.2.3``) is not a version, so the
rule produces no tag for it: the same acceptance as npm ``semver.valid``,
which docker/metadata-action uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SemVer", "parse_semver"]

_NUMERIC = r"0|[1-9]\d*"
_NON_NUMERIC = r"\d*[a-zA-Z-][a-zA-Z0-9-]*"
_PRE_ID = rf"(?:{_NON_NUMERIC}|{_NUMERIC})"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER_RE = re.compile(
    rf"^v?(?P<major>{_NUMERIC})\.(?P<minor>{_NUMERIC})\.(?P<patch>{_NUMERIC})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?$"
)
_MAX_LENGTH = 256
_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class SemVer:
    """A parsed semantic version; ``raw`` is the text it was read from."""

    raw: str
    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...]
    build: tuple[str, ...]

    @property
    def version(self) -> str:
        """``MAJOR.MINOR.PATCH[-PRERELEASE]``; build metadata is dropped."""
        core = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            return core + "-" + ".".join(str(part) for part in self.prerelease)
        return core

    @property
    def is_prerelease(self) -> bool:
        """True when the version carries a pre-release part."""
        return bool(self.prerelease)

    def template_scope(self) -> dict[str, Any]:
        """The names a ``pattern`` can use: raw, version, major, minor, patch, ..."""
        return {
            "raw": self.raw,
            "version": self.version,
            "major": self.major,
            "minor": self.minor,
            "patch": self.patch,
            "prerelease": list(self.prerelease),
            "build": list(self.build),
        }


def parse_semver(text: str) -> SemVer | None:
    """Parse ``text`` as strict SemVer, or return None."""
    if len(text) > _MAX_LENGTH:
        return None
    match = _SEMVER_RE.match(text.strip())
    if match is None:
        return None
    numbers = [int(match.group(name)) for name in ("major", "minor", "patch")]
    if any(number > _MAX_SAFE_INTEGER for number in numbers):
        return None
    pre = match.group("pre")
    prerelease: tuple[str | int, ...] = ()
    if pre:
        prerelease = tuple(int(part) if part.isdigit() else part for part in pre.split("."))
    build = tuple(match.group("build").split(".")) if match.group("build") else ()
    return SemVer(
        raw=text,
        major=numbers[0],
        minor=numbers[1],
        patch=numbers[2],
        prerelease=prerelease,
        build=build,
    )
