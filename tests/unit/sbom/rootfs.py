"""A synthetic image filesystem, as the tar stream an engine exports."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Mapping

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

DPKG_STATUS = """Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 This package includes shared versions of the standard C library.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: login
Status: install ok installed
Architecture: amd64
Source: shadow (1:4.13+dfsg1-1)
Version: 1:4.13+dfsg1-1+b1
Description: system login tools

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Description: removed, only its configuration is left

Package: purged
Status: purge ok not-installed
Architecture: all
Version: 2.0

Package: adduser
Status: install ok installed
Architecture: all
Version: 3.134
Description: add and remove users and groups
"""

DISTROLESS_STATUS = """Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: time zone and daylight-saving time data
"""

LIBC_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: glibc

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: debian/*
Copyright: 1998-2023 Debian glibc maintainers
License: GPL-2+
 This program is free software; you can redistribute it
 .
 and/or modify it.
"""

FLASK_METADATA = """Metadata-Version: 2.4
Name: Flask
Version: 3.1.3
Summary: A simple framework for building complex web applications.
Maintainer-email: Pallets <contact@palletsprojects.com>
License-Expression: BSD-3-Clause
Classifier: Framework :: Flask
Project-URL: Source, https://github.com/pallets/flask/
Requires-Dist: blinker>=1.9.0

# Flask

Flask is a lightweight WSGI web application framework.
"""

GUNICORN_METADATA = """Metadata-Version: 2.1
Name: gunicorn
Version: 27.0.1
Summary: WSGI HTTP Server for UNIX
Home-page: https://gunicorn.org
License: MIT
Classifier: License :: OSI Approved :: MIT License
"""

PROMETHEUS_METADATA = """Metadata-Version: 2.1
Name: prometheus_client
Version: 0.26.0
License: Apache Software License 2.0
 (and the multi-line text the field sometimes carries
 that is not a license name)
Classifier: License :: OSI Approved :: Apache Software License
"""

SYSTEM_PIP_PKG_INFO = """Metadata-Version: 1.2
Name: six
Version: 1.16.0
License: MIT
"""


def _add(archive: tarfile.TarFile, name: str, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _link(archive: tarfile.TarFile, name: str, target: str, *, hard: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def default_files() -> dict[str, str | bytes]:
    venv = "opt/venv/lib/python3.11/site-packages"
    return {
        "usr/lib/os-release": OS_RELEASE,
        "var/lib/dpkg/status": DPKG_STATUS,
        "var/lib/dpkg/status-old": "Package: stale\nVersion: 0\nArchitecture: all\n",
        "var/lib/dpkg/status.d/tzdata": DISTROLESS_STATUS,
        "var/lib/dpkg/status.d/tzdata.md5sums": "d41d8cd98f00b204e9800998ecf8427e  usr/x\n",
        "usr/share/doc/libc6/copyright": LIBC_COPYRIGHT,
        "usr/share/doc/login/copyright": "This is free-form text naming no license.\n",
        f"{venv}/flask-3.1.3.dist-info/METADATA": FLASK_METADATA,
        f"{venv}/flask-3.1.3.dist-info/RECORD": "flask/__init__.py,,\n",
        f"{venv}/gunicorn-27.0.1.dist-info/METADATA": GUNICORN_METADATA,
        f"{venv}/prometheus_client-0.26.0.dist-info/METADATA": PROMETHEUS_METADATA,
        # the same project in the system interpreter's tree: one component, two locations
        "usr/local/lib/python3.11/site-packages/Flask-3.1.3.dist-info/METADATA": FLASK_METADATA,
        "usr/lib/python3/dist-packages/six-1.16.0.egg-info": SYSTEM_PIP_PKG_INFO,
        # not an install tree: never read
        "app/vendor/lib/python3.11/site-packages/evil-1.0.dist-info/METADATA": (
            "Name: evil\nVersion: 1.0\n"
        ),
        "usr/share/big.bin": b"\0" * 70_000,
    }


def rootfs_tar(
    files: Mapping[str, str | bytes] | None = None,
    *,
    symlinks: Mapping[str, str] | None = None,
    hardlinks: Mapping[str, str] | None = None,
    prefix: str = "",
) -> bytes:
    """A filesystem tar; ``prefix`` (e.g. ``./``) is how some engines name members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in (default_files() if files is None else files).items():
            _add(archive, prefix + name, content)
        links = {"etc/os-release": "../usr/lib/os-release"} if symlinks is None else symlinks
        for name, target in links.items():
            _link(archive, prefix + name, target)
        for name, target in (hardlinks or {}).items():
            _link(archive, prefix + name, prefix + target, hard=True)
    return buffer.getvalue()


def chunks(data: bytes, size: int = 4099) -> Iterator[bytes]:
    """The tar in uneven chunks, as an HTTP stream delivers it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
