"""Base images: the official one when it can be had, else an equivalent built locally.

Each known base image is tried in this order, cheapest first: the official
image already present, a local substitute already built, ``docker pull`` of
the official image (fails fast offline), and finally a build from Debian
packages — ``debootstrap`` + ``docker import`` for root filesystems, a small
Dockerfile on top of one for the rest. Substitutes are recorded with
:func:`dockroll.engine.base_images.record_substitute` so builds can use them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockroll.devenv._apt import apt_install, can_install
from dockroll.devenv.report import ComponentReport, ComponentState
from dockroll.devenv.system import LocalSystem, System
from dockroll.engine.base_images import record_substitute
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = [
    "DEBIAN",
    "HAPROXY",
    "KNOWN_BASE_IMAGES",
    "PYTHON",
    "BaseImage",
    "base_image_status",
    "ensure_base_image",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"


@dataclass(frozen=True)
class BaseImage:
    """An official base image and how to build a local equivalent of it."""

    official: str
    """The reference Dockerfiles name: ``python:3.11-slim``."""
    substitute: str
    """The locally built stand-in: ``dockroll.local/python:3.11-slim``."""
    include: tuple[str, ...] = ()
    """Debian packages debootstrap adds to a root filesystem (debootstrap recipe)."""
    changes: tuple[str, ...] = ()
    """Dockerfile instructions applied by ``docker import -c`` (debootstrap recipe)."""
    dockerfile: str | None = None
    """A Dockerfile built ``FROM`` :attr:`build_from` (Dockerfile recipe)."""
    build_from: str | None = None
    """The official name of the known base image the Dockerfile starts from."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Extra files of the Dockerfile's build context, by name."""

    @property
    def component(self) -> str:
        """Its name in dev reports: ``image python:3.11-slim``."""
        return f"image {self.official}"


DEBIAN = BaseImage(
    official="debian:bookworm-slim",
    substitute="dockroll.local/debian:bookworm-slim",
    include=("ca-certificates",),
    changes=("ENV LANG=C.UTF-8", 'CMD ["bash"]'),
)

