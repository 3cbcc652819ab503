"""Byte counting at the transport seam, for benchmarks and copy results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx

__all__ = ["CountingTransport", "Traffic"]


@dataclass(frozen=True)
class Traffic:
    """Request count and body bytes a client moved (headers are not counted)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(
            requests=self.requests - other.requests,
            bytes_sent=self.bytes_sent - other.bytes_sent,
            bytes_received=self.bytes_received - other.bytes_received,
        )

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            requests=self.requests + other.requests,
            bytes_sent=self.bytes_sent + other.bytes_sent,
            bytes_received=self.bytes_received + other.bytes_received,
        )


class _Counter:
    def __init__(self) -> None:
        self.requests = 0
        self.sent = 0
        self.received = 0

    def snapshot(self) -> Traffic:
        return Traffic(self.requests, self.sent, self.received)


class _CountingStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, counter: _Counter, *, sent: bool) -> None:
        self._stream = stream
        self._counter = counter
        self._sent = sent

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if self._sent:
                self._counter.sent += len(chunk)
            else:
                self._counter.received += len(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


class CountingTransport(httpx.BaseTransport):
    """Wraps a transport and counts every request and body byte through it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._counter = _Counter()

    @property
    def traffic(self) -> Traffic:
        return self._counter.snapshot()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._counter.requests += 1
        original = request.stream
        length = request.headers.get("Content-Length")
        if length is not None and length.isdigit():
            # A declared length is exactly what goes on the wire.
            self._counter.sent += int(length)
        elif isinstance(original, httpx.SyncByteStream):
            request.stream = _CountingStream(original, self._counter, sent=True)
        try:
            response = self._inner.handle_request(request)
        finally:
            # The auth flow may resend this request object; never wrap twice.
            request.stream = original
        stream = response.stream
        if not isinstance(stream, httpx.SyncByteStream):  # pragma: no cover - sync client only
            return response
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountingStream(stream, self._counter, sent=False),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()
