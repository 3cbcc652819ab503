"""Rendering results and progress for people (Rich) or scripts (JSON)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape

from dockroll.events import Progress, ProgressCallback

__all__ = ["Output"]


@dataclass
class Output:
    """Where a command's words go.

    In JSON mode stdout carries exactly one JSON document, the command's
    result, so scripts can parse it; progress goes to stderr as plain lines.
    """

    json_mode: bool = False
    verbose: bool = False
    out: Console = field(
        default_factory=lambda: Console(
            highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120
        )
    )
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    def result(self, data: Any, human: RenderableType | None = None) -> None:
        """Print a command's result: ``data`` as JSON, or the ``human`` text."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
            sys.stdout.flush()
        elif human is not None:
            self.out.print(human)

    def line(self, text: str) -> None:
        """A human line on stdout; silent in JSON mode."""
        if not self.json_mode:
            self.out.print(text)

    def warn(self, text: str) -> None:
        self.err.print(f"[yellow]warning:[/] {text}")

    def error(self, text: str) -> None:
        # Messages quote build output, paths and logs: print them verbatim, not as markup.
        self.err.print(f"[bold red]error:[/] {escape(text)}", markup=True, soft_wrap=True)

    @contextmanager
    def progress(self, title: str) -> Iterator[ProgressCallback]:
        """A progress callback for a long step, with a spinner on a terminal."""
        if self.json_mode or not self.err.is_terminal:
            yield self._plain
            return
        with self.err.status(title) as status:

            def on_event(event: Progress) -> None:
                if event.detail:
                    if self.verbose:
                        self.err.print(f"  [dim]{event.message}[/]", markup=True)
                    status.update(f"{title} [dim]{_clip(event.message)}[/]")
                else:
                    self.err.print(f"  {event.message}")

            yield on_event

    def _plain(self, event: Progress) -> None:
        if event.detail and not self.verbose:
            return
        prefix = "  " if event.detail else ""
        self.err.print(f"{prefix}[{event.stage}] {event.message}", markup=False)


def _clip(text: str, width: int = 70) -> str:
    text = text.strip().replace("[", "\\[")
    return text if len(text) <= width else text[: width - 1] + "…"
