"""Images carried between engines without a registry (``docker save | docker load``)."""

from __future__ import annotations

from dockroll.engine.port import Engine
from dockroll.errors import EngineError

__all__ = ["copy_image"]


def copy_image(source: Engine, target: Engine, reference: str) -> None:
    """Load ``reference`` from ``source`` into ``target``, streamed, never held in memory.

    For images no registry serves, such as the local stand-ins ``dockroll dev
    up`` builds: a remote engine gets them over its own connection.
    """
    if source.image(reference) is None:
        raise EngineError(
            f"image {reference} is on neither {target.endpoint} nor {source.endpoint}",
            hint="run `dockroll dev up --with router` here to build it",
        )
    target.load_image(source.save_image(reference))
    if target.image(reference) is None:
        raise EngineError(f"{target.endpoint} loaded {reference}, but does not list it")
