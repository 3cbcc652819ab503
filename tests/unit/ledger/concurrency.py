"""Several processes opening one fresh ledger at the same moment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

__all__ = ["WORKERS", "run_concurrent_first_use"]

WORKERS = 4

_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dockroll.ledger import open_ledger
    from dockroll.refs import Digest

    url, go, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    (go.parent / f"{name}.ready").touch()
    while not go.exists():
        time.sleep(0.005)
    with open_ledger(url, actor=name) as ledger:
        release = ledger.record_release(
            service="web", version="1.0.0", digest=Digest("sha256:" + "a" * 64),
            registry="127.0.0.1:5000", repository="team/web", tags=[name],
        )
        ledger.audit("first-use", target=name)
        ledger.record_promotion(release, to_env=name)
    print("ok")
    """
)


def run_concurrent_first_use(url: str, go: Path, workers: int = WORKERS) -> None:
    """Start ``workers`` processes that open the same fresh ledger at the same moment."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(go), f"worker{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    # Release them together only once every interpreter has imported everything.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
        (go.parent / f"worker{n}.ready").exists() for n in range(workers)
    ):
        time.sleep(0.01)
    go.touch()
    results = [(p.communicate(timeout=120), p.returncode) for p in processes]
    for (out, err), returncode in results:
        assert returncode == 0, err
        assert out.strip() == "ok"
