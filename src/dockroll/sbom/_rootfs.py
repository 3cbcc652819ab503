"""Read the few files an SBOM needs from an image's filesystem tar stream.

The stream is read once, front to back, and never extracted: only the
members that :func:`wanted` names are read into memory (package databases,
``os-release``, Python package metadata, Debian copyright files); symlinks are
remembered so ``/etc/os-release → ../usr/lib/os-release`` and shared doc
directories resolve afterwards.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["RootfsFiles", "read_rootfs", "wanted"]

_MAX_FILE = 16 * 1024 * 1024
"""Larger members are skipped: no package database or metadata file is this big."""

_PYTHON_TREE = r"(?:usr/lib|usr/local/lib|opt/(?:[^/]+/)+lib)/python3[^/]*/"
_PYTHON_METADATA = re.compile(
    rf"^{_PYTHON_TREE}(?:[^/]+/)*?[^/]+(?:\.dist-info/METADATA|\.egg-info/PKG-INFO|\.egg-info)$"
)
_DPKG_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_COPYRIGHT = re.compile(r"^usr/share/doc/[^/]+/copyright$")
_FIXED = frozenset({"etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status"})


def _normalize(name: str) -> str:
    name = name.removeprefix("./").lstrip("/")
    return posixpath.normpath(name) if name else "."


def wanted(path: str) -> bool:
    """Whether the SBOM reads the file at ``path`` (relative, no leading slash)."""
    if path in _FIXED or _COPYRIGHT.match(path):
        return True
    if _DPKG_STATUS_D.match(path):
        return not path.endswith(".md5sums")
    return bool(_PYTHON_METADATA.match(path))


@dataclass(frozen=True)
class RootfsFiles:
    """The files of interest of one filesystem, and every symlink in it."""

    files: Mapping[str, bytes]
    """Relative path → content, for the regular files :func:`wanted` named."""
    symlinks: Mapping[str, str]
    """Relative path → link target as stored in the tar."""

    def resolve(self, path: str) -> str:
        """``path`` with every symlink along it followed (relative to the image root)."""
        parts = _normalize(path).split("/")
        for _ in range(40):  # the kernel's own limit on nested links
            for index in range(1, len(parts) + 1):
                prefix = "/".join(parts[:index])
                target = self.symlinks.get(prefix)
                if target is None:
                    continue
                if target.startswith("/"):
                    base = target.lstrip("/")
                else:
                    base = posixpath.join(posixpath.dirname(prefix), target)
                joined = posixpath.join(base, *parts[index:]) if parts[index:] else base
                parts = _rooted(joined).split("/")
                break
            else:
                return "/".join(parts)
        return "/".join(parts)

    def read(self, path: str) -> bytes | None:
        """The content of ``path``, following symlinks; None when absent or not captured."""
        direct = self.files.get(_normalize(path))
        if direct is not None:
            return direct
        return self.files.get(self.resolve(path))

    def matching(self, pattern: re.Pattern[str]) -> list[str]:
        """Captured paths matching ``pattern``, sorted."""
        return sorted(path for path in self.files if pattern.match(path))


def _rooted(path: str) -> str:
    """Normalise a relative path and clamp ``..`` at the image root, as chroot does."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


class _ForwardReader:
    """A file over an iterator of byte chunks that seeks forward only.

    :mod:`tarfile`'s random-access mode needs ``seek``/``tell``, but reading a
    tar front to back only ever seeks forward: over the data of members that
    are not wanted, which is dropped here without copying. (Its stream mode
    ``r|`` copies its buffer on every block and is several times slower.)
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._position = 0

    def _fill(self) -> bool:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return False
        return True

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted_size = size if size >= 0 else 1 << 62
        while wanted_size > 0 and self._fill():
            part = self._pending[:wanted_size]
            parts.append(bytes(part))
            self._pending = self._pending[len(part) :]
            wanted_size -= len(part)
            self._position += len(part)
        return b"".join(parts)

    def drain(self) -> None:
        """Read what follows the archive's end marker, so the producer finishes cleanly."""
        for _ in self._chunks:
            pass
        self._pending = memoryview(b"")

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise io.UnsupportedOperation("the image filesystem stream only seeks forward")
        skip = target - self._position
        while skip > 0 and self._fill():
            dropped = min(skip, len(self._pending))
            self._pending = self._pending[dropped:]
            skip -= dropped
            self._position += dropped
        return self._position


def read_rootfs(chunks: Iterable[bytes]) -> RootfsFiles:
    """Read the wanted files of a filesystem tar given as a stream of chunks.

    Raises :class:`tarfile.TarError` when the stream is not a tar archive.
    """
    files: dict[str, bytes] = {}
    symlinks: dict[str, str] = {}
    stream = _ForwardReader(chunks)
    with tarfile.open(fileobj=stream, mode="r:") as archive:  # type: ignore[call-overload]
        for member in archive:
            path = _normalize(member.name)
            if member.issym():
                symlinks[path] = member.linkname
            elif member.islnk():
                # A hard link names an earlier member; its content is known only if it was read.
                original = files.get(_normalize(member.linkname))
                if original is not None and wanted(path):
                    files[path] = original
            elif member.isfile() and member.size <= _MAX_FILE and wanted(path):
                extracted = archive.extractfile(member)
                if extracted is not None:
                    files[path] = extracted.read()
    stream.drain()
    return RootfsFiles(files=files, symlinks=symlinks)
