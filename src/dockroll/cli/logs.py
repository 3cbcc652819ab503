"""Where the library's diagnostics go when the CLI runs: stderr, by ``--verbose``/``--debug``.

The library logs to the ``dockroll`` logger tree and adds no handler of its
own (a ``NullHandler`` only). The CLI adds one handler on stderr, so stdout
keeps only the command's result (``--json`` stays parseable): warnings by
default, informational lines with ``--verbose``, everything with ``--debug``.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging", "level_for"]

_LOGGER = "dockroll"
_FORMAT = "dockroll: %(levelname)s: %(message)s"
_DEBUG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


class _CliHandler(logging.Handler):
    """The one handler the CLI owns, told apart from handlers a user added.

    It looks ``sys.stderr`` up at each record, so a replaced stderr (a test
    runner's capture, a redirect) is honoured rather than a closed one kept.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging's own policy: report, never raise
            self.handleError(record)


def level_for(*, verbose: bool, debug: bool) -> int:
    """The ``dockroll`` logger's level for these global flags."""
    if debug:
        return logging.DEBUG
    return logging.INFO if verbose else logging.WARNING


def configure_logging(*, verbose: bool = False, debug: bool = False) -> logging.Logger:
    """Send ``dockroll`` diagnostics to stderr at the level the flags ask for.

    Calling it again (the CLI's ``main`` may run several times in one process)
    replaces the previous CLI handler instead of adding a second one.
    """
    logger = logging.getLogger(_LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(handler)
    handler = _CliHandler()
    handler.setFormatter(logging.Formatter(_DEBUG_FORMAT if debug else _FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level_for(verbose=verbose, debug=debug))
    return logger
