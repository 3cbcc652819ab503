"""Who may use the dashboard's controls: bearer tokens from a file, each naming an actor."""

from __future__ import annotations

import hmac
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dockroll.errors import UsageError

__all__ = ["Tokens", "load_tokens"]


@dataclass(frozen=True)
class Tokens:
    """Token → actor. Empty: the dashboard is read-only."""

    by_token: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.by_token)

    def actor(self, presented: str) -> str | None:
        """The actor ``presented`` belongs to; None when it matches no token."""
        found = None
        for token, actor in self.by_token.items():
            # Compare with every token in constant time, whichever matches.
            if hmac.compare_digest(token.encode(), presented.encode()):
                found = actor
        return found


def load_tokens(path: Path) -> Tokens:
    """Read ``path``: one token a line, ``NAME:TOKEN`` to name its actor (else ``ui``);
    blank lines and ``#`` comments are skipped. Tokens need 16 characters or more."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise UsageError(
            f"cannot read the token file {path}: {exc.strerror or exc}",
            hint='create it with one token a line, e.g. `echo "ada:$(openssl rand -hex 16)" '
            "> tokens && chmod 600 tokens`",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"the token file {path} can be read by others",
            hint=f"chmod 600 {path}",
        )
    by_token: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.rpartition(":")
        actor = name.strip() if sep and name.strip() else "ui"
        token = token.strip()
        if len(token) < 16:
            raise UsageError(
                f"{path}, line {number}: a token needs at least 16 characters",
                hint="`openssl rand -hex 16` makes one",
            )
        by_token[token] = actor
    if not by_token:
        raise UsageError(f"the token file {path} holds no token", hint="one token a line")
    return Tokens(by_token)
