"""Installing Debian packages when dockroll may (root on a Debian-like system)."""

from __future__ import annotations

import weakref

from dockroll.devenv.system import System
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback

__all__ = ["apt_install", "can_install"]

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# The systems ``apt-get update`` already ran on in this process: one refresh per run is
# enough. Weak values, so an id reused after garbage collection never matches.
_updated: weakref.WeakValueDictionary[int, System] = weakref.WeakValueDictionary()


def can_install(system: System) -> bool:
    """True when dockroll may install Debian packages itself."""
    return system.is_root() and system.which("apt-get") is not None


def apt_install(system: System, packages: list[str], progress: ProgressCallback) -> None:
    """Install ``packages`` with apt-get (root only); raise :class:`DevEnvError` on failure."""
    names = " ".join(packages)
    if _updated.get(id(system)) is not system:
        progress(Progress("dev", "apt-get update"))
        update = system.run(["apt-get", "update"], env=_APT_ENV, timeout=600)
        if not update.ok:
            raise DevEnvError(
                f"apt-get update failed: {update.why()}",
                hint=f"fix the package sources, then `apt-get install {names}`",
            )
        _updated[id(system)] = system
    progress(Progress("dev", f"apt-get install {names}"))
    done = system.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        env=_APT_ENV,
        timeout=1200,
        on_output=lambda line: progress(Progress("dev", line, detail=True)),
    )
    if not done.ok:
        raise DevEnvError(
            f"could not install {names}: {done.why()}", hint=f"run `apt-get install {names}`"
        )
