"""Releases with faults baked in, and paced load that records who answered each request.

:func:`seed_releases` (from :mod:`tests.integration.rollout_support`, re-exported
here) builds and pushes one release per tagged version of a copy of the sample
service, each with its fault knobs set as ``ENV`` in its Dockerfile (so the fault
is part of the image, like a real bad release). :class:`PacedLoad` sends ``GET /``
(the application endpoint, where the knobs act) at a bounded rate.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.rollout_support import seed_releases

__all__ = ["PacedLoad", "Reply", "seed_releases"]


@dataclass(frozen=True)
class Reply:
    sent: float
    """time.monotonic() when the request left."""
    seconds: float
    status: int
    """HTTP status; 0 when no answer came."""
    version: str | None
    """The version named by a 200 answer (the sample's 5xx bodies name none)."""


class PacedLoad:
    """``GET /`` at about ``rate`` requests a second from ``threads`` threads.

    Bounded twice: it stops at :meth:`__exit__` and on its own after ``max_seconds``.
    """

    def __init__(
        self, url: str, *, rate: float = 80.0, threads: int = 8, max_seconds: float = 180.0
    ) -> None:
        self.url = url
        self.rate = rate
        self.threads = threads
        self.max_seconds = max_seconds
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _work(self, offset: float) -> None:
        period = self.threads / self.rate
        started = time.monotonic()
        due = started + offset
        with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
            while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                    continue
                due = max(due + period, time.monotonic() - period)
                sent = time.monotonic()
                status, version = 0, None
                try:
                    response = client.get(f"{self.url}/")
                    status = response.status_code
                    if status == 200:
                        version = str(response.json()["version"])
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                with self._lock:
                    self.replies.append(Reply(sent, time.monotonic() - sent, status, version))

    def __enter__(self) -> PacedLoad:
        for index in range(self.threads):
            offset = index / self.rate
            worker = threading.Thread(target=self._work, args=(offset,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` replies arrived; fail the test after ``timeout``.

        A load that stalls must not pass as one that saw no failure.
        """
        deadline = time.monotonic() + timeout
        while len(self.replies) < count:
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"the load on {self.url} stalled: {len(self.replies)} of {count} replies "
                    f"after {timeout:g}s"
                )
            time.sleep(0.05)

    def since(self, moment: float) -> list[Reply]:
        with self._lock:
            return [r for r in self.replies if r.sent >= moment]

    def failed(self, since: float = 0.0) -> list[Reply]:
        return [r for r in self.since(since) if r.status != 200]

    def versions(self, since: float = 0.0) -> Counter[str]:
        return Counter(r.version or f"HTTP {r.status}" for r in self.since(since))
