"""Command-line tools a caller needs, installed from Debian when missing (as ``dev up`` does)."""

from __future__ import annotations

from collections.abc import Mapping

from dockroll.devenv._apt import apt_install, can_install
from dockroll.devenv.system import LocalSystem, System
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard

__all__ = ["ensure_commands"]


def ensure_commands(
    commands: Mapping[str, str],
    *,
    system: System | None = None,
    progress: ProgressCallback = discard,
) -> tuple[str, ...]:
    """Make every command in ``commands`` (command name → Debian package) available.

    Commands already on the PATH are left alone; the packages of the missing ones
    are installed with one ``apt-get install`` when dockroll may (root on a
    Debian-like system). Returns the packages installed, empty when nothing was
    missing. Raises :class:`DevEnvError` naming each missing command and its
    package when they cannot be installed, or are still missing afterwards.
    """
    system = system or LocalSystem()
    missing = {name: package for name, package in commands.items() if system.which(name) is None}
    if not missing:
        return ()
    packages = sorted(set(missing.values()))
    wanted = _describe(missing)
    them = "it" if len(missing) == 1 else "them"
    if not can_install(system):
        install = f"install {them} (Debian/Ubuntu: `apt-get install {' '.join(packages)}`)"
        if system.is_root():
            why, hint = "apt-get is not available", install
        else:
            why, hint = "not root", f"{install}, or rerun as root to let dockroll install {them}"
        raise DevEnvError(
            f"{wanted} not installed, and dockroll cannot install {them} here ({why})", hint=hint
        )
    needed = "" if set(missing) == set(packages) else f" (for {', '.join(missing)})"
    progress(Progress("dev", f"installing {', '.join(packages)}{needed}"))
    apt_install(system, packages, progress)
    still = {name: package for name, package in missing.items() if system.which(name) is None}
    if still:
        raise DevEnvError(
            f"{_describe(still)} still not on the PATH after `apt-get install "
            f"{' '.join(packages)}`",
            hint="check the package installed the command, and that its directory is on PATH",
        )
    return tuple(packages)


def _describe(missing: Mapping[str, str]) -> str:
    parts = [f"`{name}` (package {package})" for name, package in missing.items()]
    return ", ".join(parts) + (" is" if len(parts) == 1 else " are")
