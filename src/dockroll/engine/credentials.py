"""The docker client's credential store, asked through docker-py.

``docker login`` keeps a registry's credentials in the client's config file
(base64 ``auth`` entries) or hands them to a credential helper
(``docker-credential-<name>``). docker-py implements both; dockroll uses its
implementation rather than a copy, and only here, on the engine's side.
"""

from __future__ import annotations

from docker.auth import decode_auth
from docker.credentials import PROGRAM_PREFIX, Store, StoreError

from dockroll.errors import EngineError

__all__ = ["HELPER_PREFIX", "decode_auth_entry", "helper_credentials"]

HELPER_PREFIX = PROGRAM_PREFIX
"""A credential helper ``name`` is the program ``docker-credential-<name>``."""


def decode_auth_entry(encoded: str) -> tuple[str, str]:
    """The username and secret of a config's ``auth`` entry.

    Raises ValueError when it is not base64 of UTF-8 ``user:secret``.
    """
    user, secret = decode_auth(encoded)
    return str(user), str(secret)


def helper_credentials(helper: str, host: str) -> tuple[str, str] | None:
    """The username and secret ``docker-credential-<helper>`` keeps for ``host``.

    None when it keeps nothing usable for it; raises :class:`EngineError` when
    the helper fails or answers something that is not its protocol.
    """
    try:
        found = Store(helper).get(host)
    except (StoreError, ValueError, KeyError, OSError) as exc:
        raise EngineError(f"{HELPER_PREFIX}{helper} failed for {host}: {exc}") from None
    if not isinstance(found, dict):
        return None
    user, secret = found.get("Username"), found.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or not user:
        return None
    return user, secret
