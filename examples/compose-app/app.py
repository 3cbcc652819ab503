"""The web process of the compose-app example: queues jobs in Redis, reports progress.

Standard library only, so the image needs nothing from PyPI. Redis is reached at
``$REDIS_HOST:$REDIS_PORT`` (the ``redis`` accessory on the environment's network).
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from redis_client import RedisError, redis

VERSION = os.environ.get("APP_VERSION", "dev")


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/version":
            self._answer(200, {"version": VERSION})
        elif self.path == "/ready":
            try:
                redis("PING")
            except (OSError, RedisError) as exc:
                self._answer(503, {"status": "not ready", "reason": str(exc)})
                return
            self._answer(200, {"status": "ready"})
        elif self.path == "/jobs":
            queued, done = redis("LLEN", "jobs"), redis("GET", "done")
            self._answer(200, {"queued": queued, "done": int(done or 0)})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/jobs":
            self._answer(404, {"error": "not found"})
            return
        self._answer(202, {"queued": redis("LPUSH", "jobs", VERSION)})

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


if __name__ == "__main__":
    print(f"web {VERSION} listening on :8000", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
