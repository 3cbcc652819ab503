"""A small Redis image from the local Debian base, built once and cached, for accessory tests
(no image can be pulled here)."""

from __future__ import annotations

import io

import docker
import pytest

from tests.conftest import IN_CI

REDIS_IMAGE = "dockroll.local/test-redis:bookworm"
BASE = "dockroll.local/debian:bookworm-slim"
DOCKERFILE = f"""FROM {BASE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
"""


def redis_image(client: docker.DockerClient) -> str:
    """The cached Redis image, built from the local Debian base when missing."""
    try:
        client.images.get(REDIS_IMAGE)
        return REDIS_IMAGE
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        reason = f"no local base image {BASE}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: `dockroll dev up` must have built it)")
        pytest.skip(f"{reason}; run `dockroll dev up`")
    client.images.build(
        fileobj=io.BytesIO(DOCKERFILE.encode("utf-8")),
        tag=REDIS_IMAGE,
        rm=True,
        pull=False,
        # The engine here may have no default bridge; the build needs only the host network.
        network_mode="host",
    )
    return REDIS_IMAGE
