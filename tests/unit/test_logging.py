"""Diagnostics go through `logging`: silent by default, routable by a library user,
on stderr at the CLI's --verbose/--debug level."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.cli.app import main
from dockroll.cli.logs import configure_logging, level_for

CONFIG = """\
service: web
image: 127.0.0.1:5000/team/web
environments:
  dev:
    port: 9081
"""


@pytest.fixture(autouse=True)
def _restore_dockroll_logger() -> Iterator[None]:
    logger = logging.getLogger("dockroll")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_the_library_prints_nothing_unless_a_handler_is_added() -> None:
    """Without the package's NullHandler, logging's last resort would print the warning."""
    probe = (
        "import logging, dockroll\n"
        "logging.getLogger('dockroll.registry').warning('a mirror is down')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr == ""
    routed = probe.replace(
        "import logging, dockroll\n", "import logging, dockroll\nlogging.basicConfig()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", routed], capture_output=True, text=True, check=True, timeout=60
    )
    assert "a mirror is down" in done.stderr


@pytest.mark.parametrize(
    ("verbose", "debug", "level"),
    [(False, False, logging.WARNING), (True, False, logging.INFO), (False, True, logging.DEBUG)],
)
def test_cli_flags_pick_the_level(verbose: bool, debug: bool, level: int) -> None:
    assert level_for(verbose=verbose, debug=debug) == level


def test_configuring_twice_keeps_one_cli_handler() -> None:
    configure_logging(verbose=True)
    logger = configure_logging(debug=True)
    ours = [h for h in logger.handlers if type(h).__name__ == "_CliHandler"]
    assert len(ours) == 1
    assert logger.level == logging.DEBUG


def test_cli_debug_sends_diagnostics_to_stderr_and_keeps_stdout_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKROLL_DEBUG", raising=False)
    config = tmp_path / "dockroll.yml"
    config.write_text(CONFIG, encoding="utf-8")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    assert main(["--json", "--debug", "-c", str(config), "config", "check"]) == 0
    logging.getLogger("dockroll.lock").debug("renewed (lease 3)")
    logging.getLogger("dockroll.lock").info("removing an expired lock")
    out, err = capsys.readouterr()
    json.loads(out)
    assert "renewed (lease 3)" in err
    assert "removing an expired lock" in err

    assert main(["--json", "-c", str(config), "config", "check"]) == 0
    logging.getLogger("dockroll.lock").info("not shown by default")
    logging.getLogger("dockroll.lock").warning("shown by default")
    out, err = capsys.readouterr()
    assert "not shown by default" not in err
    assert "dockroll: WARNING: shown by default" in err
