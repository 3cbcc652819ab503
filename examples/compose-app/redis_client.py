"""Just enough of the Redis protocol (RESP) for the example, with the standard library."""

from __future__ import annotations

import os
import socket
from typing import Any, BinaryIO


class RedisError(Exception):
    pass


def redis(*args: str) -> Any:
    """Send one command to ``$REDIS_HOST:$REDIS_PORT`` and return its reply."""
    host, port = os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379"))
    parts = [str(arg).encode() for arg in args]
    payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(payload)
        return _reply(conn.makefile("rb"))


def _reply(stream: BinaryIO) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_reply(stream) for _ in range(count)]
    raise RedisError(f"unexpected reply {line!r}")
