"""The one exception tree of dockroll.

Every error the library raises on purpose derives from :class:`DockrollError`.
Each carries a message that says what happened *and* what to do about it, and
an exit code the CLI uses unchanged (documented in the README)::

    DockrollError                      exit 1
    ├── UsageError                     exit 2   bad arguments or input
    │   ├── ConfigError                exit 2   dockroll.yml is missing or invalid
    │   └── TagRuleError               exit 2   a tag rule or flavor line is malformed
    ├── EngineError                    exit 3   the container engine failed
    │   ├── EngineUnavailable          exit 3   no engine answers
    │   ├── ContainerNotFound          exit 3   no such container (or it does not run)
    │   └── PortInUse                  exit 3   a port to publish is taken on the host
    ├── BuildError                     exit 4   the image build failed
    ├── SmokeTestError                 exit 5   the built image did not start or answer
    ├── RegistryError                  exit 6   the registry failed
    │   ├── RegistryUnavailable        exit 6   no registry answers
    │   ├── RegistryAuthError          exit 6   the registry refused the credentials
    │   ├── ManifestNotFound           exit 6   no manifest under that tag or digest
    │   └── DigestMismatch             exit 6   content does not hash to its digest
    ├── DevEnvError                    exit 7   local infrastructure could not be set up
    ├── LedgerError                    exit 8   the ledger database failed or holds no such record
    ├── PolicyRefusal                  exit 9   a promotion gate said no
    ├── RouterError                    exit 10  the router (HAProxy) failed or refused a change
    │   └── CertificateError           exit 15  an ACME CA could not issue the certificate
    ├── RolloutError                   exit 11  a rollout failed and was rolled back
    ├── LockHeld                       exit 12  someone else holds the environment's lock
    │   └── LockLost                   exit 12  the lock expired or was forced away mid-command
    ├── AnalysisError                  exit 13  a metric provider failed or answered nonsense
    └── ScanError                      exit 14  the scanner found vulnerabilities at or above
                                                the gate, or could not run

The CLI catches :class:`DockrollError` once, prints the message and exits with
``exit_code``; anything else is a bug and exits 1 with a traceback under
``--debug``.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "BuildError",
    "CertificateError",
    "ConfigError",
    "ContainerNotFound",
    "DevEnvError",
    "DigestMismatch",
    "DockrollError",
    "EngineError",
    "EngineUnavailable",
    "LedgerError",
    "LockHeld",
    "LockLost",
    "ManifestNotFound",
    "PolicyRefusal",
    "PortInUse",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnavailable",
    "RolloutError",
    "RouterError",
    "ScanError",
    "SmokeTestError",
    "TagRuleError",
    "UsageError",
]


class DockrollError(Exception):
    """Root of every error dockroll raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(DockrollError):
    """Arguments or input the user can correct."""

    exit_code = 2


class ConfigError(UsageError):
    """dockroll.yml is missing, unreadable or does not match the schema."""


class TagRuleError(UsageError):
    """A tag rule, flavor line or computed tag is invalid."""


class EngineError(DockrollError):
    """The container engine refused or failed an operation."""

    exit_code = 3


class EngineUnavailable(EngineError):
    """No container engine answers at the configured endpoint."""


class ContainerNotFound(EngineError):
    """The engine has no such container, or it does not run where it must."""


class PortInUse(EngineError):
    """The engine could not publish a port: something else listens on that address."""


class BuildError(DockrollError):
    """The image build failed."""

    exit_code = 4


class SmokeTestError(DockrollError):
    """The built image did not become healthy or did not report what was built into it."""

    exit_code = 5


class RegistryError(DockrollError):
    """The registry refused or failed an operation."""

    exit_code = 6


class RegistryUnavailable(RegistryError):
    """No registry answers at the configured address."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (401/403)."""


class ManifestNotFound(RegistryError):
    """The registry has no manifest under that tag or digest (404)."""


class DigestMismatch(RegistryError):
    """Content read or written does not hash to the digest it should have."""


class DevEnvError(DockrollError):
    """Local development infrastructure could not be set up."""

    exit_code = 7


class LedgerError(DockrollError):
    """The ledger database is unreachable, could not be migrated, or lacks a record."""

    exit_code = 8


class PolicyRefusal(DockrollError):
    """A promotion gate refused; the message names each gate and how to satisfy it."""

    exit_code = 9


class RouterError(DockrollError):
    """The router could not be started, or refused or failed a change to its servers."""

    exit_code = 10


class RolloutError(DockrollError):
    """A rollout failed and was rolled back; the previous release keeps serving."""

    exit_code = 11


class LockHeld(DockrollError):
    """Someone else holds the environment's deployment lock."""

    exit_code = 12


class LockLost(LockHeld):
    """The lock a command held expired and was taken over, or was released by force."""

    exit_code = 12


class AnalysisError(DockrollError):
    """A metric provider (router stats, Prometheus, an HTTP endpoint) failed or answered
    something analysis cannot read."""

    exit_code = 13


class ScanError(DockrollError):
    """The scanner found vulnerabilities at or above the gate, or could not run."""

    exit_code = 14


class CertificateError(RouterError):
    """An ACME CA could not issue or renew a certificate; the one serving stays."""

    exit_code = 15
