"""The default transport: TLS set up only when a request needs it."""

from __future__ import annotations

import httpx

__all__ = ["SchemeTransport"]


class SchemeTransport(httpx.BaseTransport):
    """``http://`` through a pool that never loads CA certificates, ``https://`` verified.

    Loading the CA bundle into a TLS context costs tens of milliseconds (far
    more on a busy machine) that a registry spoken to over plain HTTP (a local
    or declared-insecure one) never needs; so the verifying pool is made at the
    first ``https://`` request, a redirect to HTTPS storage included, and the
    plain pool, which only ever sees ``http://`` URLs, skips the bundle.
    """

    def __init__(self) -> None:
        self._plain: httpx.HTTPTransport | None = None
        self._secure: httpx.HTTPTransport | None = None

    @property
    def tls_ready(self) -> bool:
        """Whether the verifying pool (and its CA bundle) has been set up."""
        return self._secure is not None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            if self._secure is None:
                self._secure = httpx.HTTPTransport()
            return self._secure.handle_request(request)
        if self._plain is None:
            # Its TLS context is never used: only http:// requests come here.
            self._plain = httpx.HTTPTransport(verify=False)
        return self._plain.handle_request(request)

    def close(self) -> None:
        for pool in (self._plain, self._secure):
            if pool is not None:
                pool.close()
