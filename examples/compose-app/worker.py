"""The worker process of the compose-app example: takes jobs off the queue, counts them."""

from __future__ import annotations

import os
import time

from redis_client import RedisError, redis

VERSION = os.environ.get("APP_VERSION", "dev")

if __name__ == "__main__":
    print(f"worker {VERSION} started", flush=True)
    while True:
        try:
            job = redis("BRPOP", "jobs", "1")
        except (OSError, RedisError) as exc:
            print(f"worker {VERSION}: redis: {exc}", flush=True)
            time.sleep(1)
            continue
        if job:
            redis("INCR", "done")
            print(f"worker {VERSION} did a job queued by {job[1]}", flush=True)
