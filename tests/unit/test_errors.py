"""The exception tree: exit codes the README documents, messages with hints."""

from __future__ import annotations

import pytest

from dockroll import errors
from dockroll.errors import (
    BuildError,
    CertificateError,
    ConfigError,
    ContainerNotFound,
    DevEnvError,
    DockrollError,
    EngineError,
    EngineUnavailable,
    LedgerError,
    PortInUse,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    RouterError,
    SmokeTestError,
    TagRuleError,
    UsageError,
)


@pytest.mark.parametrize(
    ("error", "parent", "code"),
    [
        (DockrollError, Exception, 1),
        (UsageError, DockrollError, 2),
        (ConfigError, UsageError, 2),
        (TagRuleError, UsageError, 2),
        (EngineError, DockrollError, 3),
        (EngineUnavailable, EngineError, 3),
        (ContainerNotFound, EngineError, 3),
        (PortInUse, EngineError, 3),
        (BuildError, DockrollError, 4),
        (SmokeTestError, DockrollError, 5),
        (RegistryError, DockrollError, 6),
        (RegistryUnavailable, RegistryError, 6),
        (RegistryAuthError, RegistryError, 6),
        (DevEnvError, DockrollError, 7),
        (LedgerError, DockrollError, 8),
        (CertificateError, RouterError, 15),
    ],
)
def test_exit_codes_and_tree(
    error: type[DockrollError], parent: type[Exception], code: int
) -> None:
    assert issubclass(error, parent)
    assert error.exit_code == code
    assert error("x").exit_code == code


def test_every_exported_error_belongs_to_the_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, DockrollError), name
        assert cls.__doc__, f"{name} needs a docstring"
        assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in the docstring"


def test_message_without_hint() -> None:
    error = BuildError("the build failed")
    assert str(error) == "the build failed"
    assert error.message == "the build failed"
    assert error.hint is None
    assert error.args == ("the build failed",)


def test_hint_is_shown_on_its_own_line() -> None:
    error = RegistryAuthError("registry refused the push: 401", hint="run `docker login`")
    assert str(error) == "registry refused the push: 401\n  hint: run `docker login`"
    assert error.hint == "run `docker login`"


def test_hint_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        UsageError("message", "hint")  # type: ignore[misc]


def test_errors_are_caught_by_their_parents() -> None:
    with pytest.raises(RegistryError) as caught:
        raise RegistryUnavailable("down", hint="start it")
    assert caught.value.exit_code == 6
    assert "hint: start it" in str(caught.value)
