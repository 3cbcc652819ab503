"""Resolve from the first registry that answers: a primary, then its mirrors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import httpx

from dockroll.errors import (
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
)
from dockroll.refs import Digest, ImageRef
from dockroll.registry._client import RegistryClient
from dockroll.registry._media import Manifest

_log = logging.getLogger(__name__)

__all__ = ["Attempt", "FallbackResolver", "Resolution"]

Outcome = Literal["answered", "not_found", "unavailable", "denied", "failed"]


@dataclass(frozen=True)
class Attempt:
    """What one registry said when asked."""

    registry: str
    outcome: Outcome
    message: str = ""


@dataclass(frozen=True)
class Resolution:
    """Which registry answered, with what digest, after which attempts."""

    registry: str
    repository: str
    digest: Digest
    attempts: tuple[Attempt, ...]
    manifest: Manifest | None = None

    @property
    def ref(self) -> ImageRef:
        """``registry/repository@digest`` on the registry that answered, ready to pull."""
        return ImageRef(registry=self.registry, repository=self.repository, digest=self.digest)

    @property
    def fell_back(self) -> bool:
        """Whether a registry before the one that answered failed."""
        return len(self.attempts) > 1


class FallbackResolver:
    """Ask registries in order; the first that answers wins.

    Unreachable registries, timeouts and server errors move on to the next;
    so do a missing manifest and refused credentials, each recorded in the
    result's ``attempts`` so a deploy can report that it fell back and why.
    """

    def __init__(
        self,
        registries: Sequence[str | RegistryClient],
        *,
        timeout: float = 5.0,
        client_factory: Callable[[str], RegistryClient] | None = None,
    ) -> None:
        if not registries:
            raise ValueError("a FallbackResolver needs at least one registry")
        self._owned: list[RegistryClient] = []
        self._clients: list[RegistryClient] = []
        for entry in registries:
            if isinstance(entry, RegistryClient):
                self._clients.append(entry)
                continue
            client = (
                client_factory(entry)
                if client_factory
                else RegistryClient(entry, timeout=httpx.Timeout(timeout))
            )
            self._owned.append(client)
            self._clients.append(client)

    @property
    def registries(self) -> list[str]:
        return [client.host for client in self._clients]

    def resolve(self, repository: str, reference: str) -> Resolution:
        """The digest of ``repository:reference`` from the first registry that has it."""
        return self._ask(repository, reference, fetch=False)

    def get_manifest(self, repository: str, reference: str) -> Resolution:
        """Like :meth:`resolve`, with the manifest bytes in ``manifest``."""
        return self._ask(repository, reference, fetch=True)

    def _ask(self, repository: str, reference: str, *, fetch: bool) -> Resolution:
        attempts: list[Attempt] = []
        for client in self._clients:
            try:
                if fetch:
                    manifest: Manifest | None = client.get_manifest(repository, reference)
                    assert manifest is not None
                    digest = manifest.digest
                else:
                    manifest = None
                    digest = client.resolve(repository, reference)
            except ManifestNotFound as exc:
                _log.info(
                    "%s has no %s:%s; trying the next registry", client.host, repository, reference
                )
                attempts.append(Attempt(client.host, "not_found", exc.message))
            except RegistryUnavailable as exc:
                _log.warning(
                    "%s is unavailable, trying the next registry: %s", client.host, exc.message
                )
                attempts.append(Attempt(client.host, "unavailable", exc.message))
            except RegistryAuthError as exc:
                _log.warning(
                    "%s refused the credentials, trying the next registry: %s",
                    client.host,
                    exc.message,
                )
                attempts.append(Attempt(client.host, "denied", exc.message))
            except RegistryError as exc:
                _log.warning("%s failed, trying the next registry: %s", client.host, exc.message)
                attempts.append(Attempt(client.host, "failed", exc.message))
            else:
                attempts.append(Attempt(client.host, "answered"))
                return Resolution(client.host, repository, digest, tuple(attempts), manifest)
        raise _give_up(repository, reference, attempts)

    def close(self) -> None:
        """Close the clients this resolver created (not those it was given)."""
        for client in self._owned:
            client.close()

    def __enter__(self) -> FallbackResolver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _give_up(repository: str, reference: str, attempts: list[Attempt]) -> RegistryError:
    sep = "@" if reference.startswith("sha256:") else ":"
    said = "; ".join(f"{attempt.registry}: {attempt.message}" for attempt in attempts)
    message = f"no registry could resolve {repository}{sep}{reference} — {said}"
    outcomes = {attempt.outcome for attempt in attempts}
    if outcomes == {"not_found"}:
        return ManifestNotFound(message, hint="push the image to the primary registry first")
    if outcomes == {"denied"}:
        return RegistryAuthError(message)
    return RegistryUnavailable(message, hint="start the registries or fix the mirror list")
