"""The one seam between the dev environment code and the machine.

Every subprocess, process lookup, HTTP probe and engine ping of
``dockroll.devenv`` goes through a :class:`System`, so unit tests can replace
the machine with a scripted fake and integration tests use :class:`LocalSystem`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal as signals
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import httpx

from dockroll.engine.probe import engine_version
from dockroll.errors import EngineUnavailable

__all__ = ["CommandResult", "EngineProbe", "LocalSystem", "System"]

OutputCallback = Callable[[str], None]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """How a finished command went."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the command exited 0 in time."""
        return self.returncode == 0 and not self.timed_out

    def why(self) -> str:
        """A one-line reason for a failure, for error messages."""
        if self.timed_out:
            return f"`{' '.join(self.argv)}` timed out"
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        last = text[-1] if text else "no output"
        return f"`{' '.join(self.argv)}` exited {self.returncode}: {last}"


@dataclass(frozen=True)
class EngineProbe:
    """The answer (or silence) of the Docker engine at the configured endpoint."""

    version: str | None
    error: str | None = None

    @property
    def up(self) -> bool:
        """True when the engine answered."""
        return self.version is not None


class System(Protocol):
    """What the dev environment needs from the machine."""

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a command to completion; never raises for a non-zero exit or a missing binary.

        With ``on_output`` stderr is merged into stdout and each line is passed on
        as it arrives (long builds stay visible).
        """
        ...

    def pipe(
        self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float | None = None
    ) -> CommandResult:
        """Run ``producer | consumer``; the result fails if either side failed."""
        ...

    def spawn(self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> int:
        """Start a long-lived process detached in its own session; returns its pid."""
        ...

    def which(self, name: str) -> str | None: ...

    def is_root(self) -> bool: ...

    def env(self, name: str) -> str | None: ...

    def process_command(self, pid: int) -> str | None:
        """The command line of a live process, ``""`` if alive but unknown, None if gone."""
        ...

    def find_processes(self, name: str) -> list[int]:
        """Pids of live processes whose executable name is ``name``."""
        ...

    def signal(self, pid: int, sig: int) -> None: ...

    def http_status(self, url: str, timeout: float) -> int | None:
        """The status code of ``GET url``, None when nothing answers."""
        ...

    def probe_engine(self, timeout: float) -> EngineProbe: ...

    def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...


# Children we started stay referenced so ``poll`` can reap them and Popen does
# not warn about a still-running child when it is garbage-collected.
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


class LocalSystem:
    """The real machine."""

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        _log.debug("running %s", " ".join(args))
        full_env = {**os.environ, **env} if env else None
        if on_output is not None:
            return self._run_streaming(args, stdin, timeout, full_env, on_output)
        try:
            done = subprocess.run(
                args,
                input=stdin,
                capture_output=True,
                timeout=timeout,
                env=full_env,
                check=False,
            )
        except FileNotFoundError:
            return CommandResult(args, 127, "", f"{args[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            return CommandResult(args, -1, _text(exc.stdout), _text(exc.stderr), timed_out=True)
        return CommandResult(args, done.returncode, _text(done.stdout), _text(done.stderr))

    def _run_streaming(
        self,
        args: tuple[str, ...],
        stdin: bytes | None,
        timeout: float | None,
        env: dict[str, str] | None,
        on_output: OutputCallback,
    ) -> CommandResult:
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
            )
        except FileNotFoundError:
            return CommandResult(args, 127, "", f"{args[0]}: command not found")
        # `with proc` closes every pipe and reaps the child on each way out;
        # otherwise the pipe objects leak (a ResourceWarning, an error in tests).
        with proc:
            if stdin is not None and proc.stdin is not None:
                proc.stdin.write(stdin)
                proc.stdin.close()
            deadline = None if timeout is None else time.monotonic() + timeout
            lines: list[str] = []
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                lines.append(line)
                on_output(line)
                if deadline is not None and time.monotonic() > deadline:
                    proc.kill()
                    return CommandResult(args, -1, "\n".join(lines), "", timed_out=True)
            returncode = proc.wait()
        return CommandResult(args, returncode, "\n".join(lines), "")

    def pipe(
        self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float | None = None
    ) -> CommandResult:
        args = (*producer, "|", *consumer)
        try:
            first = subprocess.Popen(list(producer), stdout=subprocess.PIPE)
        except FileNotFoundError:
            return CommandResult(args, 127, "", f"{producer[0]}: command not found")
        try:
            second = subprocess.Popen(
                list(consumer), stdin=first.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            first.kill()
            first.wait()
            return CommandResult(args, 127, "", f"{consumer[0]}: command not found")
        if first.stdout is not None:
            first.stdout.close()  # the consumer owns the read end now
        try:
            out, err = second.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for proc in (first, second):
                proc.kill()
                proc.wait()
            return CommandResult(args, -1, "", "", timed_out=True)
        first_rc = first.wait()
        returncode = second.returncode or first_rc
        return CommandResult(args, returncode, _text(out), _text(err))

    def spawn(self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives our exit and our terminal's Ctrl-C
                close_fds=True,
                env={**os.environ, **env} if env else None,
            )
        _SPAWNED[proc.pid] = proc
        return proc.pid

    def which(self, name: str) -> str | None:
        found = shutil.which(name)
        if found is None and os.geteuid() == 0:
            # root's PATH on some images lacks the sbin directories daemons live in
            found = shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
        return found

    def is_root(self) -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def env(self, name: str) -> str | None:
        return os.environ.get(name) or None

    def process_command(self, pid: int) -> str | None:
        child = _SPAWNED.get(pid)
        if child is not None and child.poll() is not None:
            return None
        proc = Path("/proc") / str(pid)
        if Path("/proc/self").exists():
            try:
                stat = (proc / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "Z":
                    return None
                raw = (proc / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return None
            return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""

    def find_processes(self, name: str) -> list[int]:
        pids: list[int] = []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm == name and self.process_command(int(entry.name)) is not None:
                pids.append(int(entry.name))
        return sorted(pids)

    def signal(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        child = _SPAWNED.get(pid)
        if child is not None and sig in (signals.SIGTERM, signals.SIGKILL):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.05)  # reaps it at once if it exits promptly

    def http_status(self, url: str, timeout: float) -> int | None:
        try:
            return httpx.get(url, timeout=timeout).status_code
        except httpx.HTTPError:
            return None

    def probe_engine(self, timeout: float) -> EngineProbe:
        try:
            return EngineProbe(engine_version(timeout))
        except EngineUnavailable as exc:
            return EngineProbe(None, exc.message)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            return _last_lines(handle, lines)
    except OSError:
        return ""


def _last_lines(handle: IO[bytes], lines: int) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 8192))
    text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])
