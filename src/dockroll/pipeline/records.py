"""The record of the last build of a service, so ``test`` and ``push`` act on what was built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockroll.errors import UsageError
from dockroll.statedir import state_dir

__all__ = ["BuildRecord", "load_last_build", "save_build"]


@dataclass(frozen=True)
class BuildRecord:
    """What one ``dockroll build`` produced."""

    service: str
    image_id: str
    tags: tuple[str, ...]
    version: str
    git_sha: str
    created: str
    size: int
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    base_image: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        data["build_args"] = dict(self.build_args)
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        return cls(
            service=str(data["service"]),
            image_id=str(data["image_id"]),
            tags=tuple(str(t) for t in data["tags"]),
            version=str(data["version"]),
            git_sha=str(data["git_sha"]),
            created=str(data["created"]),
            size=int(data["size"]),
            build_args={str(k): str(v) for k, v in dict(data.get("build_args", {})).items()},
            labels={str(k): str(v) for k, v in dict(data.get("labels", {})).items()},
            base_image=data.get("base_image"),
        )


def _path(service: str, root: Path | None) -> Path:
    directory = (root or state_dir()) / "builds"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{service}.json"


def save_build(record: BuildRecord, root: Path | None = None) -> Path:
    path = _path(record.service, root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_last_build(
    service: str, root: Path | None = None, *, otherwise: str | None = None
) -> BuildRecord:
    """The last build of ``service`` on this machine.

    ``otherwise`` is the caller's own way around a missing build (e.g. "pass
    --image REF" for a command that has that flag), added to the hint.
    """
    path = _path(service, root)
    try:
        return BuildRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(
            f"no build of {service} recorded on this machine",
            hint="run `dockroll build` first" + (f", or {otherwise}" if otherwise else ""),
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"the build record {path} is unreadable ({exc})",
            hint="run `dockroll build` again to replace it",
        ) from None
