"""Building runtime API commands, validating their arguments, reading refusals."""

from __future__ import annotations

import pytest

from dockroll.errors import RouterError
from dockroll.router import CheckSettings
from dockroll.router.runtime_api import (
    add_server_commands,
    refusal,
    set_weights_commands,
    validate_server_name,
)


def test_add_server_keeps_a_new_server_down_until_its_first_check() -> None:
    commands = add_server_commands(
        "app", "web-1", "172.20.0.5", 5000, weight=0, check=CheckSettings()
    )

    assert commands == [
        "add server app/web-1 172.20.0.5:5000 weight 0 check inter 500 fall 2 rise 1",
        "enable server app/web-1",
        "set server app/web-1 health down",
        "enable health app/web-1",
    ]


def test_add_server_without_check() -> None:
    commands = add_server_commands("app", "web-1", "10.0.0.2", 80, weight=7, check=None)

    assert commands == ["add server app/web-1 10.0.0.2:80 weight 7", "enable server app/web-1"]


def test_check_timing_is_configurable() -> None:
    (add, *_) = add_server_commands(
        "app", "w", "10.0.0.2", 80, weight=1, check=CheckSettings(interval_ms=250, fall=3, rise=2)
    )

    assert add.endswith("check inter 250 fall 3 rise 2")


@pytest.mark.parametrize(
    ("name", "address", "port", "weight", "message"),
    [
        ("web 1", "10.0.0.2", 80, 0, "not a valid router server name"),
        ("web;del", "10.0.0.2", 80, 0, "not a valid router server name"),
        ("", "10.0.0.2", 80, 0, "not a valid router server name"),
        ("web", "web.internal", 80, 0, "not an IPv4 address"),
        ("web", "::1", 80, 0, "not an IPv4 address"),
        ("web", "10.0.0.2", 0, 0, "port 0 is out of range"),
        ("web", "10.0.0.2", 80, 257, "weight 257 is out of range"),
        ("web", "10.0.0.2", 80, -1, "weight -1 is out of range"),
    ],
)
def test_add_server_rejects_what_haproxy_would_misread(
    name: str, address: str, port: int, weight: int, message: str
) -> None:
    with pytest.raises(RouterError, match=message):
        add_server_commands("app", name, address, port, weight=weight, check=None)


def test_names_haproxy_accepts() -> None:
    assert validate_server_name("web-v1.2.3_r:7") == "web-v1.2.3_r:7"


def test_weight_changes_raise_before_they_cut() -> None:
    commands = set_weights_commands("app", {"blue": 0, "green": 100}, {"blue": 100, "green": 0})

    assert commands == ["set weight app/green 100", "set weight app/blue 0"]


def test_unchanged_weights_count_as_raises() -> None:
    commands = set_weights_commands("app", {"a": 10, "b": 50, "c": 40}, {"a": 50, "b": 50, "c": 0})

    assert commands == ["set weight app/b 50", "set weight app/c 40", "set weight app/a 10"]


def test_set_weights_validates_every_weight() -> None:
    with pytest.raises(RouterError, match="weight 300"):
        set_weights_commands("app", {"a": 1, "b": 300}, {})
    with pytest.raises(RouterError, match="weight True"):
        set_weights_commands("app", {"a": True}, {})


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ("\n", ""),
        ("\n\n\n", ""),
        ("New server registered.\n\n", ""),
        ("\nServer deleted.\n", ""),
        ("\nNo such server.\n\n", "No such server."),
        (
            "Only servers in maintenance mode can be deleted.\n",
            "Only servers in maintenance mode can be deleted.",
        ),
        ("\nAbsolute weight can only be between 0 and 256 inclusive.\n\n\n", "Absolute weight"),
    ],
)
def test_refusal_finds_haproxy_complaints(answer: str, complaint: str) -> None:
    found = refusal(answer)

    assert found.startswith(complaint) if complaint else found == ""
