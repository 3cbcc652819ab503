"""Holding requests at the router, and the maintenance page: the config and runtime parts.

While an environment is *held*, every new request waits inside HAProxy (not
refused, not answered 503) and flows to the backend as soon as the hold is
released. A hold has a deadline: requests still waiting then, and any arriving
after it until the release, get ``503`` with ``Retry-After``. *Maintenance*
answers every request with a 503 page and ``Retry-After`` at once.

How: a small Lua action (HAProxy 2.6 runs Lua 5.3) sleeps in 50 ms steps while
the ``hold`` flag of the router's state map is ``on`` and its deadline has not
passed. The flags live in a map file that the runtime API changes (``set map``),
so holding and releasing change no config and restart nothing; dockroll also
writes the file, so a router that restarts keeps its flags, and a reload carries
them (``show map``). Other mechanisms were ruled out: ``set maxconn frontend``
to 0 leaves requests on connections already open flowing, and raising it again
made HAProxy 2.6.12 abort (a deadlock in ``resume_listener``); backend queueing
needs every server at its ``maxconn``, which cannot be set to 0 (0 means no
limit).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "HOLD_ACTION",
    "LUA_FILE",
    "STATE_MAP",
    "frontend_lines",
    "global_lines",
    "hold_script",
    "parse_map",
    "parse_state",
    "render_state",
]

STATE_MAP = "state.map"
LUA_FILE = "hold.lua"
HOLD_ACTION = "dockroll_hold"
_POLL_MS = 50
RETRY_AFTER = 5
"""Seconds a client is told to wait after a hold's deadline passed."""
MAINTENANCE_RETRY_AFTER = 30

DEFAULT_STATE = {"hold": "off", "hold_until": "0", "maintenance": "off"}


def hold_script(state_map: str) -> str:
    """The Lua action that holds a request while the map says so, until the deadline."""
    return f"""-- dockroll: hold each request while the environment is held, until the deadline.
local flags = Map.new("{state_map}", Map._str)

core.register_action("{HOLD_ACTION}", {{ "http-req" }}, function(txn)
    while flags:lookup("hold") == "on" do
        local now = core.now()
        local deadline = tonumber(flags:lookup("hold_until") or "0") or 0
        if now.sec + now.usec / 1000000 >= deadline then
            txn:set_var("txn.dockroll_hold_expired", 1)
            return
        end
        core.msleep({_POLL_MS})
    end
end, 0)
"""


def global_lines(config_dir: str) -> list[str]:
    return [f"    lua-load {config_dir}/{LUA_FILE}"]


def frontend_lines(config_dir: str) -> list[str]:
    """Rules of the public frontend: maintenance first, then the hold, then its deadline."""
    state = f"{config_dir}/{STATE_MAP}"
    return [
        f"    acl dockroll_maintenance str(maintenance),map({state},off) -m str on",
        f"    acl dockroll_held str(hold),map({state},off) -m str on",
        "    http-request return status 503 content-type text/html "
        '"string" "<!doctype html><title>Down for maintenance</title>'
        '<h1>Down for maintenance</h1><p>Back shortly.</p>" '
        f"hdr Retry-After {MAINTENANCE_RETRY_AFTER} if dockroll_maintenance",
        f"    http-request lua.{HOLD_ACTION} if dockroll_held",
        "    http-request return status 503 content-type text/plain "
        '"string" "held too long: retry shortly\\n" '
        f"hdr Retry-After {RETRY_AFTER} if {{ var(txn.dockroll_hold_expired) -m int 1 }}",
    ]


def render_state(state: Mapping[str, str]) -> str:
    """The map file's text: one ``key value`` line each."""
    merged = {**DEFAULT_STATE, **state}
    return "".join(f"{key} {value}\n" for key, value in merged.items())


def parse_state(text: str) -> dict[str, str]:
    """The map file's text (as :func:`render_state` writes it) as a dict."""
    entries = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value:
            entries[key] = value.strip()
    return entries


def parse_map(text: str) -> dict[str, str]:
    """``show map`` output (``<id> <key> <value>`` lines) as a dict."""
    entries = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("0x"):
            entries[parts[1]] = parts[2]
    return entries
