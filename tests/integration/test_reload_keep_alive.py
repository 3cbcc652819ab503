"""A hitless reload with clients on keep-alive connections, for a router and the edge.

At a reload the old worker stops; a connection idle between two requests of a
client must not be closed under it: the next request on it is answered (and the
connection closed after it), so a client sending it at that moment never fails.
"""

from __future__ import annotations

import http.client
import time

from dockroll.pipeline.edge import reload_edge
from tests.conftest import free_port
from tests.integration.test_edge import _serve, edge
from tests.integration.test_router_lifecycle import Project, project

__all__ = ["edge", "project"]


def _request(conn: http.client.HTTPConnection, host: str) -> tuple[int, str]:
    conn.request("GET", "/", headers={"Host": host})
    answer = conn.getresponse()
    return answer.status, answer.read().decode()


def test_a_router_reload_answers_the_next_request_on_an_idle_connection(
    project: Project,
) -> None:
    router = project.router()
    router.ensure()
    web = project.backend("web")
    router.ensure([web])
    router.wait_healthy("web", timeout=10)
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    try:
        assert _request(conn, "a.test") == (200, "web")
        done = router.reload()
        assert done.worker != done.previous_worker
        time.sleep(1)  # the old worker has stopped listening and would close idle connections
        second = _request(conn, "a.test")
    finally:
        conn.close()
    assert second == (200, "web")


def test_an_edge_reload_answers_the_next_request_on_an_idle_connection(
    project: Project, edge: str
) -> None:
    port = free_port()
    _serve(project, ["a.test"], {"listen": [f"127.0.0.1:{port}"]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert _request(conn, "a.test") == (200, project.service)
        # In-process: well inside the edge's 5 s keep-alive timeout.
        with project.ledger() as ledger:
            done = reload_edge(project.config(), None, ledger)
        assert done.worker != done.previous_worker
        time.sleep(1)
        second = _request(conn, "a.test")
    finally:
        conn.close()
    assert second == (200, project.service)
