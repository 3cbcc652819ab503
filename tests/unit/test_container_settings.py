"""Container settings in dockroll.yml: parsing, per-environment overrides, env files, secrets."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll import labels
from dockroll.config import Config, load_config
from dockroll.container_settings import (
    MAX_FILE_SIZE,
    parse_env_file,
    parse_memory,
    parse_volume,
    resolve_container,
    run_request,
)
from dockroll.engine.docker import _files_tar, _restart_policy, _run_options
from dockroll.errors import ConfigError

SECRET = "s3cr3t-Value-9f8e"


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "dockroll.yml"
    base = {"service": "web", "image": "127.0.0.1:5000/team/web"}
    path.write_text(yaml.safe_dump({**base, **data}), encoding="utf-8")
    return path


def _config(tmp_path: Path, data: dict[str, Any]) -> Config:
    return load_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1.5G", int(1.5 * 1024**3)),
        ("256MiB", 256 * 1024**2),
        (10_000_000, 10_000_000),
    ],
)
def test_memory_sizes(text: object, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("container", "field", "words"),
    [
        ({"memory": "lots"}, "container.memory", "not a memory size"),
        ({"memory": "1k"}, "container.memory", "minimum"),
        ({"cpus": 0}, "container.cpus", "greater than 0"),
        ({"restart": "sometimes"}, "container.restart", "restart policy"),
        ({"volumes": ["data"]}, "container.volumes", "not a volume"),
        ({"volumes": ["data:rel/path"]}, "container.volumes", "absolute"),
        ({"volumes": ["a:/x", "b:/x"]}, "container.volumes", "mounted twice"),
        ({"labels": {"dev.dockroll.role": "x"}}, "container.labels", "dockroll's own"),
        ({"secrets": [{"name": "A"}]}, "container.secrets.0", "exactly one"),
        ({"secrets": [{"name": "A-B", "env": "X"}]}, "container.secrets.0", "cannot name"),
        ({"healthcheck": {"interval": "1s"}}, "container.healthcheck", "give a 'test'"),
        ({"healthcheck": {"test": ["curl", "x"]}}, "container.healthcheck.test", "CMD"),
        ({"extra_hosts": ["nocolon"]}, "container.extra_hosts", "NAME:ADDRESS"),
        ({"comand": ["x"]}, "container.comand", "unknown field"),
        ({"files": [{"source": "a", "target": "etc/a"}]}, "container.files.0.target", "absolute"),
        ({"files": [{"source": "a", "target": "/etc/"}]}, "container.files.0.target", "file path"),
        ({"files": [{"source": "a", "target": "/a", "mode": 444}]}, "files.0.mode", "quoted"),
        ({"files": [{"source": "a", "target": "/a", "mode": "0999"}]}, "files.0.mode", "octal"),
        (
            {"files": [{"source": "a", "target": "/a"}, {"source": "b", "target": "/a"}]},
            "container",
            "file /a is listed twice",
        ),
        (
            {
                "files": [{"source": "a", "target": "/run/secrets/key"}],
                "secrets": [{"name": "key", "env": "K", "as": "file"}],
            },
            "container",
            "also where a secret goes",
        ),
        ({"files": [{"target": "/a"}]}, "container.files.0.source", "required"),
        (
            {"files": [{"source": "a", "target": "/etc/app/a.ini"}], "volumes": ["./c:/etc/app"]},
            "container",
            "file /etc/app/a.ini is in the volume at /etc/app",
        ),
    ],
)
def test_bad_values_name_their_field(
    tmp_path: Path, container: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, {"container": container})
    assert field in caught.value.message
    assert words in caught.value.message


def test_an_environment_override_names_its_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(
            tmp_path,
            {"environments": {"prod": {"port": 8000, "container": {"memory": "12x"}}}},
        )
    assert "environments.prod.container.memory" in caught.value.message


def test_commands_split_like_a_shell_and_hosts_take_both_forms(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "container": {
                "command": "python -m worker --queue 'high prio'",
                "entrypoint": ["/bin/sh", "-c"],
                "extra_hosts": ["db.internal:10.0.0.5", "cache=10.0.0.6"],
            }
        },
    )
    assert config.container.command == ["python", "-m", "worker", "--queue", "high prio"]
    assert config.container.extra_hosts == {"db.internal": "10.0.0.5", "cache": "10.0.0.6"}


def test_volumes_are_named_or_host_paths(tmp_path: Path) -> None:
    assert parse_volume("data:/var/lib/data").kind == "volume"
    bind = parse_volume("./conf:/etc/app:ro", tmp_path)
    assert (bind.kind, bind.source, bind.read_only) == ("bind", str(tmp_path / "conf"), True)


def test_env_files_read_like_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    text = "# comment\n\nA=1\nexport B='two words'\nC=\"q\"\nD=x # note\nFROM_HOST\nUNSET_ONE\n"
    assert parse_env_file(text, "f") == {
        "A": "1",
        "B": "two words",
        "C": "q",
        "D": "x",
        "FROM_HOST": "yes",
    }
    with pytest.raises(ConfigError, match="line 1"):
        parse_env_file("not a var=1", "f")


def test_overrides_merge_per_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "common.env").write_text("LEVEL=info\nSHARED=1\n", encoding="utf-8")
    (tmp_path / "prod.env").write_text("LEVEL=warning\n", encoding="utf-8")
    (tmp_path / "token").write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    config = _config(
        tmp_path,
        {
            "container": {
                "env": {"SHARED": "2"},
                "env_file": "common.env",
                "memory": "256m",
                "volumes": ["data:/data", "cache:/cache"],
                "secrets": [{"name": "DATABASE_PASSWORD", "env": "DB_PASSWORD"}],
                "labels": {"team": "web"},
            },
            "environments": {
                "dev": {"port": 8001},
                "prod": {
                    "port": 8002,
                    "env": {"ONLY_PROD": "1"},
                    "container": {
                        "env_file": ["prod.env"],
                        "memory": "1g",
                        "cpus": 1.5,
                        "volumes": ["prod-cache:/cache"],
                        "secrets": [{"name": "token", "file": "token", "as": "file"}],
                        "labels": {"tier": "prod"},
                    },
                },
            },
        },
    )
    dev, prod = resolve_container(config, "dev"), resolve_container(config, "prod")
    assert dict(dev.env) == {"LEVEL": "info", "SHARED": "2", "ENVIRONMENT": "dev"}
    assert dev.memory == 256 * 1024**2
    assert dev.nano_cpus is None
    assert dict(prod.env) == {
        "LEVEL": "warning",
        "SHARED": "2",
        "ONLY_PROD": "1",
        "ENVIRONMENT": "prod",
    }
    assert prod.memory == 1024**3
    assert prod.nano_cpus == 1_500_000_000
    assert [(v.source, v.target) for v in prod.volumes] == [
        ("data", "/data"),
        ("prod-cache", "/cache"),
    ]
    assert dict(prod.labels) == {"team": "web", "tier": "prod"}
    assert dict(prod.secret_env) == {"DATABASE_PASSWORD": SECRET}
    assert dict(prod.secret_files) == {"/run/secrets/token": SECRET.encode()}
    assert dev.config_hash != prod.config_hash

    request = run_request(
        prod,
        "img",
        name="web-prod-r-1",
        labels={labels.ROLE: "app"},
        network="n",
        service="web",
        environment="prod",
    )
    assert [m.source for m in request.mounts] == [
        "dockroll-web-prod-data",
        "dockroll-web-prod-prod-cache",
    ]
    assert request.labels == {"team": "web", "tier": "prod", labels.ROLE: "app"}
    # Secrets stay out of every repr a log line or a traceback could show.
    for shown in (repr(prod), repr(request), str(prod.settings)):
        assert SECRET not in shown


def test_a_changed_secret_or_setting_is_a_new_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {
        "container": {"secrets": [{"name": "PW", "env": "PW_SOURCE"}]},
        "environments": {"dev": {"port": 8001}},
    }
    config = _config(tmp_path, data)
    monkeypatch.setenv("PW_SOURCE", "one")
    first = resolve_container(config, "dev").config_hash
    assert resolve_container(config, "dev").config_hash == first
    monkeypatch.setenv("PW_SOURCE", "two")
    assert resolve_container(config, "dev").config_hash != first
    data["container"]["memory"] = "1g"  # type: ignore[index]
    assert resolve_container(_config(tmp_path, data), "dev").config_hash not in (first,)


def test_a_file_without_the_new_settings_keeps_its_hash(tmp_path: Path) -> None:
    # Replicas started before these settings existed must not all look changed.
    config = _config(
        tmp_path, {"container": {"env": {"A": "1"}}, "environments": {"dev": {"port": 8001}}}
    )
    before = labels.config_hash(
        {
            "env": {"A": "1"},
            "port": config.container.port,
            "health": config.health.model_dump(),
        }
    )
    assert resolve_container(config, "dev").config_hash == before


def test_missing_env_file_and_secrets_name_the_field_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(
        tmp_path,
        {"environments": {"prod": {"port": 8002, "container": {"env_file": ["prod.env"]}}}},
    )
    with pytest.raises(ConfigError, match=r"environments\.prod\.container\.env_file\.0: env file"):
        resolve_container(config, "prod")

    config = _config(tmp_path, {"container": {"secrets": [{"name": "A", "file": "nope"}]}})
    with pytest.raises(ConfigError, match=r"container\.secrets\.0: the file of secret A"):
        resolve_container(config, "dev")

    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    config = _config(tmp_path, {"container": {"secrets": [{"name": "A", "env": "NOT_SET_HERE"}]}})
    with pytest.raises(ConfigError, match=r"\$NOT_SET_HERE, which is not set"):
        resolve_container(config, "dev")

    monkeypatch.setenv("CLASH", SECRET)
    config = _config(
        tmp_path,
        {"container": {"env": {"A": "plain"}, "secrets": [{"name": "A", "env": "CLASH"}]}},
    )
    with pytest.raises(ConfigError) as caught:
        resolve_container(config, "dev")
    assert SECRET not in str(caught.value)


def test_compose_healthcheck_in_engine_form(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "container": {
                "healthcheck": {
                    "test": "pgrep -f worker",
                    "interval": "2s",
                    "timeout": "500ms",
                    "retries": 3,
                    "start_period": "10s",
                }
            }
        },
    )
    assert resolve_container(config, "dev").healthcheck == {
        "test": ["CMD-SHELL", "pgrep -f worker"],
        "interval": 2_000_000_000,
        "timeout": 500_000_000,
        "start_period": 10_000_000_000,
        "retries": 3,
    }
    config = _config(tmp_path, {"container": {"healthcheck": {"disable": True}}})
    assert resolve_container(config, "dev").healthcheck == {"test": ["NONE"]}


def test_the_engine_adapter_options(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {"container": {"restart": "on-failure:3", "memory": "64m", "entrypoint": "tini --"}},
    )
    request = run_request(
        resolve_container(config, "dev"),
        "img",
        name="x",
        labels={},
        network=None,
        service="web",
        environment="dev",
    )
    assert _restart_policy(request) == {"Name": "on-failure", "MaximumRetryCount": 3}
    options = _run_options(request)
    assert options["mem_limit"] == 64 * 1024**2
    assert options["entrypoint"] == ["tini", "--"]
    job = run_request(
        resolve_container(config, "dev"),
        "img",
        name=None,
        labels={},
        network=None,
        service="web",
        environment="dev",
        job=True,
    )
    assert _restart_policy(job) is None


def test_secret_files_tar_is_readable_and_leaves_run_alone() -> None:
    data = _files_tar({"/run/secrets/token": b"abc"})
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert set(members) == {"run/secrets", "run/secrets/token"}
        assert members["run/secrets/token"].mode == 0o444
        extracted = archive.extractfile("run/secrets/token")
        assert extracted is not None
        assert extracted.read() == b"abc"


def test_host_network_user_stop_signal_and_log_options_reach_the_create_call() -> None:
    from dockroll.engine.port import RunRequest  # noqa: PLC0415 - only here

    request = RunRequest(
        "img",
        host_network=True,
        user="root",
        stop_signal="SIGUSR1",
        log_options={"max-size": "20m"},
    )
    options = _run_options(request)
    assert options["network_mode"] == "host"
    assert options["user"] == "root"
    assert options["stop_signal"] == "SIGUSR1"
    assert options["log_config"].type == "json-file"
    assert options["log_config"].config == {"max-size": "20m"}
    assert not {"network_mode", "user", "stop_signal", "log_config"} & set(
        _run_options(RunRequest("img"))
    )


def test_a_container_in_another_ones_network_namespace() -> None:
    from dockroll.engine.port import RunRequest  # noqa: PLC0415 - only here

    options = _run_options(RunRequest("img", network_container="holder"))

    assert options["network_mode"] == "container:holder"


def test_config_files_are_read_at_deploy_merged_by_target_and_hashed(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "app.ini").write_bytes(b"[app]\nlevel = info\n")
    (tmp_path / "prod.ini").write_bytes(b"[app]\nlevel = warning\n")
    (tmp_path / "extra.bin").write_bytes(b"\xff\x00binary")
    data: dict[str, Any] = {
        "container": {
            "files": [
                {"source": "config/app.ini", "target": "/etc/app/app.ini"},
                {"source": "extra.bin", "target": "/opt/extra.bin", "mode": "0640"},
            ]
        },
        "environments": {
            "dev": {"port": 8001},
            "prod": {
                "port": 8002,
                "container": {"files": [{"source": "prod.ini", "target": "/etc/app/app.ini"}]},
            },
        },
    }
    config = _config(tmp_path, data)
    dev, prod = resolve_container(config, "dev"), resolve_container(config, "prod")
    assert dict(dev.config_files) == {
        "/etc/app/app.ini": (b"[app]\nlevel = info\n", 0o444),
        "/opt/extra.bin": (b"\xff\x00binary", 0o640),
    }
    # An environment's file at the same path replaces the top-level one.
    assert prod.config_files["/etc/app/app.ini"] == (b"[app]\nlevel = warning\n", 0o444)
    assert prod.config_files["/opt/extra.bin"][1] == 0o640
    assert dev.config_hash != prod.config_hash
    request = run_request(
        dev, "img", name="x", labels={}, network=None, service="web", environment="dev"
    )
    assert dict(request.config_files) == dict(dev.config_files)
    assert request.files == {}
    # Contents are not in the settings the hash is shown from, only their digests.
    assert "level = info" not in str(dev.settings)
    assert "level = info" not in repr(request)

    # A changed file, or a changed mode, is a new hash; the same file keeps it.
    assert resolve_container(config, "dev").config_hash == dev.config_hash
    (tmp_path / "config" / "app.ini").write_bytes(b"[app]\nlevel = debug\n")
    changed = resolve_container(config, "dev").config_hash
    assert changed != dev.config_hash
    data["container"]["files"][1]["mode"] = "0600"
    assert resolve_container(_config(tmp_path, data), "dev").config_hash not in (
        changed,
        dev.config_hash,
    )


def test_a_missing_or_clashing_config_file_names_its_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(
        tmp_path,
        {
            "environments": {
                "prod": {
                    "port": 8002,
                    "container": {"files": [{"source": "nope.ini", "target": "/etc/a.ini"}]},
                }
            }
        },
    )
    with pytest.raises(ConfigError) as caught:
        resolve_container(config, "prod")
    assert caught.value.message.startswith(
        "environments.prod.container.files.0: the file for /etc/a.ini"
    )
    assert "nope.ini" in caught.value.message
    assert caught.value.hint is not None

    # A top-level file and an environment's secret at one path meet only when merged.
    (tmp_path / "key").write_text("k", encoding="utf-8")
    monkeypatch.setenv("KEY_SOURCE", SECRET)
    config = _config(
        tmp_path,
        {
            "container": {"files": [{"source": "key", "target": "/run/secrets/key"}]},
            "environments": {
                "prod": {
                    "port": 8002,
                    "container": {"secrets": [{"name": "key", "env": "KEY_SOURCE", "as": "file"}]},
                }
            },
        },
    )
    with pytest.raises(ConfigError, match=r"^container\.files\.0: file /run/secrets/key is also"):
        resolve_container(config, "prod")

    config = _config(
        tmp_path,
        {
            "container": {"files": [{"source": "key", "target": "/data/app.ini"}]},
            "environments": {"prod": {"port": 8002, "container": {"volumes": ["data:/data"]}}},
        },
    )
    with pytest.raises(ConfigError, match=r"^container\.files\.0: file /data/app.ini is in the"):
        resolve_container(config, "prod")
    assert resolve_container(config, "dev").config_files["/data/app.ini"] == (b"k", 0o444)

    (tmp_path / "big").write_bytes(b"x" * (MAX_FILE_SIZE + 1))
    config = _config(tmp_path, {"container": {"files": [{"source": "big", "target": "/etc/big"}]}})
    with pytest.raises(ConfigError, match="Swarm's limit"):
        resolve_container(config, "dev")


def test_config_files_tar_keeps_their_mode_and_leaves_existing_directories_alone() -> None:
    data = _files_tar(
        {"/run/secrets/token": b"abc"},
        {"/etc/app/app.ini": (b"[app]", 0o640), "/app.conf": (b"x", 0o444)},
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert set(members) == {"run/secrets", "run/secrets/token", "etc/app/app.ini", "app.conf"}
        assert members["etc/app/app.ini"].mode == 0o640
        assert (members["etc/app/app.ini"].uid, members["etc/app/app.ini"].gid) == (0, 0)
        assert members["app.conf"].mode == 0o444
        extracted = archive.extractfile("etc/app/app.ini")
        assert extracted is not None
        assert extracted.read() == b"[app]"
