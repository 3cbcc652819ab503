"""The traffic port and its HAProxy adapter.

Public API (everything else is internal)::

    Router                                   the port (a Protocol); HaproxyRouter implements it
      ensure(servers=()) -> RouterInfo       start the router if missing, add servers it lacks
                                             (HaproxyRouter: reload=False leaves a changed
                                             config for the caller to reload)
      servers() -> tuple[BackendServer, ...]
      add_server(name, address, port, *, weight=0, check=True)
      set_weight(name, weight)               0..256
      set_weights({name: weight})            one exchange, raises applied before cuts
      set_ready(name)                        back into rotation after drain/maint
      drain(name)                            no new requests, in-flight ones finish
      wait_drained(name, timeout) -> BackendServer
      wait_healthy(name, timeout) -> BackendServer
      remove_server(name, *, timeout=10.0)   maintenance, then delete once idle
      stats() -> RouterStats                 backend and per-server counters
      request_log(after) -> RequestLog       each request logged since a cursor: server, timers
      remove()                               tear the environment's router down
      hold(until) / release()                new requests wait at the router / flow again

    HaproxyRouter(engine, *, service, environment, port, settings=None, state_root=None)
    HaproxyRouter.for_environment(engine, config, environment)
    HaproxySettings                          health path, check timing, ports, image, timeouts
    HaproxyRouter.reload(servers=()) -> RouterReload     hitless, carries the running servers
    HaproxyRouter.upgrade(servers=()) -> RouterInfo      new container, new before old
    HaproxyRouter.describe() -> RouterDescription        what runs; changes nothing

    ServerSpec(name, address, port, weight=0, check=True)    what the caller wants served
    BackendServer, Counters, RouterStats, RouterInfo         what the router reports
    RequestLog, RequestTiming                                per-request timings (request log)
    ServerState (ready/drain/maint), ServerHealth (up/down/no check)
    traffic_shares(servers) -> {name: share}                 0..1 of new requests each
    weights_for_shares({name: share}, total=100) -> {name: weight}

Servers are added down: they take traffic only once their first health check
passed and their weight is above zero. The router does not refuse to point at
nothing (every weight zero, every server drained): the deploy executor keeps
that rule and can check it with ``traffic_shares``. A router that had to be
(re)created comes back with an empty backend; callers pass the servers that
should serve to ``ensure`` every time. Errors are :class:`~dockroll.errors.RouterError`
naming the environment, the command and HAProxy's own message.
"""

from __future__ import annotations

from dockroll.router.haproxy import HaproxyRouter, HaproxySettings
from dockroll.router.port import (
    MAX_WEIGHT,
    BackendServer,
    Counters,
    RequestLog,
    RequestTiming,
    Router,
    RouterInfo,
    RouterStats,
    ServerHealth,
    ServerSpec,
    ServerState,
    traffic_shares,
    weights_for_shares,
)
from dockroll.router.runtime_api import CheckSettings

__all__ = [
    "MAX_WEIGHT",
    "BackendServer",
    "CheckSettings",
    "Counters",
    "HaproxyRouter",
    "HaproxySettings",
    "RequestLog",
    "RequestTiming",
    "Router",
    "RouterInfo",
    "RouterStats",
    "ServerHealth",
    "ServerSpec",
    "ServerState",
    "traffic_shares",
    "weights_for_shares",
]
