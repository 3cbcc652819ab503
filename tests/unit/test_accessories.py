"""`accessories:` in dockroll.yml: names, environments, and how one runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.accessories import resolve_accessory
from dockroll.config import Config, load_config
from dockroll.errors import ConfigError


def _config(tmp_path: Path, data: dict[str, Any]) -> Config:
    path = tmp_path / "dockroll.yml"
    base = {
        "service": "shop",
        "image": "127.0.0.1:5000/team/shop",
        "environments": {"dev": {"port": 8001}, "prod": {"port": 8002}},
    }
    path.write_text(yaml.safe_dump({**base, **data}, sort_keys=False), encoding="utf-8")
    return load_config(path)


def test_an_accessory_runs_its_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", "pw")
    config = _config(
        tmp_path,
        {
            "container": {"env": {"APP_ONLY": "1"}, "memory": "1g"},
            "accessories": {
                "db": {
                    "image": "postgres:15",
                    "env": {"POSTGRES_USER": "shop"},
                    "secrets": [{"name": "POSTGRES_PASSWORD", "env": "PG_PASSWORD"}],
                    "volumes": ["pgdata:/var/lib/postgresql/data"],
                }
            },
        },
    )
    spec = resolve_accessory(config, "dev", "db")
    assert dict(spec.env) == {"POSTGRES_USER": "shop", "ENVIRONMENT": "dev"}
    assert spec.memory is None
    assert dict(spec.secret_env) == {"POSTGRES_PASSWORD": "pw"}
    assert spec.volume_name("shop", "dev", "pgdata") == "dockroll-shop-dev-pgdata"
    monkeypatch.setenv("PG_PASSWORD", "other")
    assert resolve_accessory(config, "dev", "db").config_hash != spec.config_hash


@pytest.mark.parametrize(
    ("accessories", "extra", "words"),
    [
        ({"db": {}}, {}, "accessories.db.image"),
        ({"DB": {"image": "x"}}, {}, "accessories.DB"),
        ({"db": {"image": "x", "environments": ["qa"]}}, {}, "names 'qa'"),
        ({"web": {"image": "x"}}, {"processes": {"web": {}}}, "a process has that name"),
        ({"db": {"image": "x", "memory": "big"}}, {}, "accessories.db.memory"),
    ],
)
def test_bad_accessories_name_the_field(
    tmp_path: Path, accessories: dict[str, Any], extra: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, {"accessories": accessories, **extra})
    assert words in caught.value.message
