"""What a router on a remote engine needs from this machine."""

from __future__ import annotations

from dockroll.engine.port import Engine
from dockroll.engine.transfer import copy_image
from dockroll.errors import DockrollError
from dockroll.events import Progress, ProgressCallback

__all__ = ["carry_image"]


def carry_image(engine: Engine, reference: str, progress: ProgressCallback) -> None:
    """Copy ``reference`` from this machine's engine to ``engine`` when it lacks it.

    A local stand-in image (built by ``dockroll dev up``) is in no registry the
    remote engine could pull from. Failing to copy is not an error here: the
    caller reports the missing image with its own hint.
    """
    if engine.image(reference) is not None:
        return
    from dockroll.engine.docker import DockerEngine  # noqa: PLC0415 - remote engines only

    local = DockerEngine("unix:///var/run/docker.sock")
    try:
        if local.image(reference) is None:
            return
        progress(Progress("router", f"copying {reference} to {engine.endpoint}"))
        copy_image(local, engine, reference)
    except DockrollError as exc:
        progress(Progress("router", f"could not copy {reference}: {exc.message}"))
    finally:
        local.close()
