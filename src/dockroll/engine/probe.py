"""One question to an engine that may not be there: does it answer, and with which version?

Setting up the local engine asks it again and again while dockerd starts. The
probe connects nowhere before it has to and keeps no connection open, and a
silent engine is an answer (:class:`~dockroll.errors.EngineUnavailable` with
the reason), not a crash.
"""

from __future__ import annotations

import os
import re
import socket

from dockroll.errors import EngineUnavailable

__all__ = ["engine_version"]


def engine_version(timeout: float) -> str:
    """The version of the engine the environment names (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``
    …; the local socket by default).

    Raises EngineUnavailable saying why when it is silent; its message is the reason
    alone, e.g. ``[Errno 111] Connection refused``.
    """
    endpoint = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if endpoint.startswith("unix://"):
        # The SDK leaks its socket when a unix connect fails; find that out first.
        path = endpoint.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect(path)
            except OSError as exc:
                raise EngineUnavailable(
                    f"cannot connect to {path}: {exc.strerror or exc}"
                ) from None
    # Only once asked: the SDK is a heavy import.
    import docker  # noqa: PLC0415

    try:
        # A fixed minimum API version keeps the constructor off the network (the
        # "auto" default connects there and leaks the socket when that fails);
        # /version without the version prefix answers for every engine.
        client = docker.from_env(
            version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=max(1, int(timeout))
        )
    except Exception as exc:  # any failure to reach the engine means "not answering"
        raise EngineUnavailable(_reason(exc)) from None
    try:
        version = client.api.version(api_version=False)
        return str(version.get("Version", "unknown"))
    except Exception as exc:  # same: requests, docker and OS errors all mean silence
        raise EngineUnavailable(_reason(exc)) from None
    finally:
        client.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # requests buries the cause ("[Errno 111] Connection refused") in a long repr
    causes = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    return causes[-1] if causes else text.splitlines()[0]
