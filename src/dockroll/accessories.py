"""Accessories: long-lived dependencies (PostgreSQL, Redis …) of each environment.

An accessory runs one container per environment from an image of its own,
joins the environment's network under its own name (the app reaches
``db:5432``), keeps its data in the environment's volumes, and is started and
stopped by ``dockroll accessory up|down``: deploys, promotions and rollbacks of
the service never touch it. :mod:`dockroll.pipeline.accessory` runs them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from dockroll.container_settings import ContainerSettings, ContainerSpec, resolve_settings

if TYPE_CHECKING:
    from dockroll.config import Config

__all__ = ["AccessoryConfig", "accessory_problems", "resolve_accessory"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class AccessoryConfig(ContainerSettings):
    """A dependency the service's environments run beside it, never rolled with releases."""

    image: str
    """The image it runs, e.g. ``postgres:15``; pulled when the engine does not have it."""
    env: dict[str, str] = Field(default_factory=dict)
    """Its environment variables (secrets go under `secrets`)."""
    environments: list[str] | None = None
    """The environments it runs in; all when absent."""


def accessory_problems(config: Config) -> list[str]:
    problems = []
    for name, accessory in config.accessories.items():
        if not _NAME.match(name):
            problems.append(
                f"accessories.{name}: a name is up to 20 lowercase letters, digits and '-', "
                "starting with a letter"
            )
        if name in config.processes:
            problems.append(f"accessories.{name}: a process has that name too")
        for env in accessory.environments or []:
            if env not in config.environments:
                problems.append(
                    f"accessories.{name}.environments names {env!r}, which is not an "
                    f"environment here ({', '.join(config.environments) or 'none'})"
                )
    return problems


def resolve_accessory(config: Config, environment: str, name: str) -> ContainerSpec:
    """How ``name`` runs in ``environment``; its env files and secrets read now."""
    accessory = config.accessories[name]
    where: dict[str, str] = {}
    for index, path in enumerate(accessory.env_file):
        where[f"env_file:{path}"] = f"accessories.{name}.env_file.{index}"
    for index, secret in enumerate(accessory.secrets):
        where[f"secret:{secret.name}"] = f"accessories.{name}.secrets.{index}"
    for index, item in enumerate(accessory.files):
        where[f"file:{item.target}"] = f"accessories.{name}.files.{index}"
    return resolve_settings(
        accessory,
        where,
        root=config.root,
        environment=environment,
        env_layers=[accessory.env],
        salt=f"{config.service}/{name}",
        hashed={"image": accessory.image},
    )
