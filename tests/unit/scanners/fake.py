"""Fake ``trivy`` / ``grype`` executables: print a recorded report, note their arguments."""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"


def install_fake_scanner(
    bin_dir: Path,
    name: str,
    report: str | None = None,
    *,
    exit_code: int = 0,
    stdout: str | None = None,
    stderr: str = "",
) -> Path:
    """Write ``bin_dir/name``; it prints ``DATA/report`` (or ``stdout``) and exits ``exit_code``.

    Each call appends its arguments, one JSON list per line, to ``bin_dir/name.calls``.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    text = stdout if stdout is not None else (DATA / report).read_text() if report else ""
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(bin_dir / (name + '.calls'))!r}, 'a') as calls:\n"
        "    calls.write(json.dumps(sys.argv[1:] + [os.environ.get('DOCKER_HOST', '')]) + '\\n')\n"
        f"sys.stdout.write({text!r})\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return script


def calls(bin_dir: Path, name: str) -> list[list[str]]:
    """The argument lists (the last item is DOCKER_HOST) each run was given."""
    path = bin_dir / f"{name}.calls"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
