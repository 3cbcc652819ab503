"""Where each environment's router listens: listeners, the metrics listener, and clashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.config import Config, load_config
from dockroll.errors import ConfigError
from dockroll.listeners import ListenAddress, parse_listen_address

HEAD = "service: web\nimage: 127.0.0.1:5000/team/web\nenvironments:\n"


def _load(tmp_path: Path, environments: str) -> Config:
    path = tmp_path / "dockroll.yml"
    path.write_text(HEAD + environments, encoding="utf-8")
    return load_config(path)


def _error(tmp_path: Path, environments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, environments)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("127.0.0.1:8081", "127.0.0.1", 8081, "127.0.0.1:8081"),
        ("0.0.0.0:80", "0.0.0.0", 80, "0.0.0.0:80"),
        ("[::]:80", "::", 80, "[::]:80"),
        (" [0:0::1]:443 ", "::1", 443, "[::1]:443"),
    ],
)
def test_listen_addresses_parse(text: str, host: str, port: int, shown: str) -> None:
    address = parse_listen_address(text)

    assert (address.host, address.port, str(address)) == (host, port, shown)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8080", "has no port"),
        (":8080", "has no port"),
        ("localhost:80", "not an IP address"),
        ("::1:80", "brackets"),
        ("[127.0.0.1]:80", "IPv6"),
        ("127.0.0.1:0", "from 1 to 65535"),
        ("127.0.0.1:http", "from 1 to 65535"),
    ],
)
def test_bad_listen_addresses_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_listen_address(text)


def test_clashes_are_same_port_and_overlapping_addresses() -> None:
    any4, loop4, other4 = (
        ListenAddress("0.0.0.0", 80),
        ListenAddress("127.0.0.1", 80),
        ListenAddress("10.0.0.1", 80),
    )
    any6 = ListenAddress("::", 80)

    assert any4.clashes_with(loop4)
    assert loop4.clashes_with(any4)
    assert not loop4.clashes_with(other4)
    assert not any4.clashes_with(any6)
    assert not loop4.clashes_with(ListenAddress("127.0.0.1", 81))
    assert any6.clashes_with(ListenAddress("::1", 80))


def test_the_default_listens_on_loopback_at_the_port_with_metrics_1000_above(
    tmp_path: Path,
) -> None:
    env = _load(tmp_path, "  dev: {port: 8081}\n").environments["dev"]

    assert [str(a) for a in env.listeners()] == ["127.0.0.1:8081"]
    assert str(env.metrics_address()) == "127.0.0.1:9081"


def test_listeners_and_an_explicit_metrics_listener(tmp_path: Path) -> None:
    env = _load(
        tmp_path,
        "  prod:\n"
        "    router:\n"
        "      listen: ['0.0.0.0:80', {address: '[::]:80'}]\n"
        "      metrics: 127.0.0.1:9180\n",
    ).environments["prod"]

    assert env.port == 80
    assert [str(a) for a in env.listeners()] == ["0.0.0.0:80", "[::]:80"]
    assert str(env.metrics_address()) == "127.0.0.1:9180"


def test_a_listener_on_another_environments_metrics_port_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, "  dev: {port: 8081}\n  staging: {port: 7081}\n")

    assert "environments.staging.port + 1000 (metrics) 127.0.0.1:8081" in message
    assert "environments.dev.port 127.0.0.1:8081" in message


def test_a_wildcard_listener_clashes_with_another_environments_loopback_one(
    tmp_path: Path,
) -> None:
    message = _error(
        tmp_path,
        "  dev: {port: 8081}\n"
        "  prod: {router: {listen: ['0.0.0.0:9081'], metrics: '127.0.0.1:9500'}}\n",
    )

    assert "environments.prod.router.listen[0] 0.0.0.0:9081 clashes with" in message
    assert "environments.dev.port + 1000 (metrics) 127.0.0.1:9081" in message


def test_environments_on_different_engines_may_use_the_same_addresses(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "  dev: {port: 8081, router: {metrics: '127.0.0.1:9500'}}\n"
        "  prod:\n"
        "    engine: ssh://deploy@prod.example\n"
        "    router: {listen: ['0.0.0.0:80'], metrics: '127.0.0.1:9500'}\n",
    )

    assert str(config.environments["prod"].metrics_address()) == "127.0.0.1:9500"


@pytest.mark.parametrize(
    ("environments", "says"),
    [
        ("  prod: {router: {listen: ['localhost:80']}}\n", "'localhost' is not an IP address"),
        ("  prod: {router: {listen: ['0.0.0.0:80', '127.0.0.1:80']}}\n", "cannot both listen"),
        ("  prod: {router: {listen: ['[::1]:80'], metrics: '[::1]:80'}}\n", "cannot both listen"),
        ("  prod: {port: 81, router: {listen: ['0.0.0.0:80']}}\n", "none of router.listen"),
        ("  prod: {port: 65000}\n", "set router.metrics"),
        ("  prod: {router: {listen: []}}\n", "port: Field required"),
        ("  prod: {router: {listen: ['0.0.0.0:80'], metrics: 'x'}}\n", "router.metrics"),
    ],
)
def test_bad_listeners_name_the_field(tmp_path: Path, environments: str, says: str) -> None:
    assert says in _error(tmp_path, environments)


def test_config_check_shows_where_each_environment_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dockroll.cli.app import main  # noqa: PLC0415 - the CLI, only for this test

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dockroll.yml").write_text(
        HEAD
        + "  dev: {port: 8081}\n"
        + "  prod:\n"
        + "    router:\n"
        + "      listen: ['0.0.0.0:80', {address: '[::]:443', tls: true}]\n"
        + "      tls: {cert: c.pem, key: k.pem}\n",
        encoding="utf-8",
    )

    assert main(["--json", "config", "check"]) == 0
    data = json.loads(capsys.readouterr().out)
    listens = {env["name"]: (env["listen"], env["metrics"]) for env in data["environments"]}

    assert listens == {
        "dev": (["127.0.0.1:8081"], "127.0.0.1:9081"),
        "prod": (["0.0.0.0:80", "[::]:443 (tls)"], "127.0.0.1:1080"),
    }


def test_hosts_are_served_by_the_edge(tmp_path: Path) -> None:
    env = _load(
        tmp_path,
        "  prod:\n    port: 8081\n    hosts: [Shop.Example.com.]\n"
        "    edge: {listen: ['0.0.0.0:80']}\n",
    ).environments["prod"]

    assert env.hosts == ["shop.example.com"]
    assert env.edge is not None
    assert [str(a) for a in env.edge.addresses()] == ["0.0.0.0:80"]


@pytest.mark.parametrize(
    ("environments", "says"),
    [
        ("  prod: {port: 8081, hosts: [shop.test]}\n", "need an edge listener"),
        ("  prod: {port: 8081, edge: {listen: ['0.0.0.0:80']}}\n", "no hosts"),
        ("  prod: {port: 8081, hosts: ['shop test'], edge: {listen: [':80']}}\n", "not a hostname"),
        (
            "  a: {port: 8081, hosts: [shop.test], edge: {listen: ['0.0.0.0:80']}}\n"
            "  b: {port: 8082, hosts: [shop.test], edge: {listen: ['0.0.0.0:80']}}\n",
            "both claim shop.test",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:80']}}\n"
            "  b: {port: 8082, hosts: [b.test], edge: {listen: ['0.0.0.0:8000']}}\n",
            "one edge serves them both",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:8081']}}\n",
            "the edge and the routers need ports of their own",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:80'],"
            " tls: {cert: c.pem, key: k.pem}}}\n",
            "no edge listener serves TLS",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:80',"
            " {address: '0.0.0.0:443', tls: true}], tls: {cert: c.pem}}}\n",
            "edge.tls needs cert and key",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:80',"
            " {address: '0.0.0.0:443', tls: true}], tls: {cert: c.pem, key: k.pem,"
            " acme: {directory: 'https://ca.test/dir'}}}}\n",
            "both certificate files and acme",
        ),
        (
            "  a: {port: 8081, hosts: [a.test], edge: {listen: ['0.0.0.0:80',"
            " {address: '0.0.0.0:443', tls: true}], tls: {acme: {directory: 'http://ca.test'}}}}\n",
            "must be an https:// URL",
        ),
        (
            "  a: {port: 8081, hosts: ['a.test/1/2/3/4/5'], edge: {listen: ['0.0.0.0:80']}}\n",
            "at most 4 segments",
        ),
        (
            "  a: {port: 8081, hosts: ['a.test//x'], edge: {listen: ['0.0.0.0:80']}}\n",
            "empty or unusual segment",
        ),
        (
            "  a: {port: 8081, hosts: [a.test/api], edge: {listen: ['0.0.0.0:80']}}\n"
            "  b: {port: 8082, hosts: [A.test/api/], edge: {listen: ['0.0.0.0:80']}}\n",
            "both claim a.test/api",
        ),
    ],
)
def test_bad_hosts_and_edges_name_the_field(tmp_path: Path, environments: str, says: str) -> None:
    assert says in _error(tmp_path, environments)


def test_hosts_take_path_prefixes_and_the_edge_tls_listeners(tmp_path: Path) -> None:
    env = _load(
        tmp_path,
        "  prod:\n    port: 8081\n    hosts: [Shop.Example.com/Api/v1/, shop.example.com]\n"
        "    edge:\n      listen: ['0.0.0.0:80', {address: '[::]:443', tls: true}]\n"
        "      tls: {acme: {directory: 'https://ca.test/dir'}, hsts: 720h}\n",
    ).environments["prod"]

    assert env.hosts == ["shop.example.com/Api/v1", "shop.example.com"]
    assert env.edge is not None
    assert [(str(a.listen_address), a.tls) for a in env.edge.listen] == [
        ("0.0.0.0:80", False),
        ("[::]:443", True),
    ]
    assert env.edge.tls is not None
    assert env.edge.tls.hsts == 30 * 86400
    assert env.edge.tls.acme is not None
    assert env.edge.tls.acme.renew_before == 30 * 86400