PYTHON = BaseImage(
    official="python:3.11-slim",
    substitute="dockroll.local/python:3.11-slim",
    # bookworm's python3 is 3.11; python-is-python3 gives the `python` the official image has
    include=("python3", "python3-venv", "python-is-python3", "ca-certificates"),
    changes=("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)

# Mimics the official image's conventions: config at /usr/local/etc/haproxy,
# user haproxy with uid/gid 99 (renumbered after the package creates it, since
# adduser refuses a pre-made user below the system range), graceful stop on
# SIGUSR1, an entrypoint that runs haproxy in the foreground as master-worker.
_HAPROXY_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN set -eux; \\
    apt-get update; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy; \\
    rm -rf /var/lib/apt/lists/*; \\
    groupmod --gid 99 haproxy; \\
    usermod --uid 99 --gid 99 haproxy; \\
    mkdir -p /usr/local/etc/haproxy /var/lib/haproxy /run/haproxy; \\
    ln -s /etc/haproxy/errors /usr/local/etc/haproxy/errors; \\
    chown haproxy:haproxy /var/lib/haproxy /run/haproxy; \\
    haproxy -v
COPY docker-entrypoint.sh /usr/local/bin/
STOPSIGNAL SIGUSR1
ENTRYPOINT ["docker-entrypoint.sh"]
USER haproxy
WORKDIR /var/lib/haproxy
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
"""

_HAPROXY_ENTRYPOINT = """\
#!/bin/sh
set -e
# bare flags mean "haproxy <flags>"
case "$1" in -*) set -- haproxy "$@" ;; esac
# foreground master-worker, so the container's signals reach every worker
if [ "$1" = haproxy ]; then shift; set -- haproxy -W -db "$@"; fi
exec "$@"
"""

HAPROXY = BaseImage(
    official="haproxy:2.6",
    substitute="dockroll.local/haproxy:2.6",
    dockerfile=_HAPROXY_DOCKERFILE,
    build_from=DEBIAN.official,
    files={"docker-entrypoint.sh": _HAPROXY_ENTRYPOINT},
)

KNOWN_BASE_IMAGES: Mapping[str, BaseImage] = {
    image.official: image for image in (DEBIAN, PYTHON, HAPROXY)
}


def _lookup(image: BaseImage | str) -> BaseImage:
    if isinstance(image, BaseImage):
        return image
    try:
        return KNOWN_BASE_IMAGES[image]
    except KeyError:
        known = ", ".join(sorted(KNOWN_BASE_IMAGES))
        raise DevEnvError(f"no recipe for base image {image}", hint=f"known: {known}") from None


def _present(system: System, reference: str) -> bool:
    return system.run(["docker", "image", "inspect", reference], timeout=30).ok


def base_image_status(
    image: BaseImage | str, *, system: System | None = None, required: bool = True
) -> ComponentReport:
    """Whether the official image or its substitute is present locally; changes nothing."""
    spec = _lookup(image)
    system = system or LocalSystem()
    if _present(system, spec.official):
        return ComponentReport(
            spec.component,
            ComponentState.UP,
            "present",
            required=required,
            facts={"image": spec.official},
        )
    if _present(system, spec.substitute):
        return ComponentReport(
            spec.component,
            ComponentState.UP,
            "present (local substitute)",
            required=required,
            facts={"image": spec.substitute, "substitute_for": spec.official},
        )
    return ComponentReport(spec.component, ComponentState.DOWN, "missing", required=required)


def ensure_base_image(
    image: BaseImage | str,
    *,
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
    required: bool = True,
    pull_timeout: float = 120.0,
) -> tuple[ComponentReport, ...]:
    """Make ``image`` (or a local equivalent) available; reports for it and what it needed.

    Present images are reused in seconds; builds take about a minute. Raises
    :class:`DevEnvError` when the image can neither be pulled nor built.
    """
    spec = _lookup(image)
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    found = base_image_status(spec, system=system, required=required)
    if found.up:
        if "substitute_for" in found.facts:
            record_substitute(spec.official, spec.substitute, root)
        return (found,)

    progress(Progress("dev", f"docker pull {spec.official}"))
    pulled = system.run(["docker", "pull", spec.official], timeout=pull_timeout)
    if pulled.ok:
        return (
            ComponentReport(
                spec.component,
                ComponentState.UP,
                "pulled",
                changed=True,
                required=required,
                seconds=system.monotonic() - start,
                facts={"image": spec.official},
            ),
        )
    progress(
        Progress("dev", f"cannot pull {spec.official}; building {spec.substitute} from Debian")
    )

    needed: tuple[ComponentReport, ...] = ()
    if spec.dockerfile is not None:
        if spec.build_from is None:
            raise DevEnvError(f"the recipe of {spec.official} names no base image")
        needed = ensure_base_image(
            spec.build_from,
            system=system,
            progress=progress,
            root=root,
            required=required,
            pull_timeout=pull_timeout,
        )
        _build_dockerfile(spec, needed[-1].facts["image"], system, progress, root)
    else:
        _build_rootfs(spec, system, progress, root)
    record_substitute(spec.official, spec.substitute, root)
    seconds = system.monotonic() - start
    built = ComponentReport(
        spec.component,
        ComponentState.UP,
        f"built in {seconds:.0f} s",
        changed=True,
        required=required,
        seconds=seconds,
        facts={"image": spec.substitute, "substitute_for": spec.official},
    )
    return (*needed, built)


def _workdir(root: Path, prefix: str) -> Path:
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tmp))


def _build_rootfs(spec: BaseImage, system: System, progress: ProgressCallback, root: Path) -> None:
    if not system.is_root():
        raise DevEnvError(
            f"cannot pull {spec.official} and building a substitute needs root (debootstrap)",
            hint=f"make `docker pull {spec.official}` work, or run `dockroll dev up` as root",
        )
    if system.which("debootstrap") is None:
        if not can_install(system):
            raise DevEnvError(
                f"cannot pull {spec.official} and debootstrap is not installed",
                hint="install debootstrap (`apt-get install debootstrap`)",
            )
        apt_install(system, ["debootstrap"], progress)
    mirror = system.env("DOCKROLL_DEBIAN_MIRROR") or DEFAULT_MIRROR
    rootfs = _workdir(root, "rootfs-")
    try:
        progress(Progress("dev", f"debootstrap {SUITE} for {spec.substitute} (about a minute)"))
        argv = ["debootstrap", "--variant=minbase"]
        if spec.include:
            argv.append("--include=" + ",".join(spec.include))
        done = system.run(
            [*argv, SUITE, str(rootfs), mirror],
            timeout=1800,
            on_output=lambda line: progress(Progress("dev", line, detail=True)),
        )
        if not done.ok:
            raise DevEnvError(
                f"debootstrap of {spec.substitute} failed: {done.why()}",
                hint=f"check that {mirror} is reachable (set DOCKROLL_DEBIAN_MIRROR to another)",
            )
        # package caches only make the image bigger; `apt-get update` refills the lists
        for leftover in (
            *rootfs.glob("var/cache/apt/archives/*.deb"),
            *rootfs.glob("var/lib/apt/lists/*_*"),
        ):
            leftover.unlink(missing_ok=True)
        progress(Progress("dev", f"docker import {spec.substitute}"))
        changes = [arg for change in spec.changes for arg in ("-c", change)]
        imported = system.pipe(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
            ["docker", "import", *changes, "-", spec.substitute],
            timeout=900,
        )
        if not imported.ok:
            raise DevEnvError(f"docker import of {spec.substitute} failed: {imported.why()}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _build_dockerfile(
    spec: BaseImage, base: str, system: System, progress: ProgressCallback, root: Path
) -> None:
    assert spec.dockerfile is not None
    context = _workdir(root, "build-")
    try:
        (context / "Dockerfile").write_text(spec.dockerfile)
        for name, text in spec.files.items():
            path = context / name
            path.write_text(text)
            path.chmod(0o755)
        progress(Progress("dev", f"docker build {spec.substitute} FROM {base}"))
        done = system.run(
            [
                "docker",
                "build",
                "--build-arg",
                f"BASE={base}",
                "--label",
                f"dev.dockroll.substitute-for={spec.official}",
                "-t",
                spec.substitute,
                str(context),
            ],
            timeout=1800,
            on_output=lambda line: progress(Progress("dev", line, detail=True)),
        )
        if not done.ok:
            raise DevEnvError(f"building {spec.substitute} failed: {done.why()}")
    finally:
        shutil.rmtree(context, ignore_errors=True)
