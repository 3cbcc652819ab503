"""`processes:` in dockroll.yml: which one takes traffic, replicas, settings per process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.config import Config, load_config
from dockroll.container_settings import resolve_container
from dockroll.errors import ConfigError
from dockroll.processes import background_processes, process_replicas, routed_process


def _config(tmp_path: Path, data: dict[str, Any]) -> Config:
    path = tmp_path / "dockroll.yml"
    base = {
        "service": "shop",
        "image": "127.0.0.1:5000/team/shop",
        "environments": {"dev": {"port": 8001, "replicas": 3}},
    }
    path.write_text(yaml.safe_dump({**base, **data}, sort_keys=False), encoding="utf-8")
    return load_config(path)


def test_without_processes_the_one_process_is_the_routed_web(tmp_path: Path) -> None:
    config = _config(tmp_path, {"container": {"command": ["serve"]}})
    assert routed_process(config) == "web"
    assert background_processes(config) == []
    assert resolve_container(config, "dev").command == ("serve",)


def test_processes_share_the_container_settings_and_add_their_own(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "container": {"env": {"A": "1"}, "memory": "256m"},
            "processes": {
                "web": {"command": "gunicorn app:app"},
                "worker": {"command": "rq worker", "replicas": 2, "env": {"QUEUE": "high"}},
                "scheduler": {"command": ["cron", "-f"], "memory": "64m"},
            },
            "environments": {
                "dev": {"port": 8001, "replicas": 3, "processes": {"worker": {"replicas": 5}}},
                "prod": {"port": 8002, "processes": {"scheduler": {"replicas": 0}}},
            },
        },
    )
    assert routed_process(config) == "web"
    assert background_processes(config) == ["worker", "scheduler"]
    assert [process_replicas(config, "dev", p) for p in ("worker", "scheduler")] == [5, 1]
    assert [process_replicas(config, "prod", p) for p in ("worker", "scheduler")] == [2, 0]
    web = resolve_container(config, "dev")
    worker = resolve_container(config, "dev", "worker")
    scheduler = resolve_container(config, "dev", "scheduler")
    assert web.command == ("gunicorn", "app:app")
    assert worker.command == ("rq", "worker")
    assert dict(worker.env) == {"A": "1", "QUEUE": "high", "ENVIRONMENT": "dev"}
    assert "QUEUE" not in web.env
    assert (worker.memory, scheduler.memory) == (256 * 1024**2, 64 * 1024**2)
    assert len({web.config_hash, worker.config_hash, scheduler.config_hash}) == 3


def test_another_process_may_take_the_router(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"processes": {"api": {"router": True, "command": "serve"}, "worker": {}}},
    )
    assert routed_process(config) == "api"
    assert background_processes(config) == ["worker"]
    assert resolve_container(config, "dev").command == ("serve",)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"processes": {"worker": {}}}, "no process takes traffic"),
        ({"processes": {"web": {"router": False}, "worker": {}}}, "no process takes traffic"),
        (
            {"processes": {"a": {"router": True}, "b": {"router": True}}},
            "one process takes traffic",
        ),
        ({"processes": {"web": {"replicas": 2}}}, "processes.web.replicas"),
        ({"processes": {"web": {}, "blue": {}}}, "processes.blue"),
        ({"processes": {"web": {}, "Worker": {}}}, "processes.Worker"),
        ({"processes": {"web": {}, "worker": {"replica": 2}}}, "processes.worker.replica"),
        ({"processes": {"web": {}, "worker": {"health": "maybe"}}}, "processes.worker.health"),
        (
            {
                "processes": {"web": {}},
                "environments": {"dev": {"port": 8001, "processes": {"wrker": {"replicas": 1}}}},
            },
            "environments.dev.processes.wrker",
        ),
    ],
)
def test_bad_processes_name_the_field(tmp_path: Path, data: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, data)
    assert words in caught.value.message
