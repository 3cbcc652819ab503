"""LocalSystem runs real processes; these use only `sh`, present on every machine."""

from __future__ import annotations

import gc
import warnings

from dockroll.devenv.system import LocalSystem


def _resource_warnings_while(run: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = run() if callable(run) else None
        gc.collect()
    assert result is not None
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_streaming_a_command_closes_its_pipes() -> None:
    lines: list[str] = []
    leaks = _resource_warnings_while(
        lambda: LocalSystem().run(["sh", "-c", "echo one; echo two"], on_output=lines.append)
    )
    assert lines == ["one", "two"]
    assert leaks == []


def test_streaming_a_command_past_its_timeout_closes_its_pipes() -> None:
    seen: list[str] = []
    result_box: list[object] = []

    def run() -> object:
        result = LocalSystem().run(
            ["sh", "-c", "echo start; sleep 0.3; echo late; sleep 5"],
            timeout=0.1,
            on_output=seen.append,
        )
        result_box.append(result)
        return result

    leaks = _resource_warnings_while(run)
    assert getattr(result_box[0], "timed_out", False) is True
    assert leaks == []


def test_streaming_a_command_with_input_closes_its_pipes() -> None:
    lines: list[str] = []
    leaks = _resource_warnings_while(
        lambda: LocalSystem().run(["cat"], stdin=b"fed\n", on_output=lines.append)
    )
    assert lines == ["fed"]
    assert leaks == []
