"""What the application learns about its real clients: forwarded headers and a request id.

The router is where clients' connections end, so the headers that describe
them are set here and headers of those names that clients sent are dropped
(anyone can send ``X-Forwarded-For: 10.0.0.1``). On a listener that accepts
the PROXY protocol the peer is a load balancer in front, which is trusted: the
client address comes from the PROXY header, and the ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Request-ID`` it sent are kept.

- ``X-Forwarded-For``: the client's address (``option forwardfor``).
- ``X-Forwarded-Proto``: ``http`` (``https`` for TLS listeners).
- ``X-Forwarded-Host``: the ``Host`` the client asked for.
- ``X-Request-ID``: unique per request (worker pid, time, request counter, in
  hex); it is also in the request log, so a request can be followed from the
  router into the application's logs.
"""

from __future__ import annotations

__all__ = ["REQUEST_ID_HEADER", "frontend_lines"]

REQUEST_ID_HEADER = "X-Request-ID"
_UNIQUE_ID_FORMAT = "%{+X}o%pid-%Ts-%rt"


def frontend_lines() -> list[str]:
    """Rules of the public frontend, after the hold and maintenance rules."""
    trusted = "dockroll_trusted_peer"
    return [
        f"    acl {trusted} fc_rcvd_proxy",
        "    http-request del-header X-Forwarded-For",
        f"    http-request del-header X-Forwarded-Proto unless {trusted}",
        f"    http-request del-header X-Forwarded-Host unless {trusted}",
        f"    http-request del-header {REQUEST_ID_HEADER} unless {trusted}",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto https "
        "if { ssl_fc } !{ req.hdr(x-forwarded-proto) -m found }",
        "    http-request set-header X-Forwarded-Proto http "
        "if !{ ssl_fc } !{ req.hdr(x-forwarded-proto) -m found }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)] "
        "if { req.hdr(host) -m found } !{ req.hdr(x-forwarded-host) -m found }",
        f"    unique-id-format {_UNIQUE_ID_FORMAT}",
        f"    http-request set-header {REQUEST_ID_HEADER} %[unique-id] "
        f"unless {{ req.hdr({REQUEST_ID_HEADER.lower()}) -m found }}",
    ]
