"""Listening addresses (``127.0.0.1:8080``, ``0.0.0.0:80``, ``[::]:443``) and when two clash.

Pure values shared by the config (which checks every environment's listeners
against every other's when dockroll.yml loads) and the router (which publishes
them).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

__all__ = [
    "EDGE_PORT",
    "ROUTE_DEPTH",
    "ListenAddress",
    "parse_hostname",
    "parse_listen_address",
    "parse_route",
    "route_hostname",
]

EDGE_PORT = 8090
"""The routers' listener for the edge (PROXY protocol), on the edge network only."""

_FORMS = "write it as IPv4:PORT or [IPv6]:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:80 or [::]:80"


@dataclass(frozen=True, order=True)
class ListenAddress:
    """An IP address and TCP port a router listens on, on the engine's host."""

    host: str
    """The IP literal, without brackets (``0.0.0.0`` and ``::`` are every address)."""
    port: int

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.host)

    @property
    def every_address(self) -> bool:
        return self.ip.is_unspecified

    @property
    def local_host(self) -> str:
        """Where a client on the engine's host reaches it (loopback for a wildcard)."""
        if not self.every_address:
            return str(self)[: -len(f":{self.port}")]
        return "127.0.0.1" if self.ip.version == 4 else "[::1]"

    def clashes_with(self, other: ListenAddress) -> bool:
        """Whether both cannot be bound at once: same port, and same address or a wildcard
        of the same IP version covering the other."""
        if self.port != other.port or self.ip.version != other.ip.version:
            return False
        return self.ip == other.ip or self.every_address or other.every_address

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.ip.version == 6 else f"{self.host}:{self.port}"

    def try_bind(self) -> None:
        """Bind a socket to it on this host and let go; OSError when it is taken."""
        family = socket.AF_INET6 if self.ip.version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.host, self.port))


def parse_listen_address(text: str) -> ListenAddress:
    """``IPv4:PORT`` or ``[IPv6]:PORT``; ValueError saying what is wrong otherwise."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} has no port: {_FORMS}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, e.g. [::]:80")
    else:
        version = 4
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{text!r}: {host!r} is not an IP address (the engine publishes on IPs only); {_FORMS}"
        ) from None
    if ip.version != version:
        raise ValueError(f"{text!r}: {_FORMS}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return ListenAddress(str(ip), int(port_text))


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def parse_hostname(text: str) -> str:
    """A hostname an environment is served under, lower-cased; ValueError otherwise."""
    host = text.strip().lower().rstrip(".")
    if not _HOSTNAME.match(host):
        raise ValueError(f"{text!r} is not a hostname: use letters, digits, '-' and dots")
    return host


_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+$")
ROUTE_DEPTH = 4
"""How many path segments a route's prefix may have."""


def parse_route(text: str) -> str:
    """``hostname`` or ``hostname/path/prefix`` (whole segments, at most 4); ValueError otherwise.

    The hostname is lower-cased; the prefix keeps its case and loses a trailing slash.
    """
    host, slash, prefix = text.strip().partition("/")
    name = parse_hostname(host)
    segments = [segment for segment in prefix.rstrip("/").split("/")] if prefix.strip("/") else []
    if slash and not segments:
        return name
    for segment in segments:
        if not _SEGMENT.match(segment) or segment in {".", ".."}:
            raise ValueError(
                f"{text!r}: the path prefix {'/' + prefix!r} has an empty or unusual segment; "
                "write it as hostname/segment[/segment], e.g. shop.example.com/api"
            )
    if len(segments) > ROUTE_DEPTH:
        raise ValueError(
            f"{text!r}: a path prefix has at most {ROUTE_DEPTH} segments; "
            f"{'/' + prefix!r} has {len(segments)}"
        )
    return "/".join([name, *segments])


def route_hostname(route: str) -> str:
    """The hostname of a route (``shop.example.com/api`` → ``shop.example.com``)."""
    return route.partition("/")[0]
