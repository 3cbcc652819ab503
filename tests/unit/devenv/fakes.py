"""A scripted stand-in for the machine: commands, processes, clock, HTTP and engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockroll.devenv.system import CommandResult, EngineProbe, OutputCallback

Handler = Callable[[tuple[str, ...]], CommandResult | None]


def ok(argv: Sequence[str], stdout: str = "") -> CommandResult:
    return CommandResult(tuple(argv), 0, stdout, "")


def fail(argv: Sequence[str], stderr: str = "failed", code: int = 1) -> CommandResult:
    return CommandResult(tuple(argv), code, "", stderr)


@dataclass
class FakeSystem:
    """Each attribute is the machine's state; tests change it and read ``calls``."""

    root: bool = True
    binaries: set[str] = field(default_factory=lambda: {"apt-get", "docker", "tar"})
    environ: dict[str, str] = field(default_factory=dict)
    engine_version: str | None = "20.10.24"
    engine_error: str = "connection refused"
    http: dict[str, int] = field(default_factory=dict)
    processes: dict[int, str] = field(default_factory=dict)
    handlers: list[Handler] = field(default_factory=list)
    on_spawn: Callable[[tuple[str, ...], int], None] | None = None
    now: float = 1000.0
    calls: list[tuple[str, ...]] = field(default_factory=list)
    spawned: list[tuple[tuple[str, ...], Path]] = field(default_factory=list)
    signals: list[tuple[int, int]] = field(default_factory=list)
    next_pid: int = 4242

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
        self.calls.append(args)
        for handler in self.handlers:
            result = handler(args)
            if result is not None:
                if on_output is not None and result.stdout:
                    for line in result.stdout.splitlines():
                        on_output(line)
                return result
        if args[0] not in self.binaries:
            return CommandResult(args, 127, "", f"{args[0]}: command not found")
        return ok(args)

    def pipe(
        self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float | None = None
    ) -> CommandResult:
        return self.run([*producer, "|", *consumer])

    def spawn(self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self.spawned.append((tuple(argv), log))
        self.processes[pid] = " ".join(argv)
        if self.on_spawn is not None:
            self.on_spawn(tuple(argv), pid)
        return pid

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.binaries else None

    def is_root(self) -> bool:
        return self.root

    def env(self, name: str) -> str | None:
        return self.environ.get(name)

    def process_command(self, pid: int) -> str | None:
        return self.processes.get(pid)

    def find_processes(self, name: str) -> list[int]:
        return sorted(p for p, cmd in self.processes.items() if cmd.split()[0].endswith(name))

    def signal(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))
        self.processes.pop(pid, None)

    def http_status(self, url: str, timeout: float) -> int | None:
        return self.http.get(url)

    def probe_engine(self, timeout: float) -> EngineProbe:
        if self.engine_version is None:
            return EngineProbe(None, self.engine_error)
        return EngineProbe(self.engine_version)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def ran(self, *prefix: str) -> list[tuple[str, ...]]:
        """The calls whose argv starts with ``prefix``."""
        return [c for c in self.calls if c[: len(prefix)] == prefix]
