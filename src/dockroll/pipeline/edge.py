"""An environment with ``hosts`` joins its engine host's shared edge.

Called by commands that change the environment, after its router is up to
date: the edge is started when missing, the router joins the edge network
(live), and the hostnames are claimed for it. Nothing here reloads or
restarts the edge, so joining never fails a request of another environment.
"""

from __future__ import annotations

import contextlib

import docker.errors

from dockroll.config import Config
from dockroll.errors import RouterError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.listeners import parse_listen_address
from dockroll.router.edge import Edge
from dockroll.router.haproxy import HaproxyRouter

__all__ = ["join_edge"]


def join_edge(
    config: Config, name: str, router: HaproxyRouter, progress: ProgressCallback = discard
) -> Edge | None:
    """Route the environment's hostnames to its router through the edge; None without hosts."""
    env = config.environment(name)
    if not env.hosts or env.edge is None:
        return None
    if router.running_config() != router.config_fingerprint():
        progress(Progress("edge", "the router runs an older config: its hostnames wait"))
        return None
    edge = Edge(
        router.engine,
        [parse_listen_address(a) for a in env.edge.listen],
        image=router.image(),
    )
    edge.ensure()
    client = router.engine.client
    attrs = client.api.inspect_container(router.container_name)
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    if edge.network not in networks:
        with contextlib.suppress(docker.errors.APIError):  # joined concurrently: fine
            client.api.connect_container_to_network(router.container_name, edge.network)
        attrs = client.api.inspect_container(router.container_name)
        networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    address = str((networks.get(edge.network) or {}).get("IPAddress") or "")
    if not address:
        raise RouterError(f"router of {config.service}/{name} did not join {edge.network}")
    edge.claim(env.hosts, f"{config.service}/{name}", address)
    progress(Progress("edge", f"{', '.join(env.hosts)} -> {router.container_name}"))
    return edge
