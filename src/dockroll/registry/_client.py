"""A synchronous OCI distribution client for one registry host."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import re
from collections.abc import Collection, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, NoReturn

import httpx

from dockroll.errors import (
    DigestMismatch,
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    UsageError,
)
from dockroll.refs import (
    Digest,
    is_digest,
    is_loopback_registry,
    registry_hostname,
    registry_unreachable_hint,
)
from dockroll.registry._auth import RegistryAuth, auth_hint
from dockroll.registry._credentials import Credentials, find_credentials
from dockroll.registry._media import MANIFEST_MEDIA_TYPES, Manifest
from dockroll.registry._traffic import CountingTransport, Traffic
from dockroll.registry._transport import SchemeTransport

__all__ = ["BlobPush", "RegistryClient", "registry_scheme"]

BlobPush = Literal["mounted", "uploaded"]
"""How a blob reached the repository: linked from another one, or sent."""

_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_LINK_NEXT = re.compile(r"<([^>]+)>\s*;\s*rel=\"?next\"?")
_OCTET_STREAM = "application/octet-stream"
_DEFAULT_CHUNK = 1024 * 1024

_log = logging.getLogger(__name__)


def registry_scheme(host: str, insecure: Collection[str] = ()) -> Literal["http", "https"]:
    """``http`` for loopback hosts and those matching ``insecure``, else ``https``.

    ``insecure`` holds ``host``, ``host:port`` or glob patterns such as
    ``*:5000``, the way the Docker daemon's ``insecure-registries`` reads.
    """
    if is_loopback_registry(host):
        return "http"
    name = registry_hostname(host)
    for pattern in insecure:
        if fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(name, pattern):
            return "http"
    return "https"


class RegistryClient:
    """Talks the OCI distribution API to one registry host.

    Reusable and closeable (also a context manager). Every method raises a
    :class:`~dockroll.errors.RegistryError` subclass with an actionable
    message; secrets never appear in messages or ``repr``. ``transport`` is the
    seam for tests (``httpx.MockTransport``); ``traffic`` counts body bytes.
    """

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        lookup_credentials: bool = True,
        insecure: Collection[str] = (),
        scheme: Literal["http", "https"] | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Create a client of ``host`` (``name[:port]``).

        Without ``credentials`` they are looked up (environment, docker config)
        unless ``lookup_credentials`` is False, which means anonymous.
        """
        if not host or "/" in host:
            raise UsageError(f"{host!r} is not a registry host; expected name[:port]")
        self.host = host
        self.scheme = scheme or registry_scheme(host, insecure)
        if credentials is None and lookup_credentials:
            credentials = find_credentials(host)
        self.credentials = credentials
        self._auth = RegistryAuth(host, credentials)
        self._counting = CountingTransport(transport or SchemeTransport())
        self._http = httpx.Client(
            base_url=f"{self.scheme}://{host}",
            auth=self._auth,
            transport=self._counting,
            timeout=timeout,
            headers={"User-Agent": "dockroll"},
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r}, credentials={self.credentials!r})"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def traffic(self) -> Traffic:
        """Requests and body bytes sent/received so far by this client."""
        return self._counting.traffic

    @property
    def token_requests(self) -> int:
        """How many bearer tokens were fetched (cached tokens are not counted)."""
        return self._auth.token_requests

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API ---------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers ``/v2/`` (and accepts the credentials)."""
        self._request("GET", "/v2/", what="answer /v2/")

    def manifest_digest(self, repository: str, reference: str) -> Digest | None:
        """The digest a tag or digest points to, or None when there is none (HEAD)."""
        response = self._request(
            "HEAD",
            _manifest_path(repository, reference),
            what=f"look up {self._name(repository, reference)}",
            headers={"Accept": _ACCEPT},
            ok=(200, 404),
        )
        if response.status_code == 404:
            return None
        header = response.headers.get("Docker-Content-Digest")
        if header and is_digest(header):
            return Digest(header)
        if is_digest(reference):
            return Digest(reference)
        # Spec: the header is optional; the digest of the bytes is the truth.
        return self.get_manifest(repository, reference).digest

    def resolve(self, repository: str, reference: str) -> Digest:
        """The digest a tag (or digest) points to; raises ManifestNotFound."""
        digest = self.manifest_digest(repository, reference)
        if digest is None:
            raise self._not_found(repository, reference)
        return digest

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest bytes exactly as stored, with media type and digest."""
        response = self._request(
            "GET",
            _manifest_path(repository, reference),
            what=f"get {self._name(repository, reference)}",
            headers={"Accept": _ACCEPT},
            kind="manifest",
            repository=repository,
            reference=reference,
        )
        content = response.content
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            media_type = ""
        manifest = Manifest.from_bytes(content, media_type or None)
        expected = reference if is_digest(reference) else None
        header = response.headers.get("Docker-Content-Digest")
        if header and is_digest(header):
            expected = expected or header
        if expected is not None and expected != manifest.digest:
            raise DigestMismatch(
                f"registry {self.host} served {self._name(repository, reference)} "
                f"with digest {manifest.digest}, expected {expected}"
            )
        return manifest

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> Digest:
        """Store ``manifest`` byte for byte under a tag or its digest; returns the digest."""
        response = self._request(
            "PUT",
            _manifest_path(repository, reference),
            what=f"put {self._name(repository, reference)}",
            headers={"Content-Type": manifest.media_type},
            content=manifest.content,
            ok=(200, 201),
        )
        header = response.headers.get("Docker-Content-Digest")
        stored = Digest(header) if header and is_digest(header) else manifest.digest
        if stored != manifest.digest:
            raise DigestMismatch(
                f"registry {self.host} stored {self._name(repository, reference)} as {stored}, "
                f"but the bytes sent hash to {manifest.digest}"
            )
        return stored

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        """Delete a manifest by digest (every tag pointing to it goes too)."""
        if not is_digest(digest):
            raise UsageError(f"delete a manifest by digest, not by tag ({digest!r})")
        self._request(
            "DELETE",
            _manifest_path(repository, digest),
            what=f"delete {self._name(repository, digest)}",
            ok=(202, 200),
            kind="manifest",
            repository=repository,
            reference=digest,
        )

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """Whether the repository holds the blob (HEAD)."""
        response = self._request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            what=f"look up blob {digest} in {repository}",
            ok=(200, 404),
            follow_redirects=True,
        )
        return response.status_code == 200

    def get_blob(self, repository: str, digest: Digest) -> bytes:
        """A whole blob in memory, checked against its digest."""
        return b"".join(self.iter_blob(repository, digest))

    def iter_blob(
        self, repository: str, digest: Digest, *, chunk_size: int = _DEFAULT_CHUNK
    ) -> Generator[bytes, None, None]:
        """Stream a blob; raises DigestMismatch at the end if the bytes do not hash right."""
        what = f"get blob {digest} from {repository}"
        hasher = hashlib.sha256()
        try:
            with self._http.stream(
                "GET", f"/v2/{repository}/blobs/{digest}", follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise_for(response, what)
                for chunk in response.iter_bytes(chunk_size):
                    hasher.update(chunk)
                    yield chunk
        except httpx.TransportError as exc:
            self._unavailable(exc)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise DigestMismatch(
                f"blob {digest} from registry {self.host}/{repository} hashes to {actual}"
            )

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Link a blob from another repository of this registry; False if it declined."""
        start = self._start_upload(repository, digest, from_repository)
        if start is None:
            return True
        # A declined mount opens an upload session; do not leave it dangling.
        with contextlib.suppress(httpx.HTTPError):
            self._http.delete(start)
        return False

    def push_blob(
        self,
        repository: str,
        digest: Digest,
        data: bytes | Iterable[bytes],
        *,
        size: int | None = None,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> BlobPush:
        """Upload a blob: mount it from ``mount_from`` when the registry can, else send it.

        ``bytes`` go in one PUT (monolithic); an iterable is streamed (give
        ``size`` so it goes with a Content-Length); ``chunk_size`` sends PATCH
        requests of that many bytes with Content-Range, then a closing PUT.
        """
        location = self._start_upload(repository, digest, mount_from)
        if location is None:
            return "mounted"
        what = f"upload blob {digest} to {repository}"
        if chunk_size is not None:
            location = self._patch_chunks(location, data, chunk_size, what)
            body: bytes | Iterable[bytes] = b""
        else:
            body = data
        headers = {"Content-Type": _OCTET_STREAM}
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        elif size is not None:
            headers["Content-Length"] = str(size)
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        response = self._request(
            "PUT", url, what=what, headers=headers, content=body, ok=(201, 204)
        )
        header = response.headers.get("Docker-Content-Digest")
        if header and header != digest:
            raise DigestMismatch(f"registry {self.host} stored blob {digest} as {header}")
        return "uploaded"

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination."""
        pages = self._paginate(
            f"/v2/{repository}/tags/list", page_size, what=f"list tags of {repository}"
        )
        tags: list[str] = []
        for page in pages:
            tags.extend(str(tag) for tag in page.get("tags") or [])
        return tags

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        """Every repository of the registry (registries may refuse this)."""
        repositories: list[str] = []
        for page in self._paginate("/v2/_catalog", page_size, what="list repositories"):
            repositories.extend(str(name) for name in page.get("repositories") or [])
        return repositories

    # -- plumbing --------------------------------------------------------

    def _start_upload(self, repository: str, digest: Digest, mount_from: str | None) -> str | None:
        """POST an upload; None when the blob was mounted, else the session URL."""
        params = {"mount": digest, "from": mount_from} if mount_from else None
        response = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            what=f"start an upload of {digest} to {repository}",
            params=params,
            headers={"Content-Length": "0"},
            ok=(201, 202),
        )
        if response.status_code == 201:
            return None
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"registry {self.host} opened an upload to {repository} without a Location"
            )
        return str(self._http.base_url.join(location))

    def _patch_chunks(
        self, location: str, data: bytes | Iterable[bytes], chunk_size: int, what: str
    ) -> str:
        offset = 0
        for chunk in _rechunk(data, chunk_size):
            response = self._request(
                "PATCH",
                location,
                what=what,
                headers={
                    "Content-Type": _OCTET_STREAM,
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    "Content-Length": str(len(chunk)),
                },
                content=chunk,
                ok=(202, 204),
            )
            offset += len(chunk)
            location = str(self._http.base_url.join(response.headers.get("Location", location)))
        return location

    def _paginate(self, path: str, page_size: int | None, *, what: str) -> Iterator[dict[str, Any]]:
        url: str | httpx.URL = path
        params = {"n": str(page_size)} if page_size else None
        seen: set[str] = set()
        while True:
            response = self._request("GET", url, what=what, params=params)
            body = response.json()
            yield body if isinstance(body, dict) else {}
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            if match is None:
                return
            next_url = str(self._http.base_url.join(match.group(1)))
            if next_url in seen:  # a registry looping its Link must not loop us
                return
            seen.add(next_url)
            url, params = next_url, None

    def _request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        ok: tuple[int, ...] = (200,),
        follow_redirects: bool = False,
        kind: Literal["manifest", "other"] = "other",
        repository: str = "",
        reference: str = "",
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                url,
                headers=headers,
                params=params,
                content=content,
                follow_redirects=follow_redirects,
            )
        except httpx.TransportError as exc:
            _log.debug("%s %s (%s): %s", method, url, what, exc)
            self._unavailable(exc)
        except httpx.StreamConsumed as exc:
            raise RegistryAuthError(
                f"registry {self.host} asked for credentials in the middle of a streamed "
                f"upload ({what}); the stream cannot be replayed",
                hint=auth_hint(self.host),
            ) from exc
        _log.debug("%s %s (%s): %s", method, response.url, what, response.status_code)
        if response.status_code in ok:
            return response
        if response.status_code == 404 and kind == "manifest":
            raise self._not_found(repository, reference)
        self._raise_for(response, what)

    def _name(self, repository: str, reference: str) -> str:
        sep = "@" if is_digest(reference) else ":"
        return f"{self.host}/{repository}{sep}{reference}"

    def _not_found(self, repository: str, reference: str) -> ManifestNotFound:
        return ManifestNotFound(
            f"{self._name(repository, reference)} not found: "
            f"registry {self.host} has no manifest {reference!r} in {repository!r}",
            hint="check the repository and tag, or push the image first",
        )

    def _unavailable(self, exc: httpx.TransportError) -> NoReturn:
        if isinstance(exc, httpx.TimeoutException):
            reason = "timed out"
        elif isinstance(exc, httpx.ConnectError):
            reason = "connection refused" if "refused" in str(exc).lower() else f"{exc}"
        else:
            reason = str(exc) or type(exc).__name__
        raise RegistryUnavailable(
            f"registry {self.host} is not answering: {reason} — is it running?",
            hint=registry_unreachable_hint(self.host),
        ) from exc

    def _raise_for(self, response: httpx.Response, what: str) -> NoReturn:
        status = response.status_code
        detail = _error_detail(response)
        said = f"HTTP {status}" + (f" {detail}" if detail else "")
        if status in (401, 403):
            if self.credentials is None:
                message = f"registry {self.host} requires credentials to {what}: {said}"
            elif status == 403:
                message = (
                    f"registry {self.host} denied {self.credentials.username!r} "
                    f"(from {self.credentials.source}) the right to {what}: {said}"
                )
            else:
                message = (
                    f"registry {self.host} refused the credentials of "
                    f"{self.credentials.username!r} (from {self.credentials.source}) "
                    f"to {what}: {said}"
                )
            raise RegistryAuthError(message, hint=auth_hint(self.host))
        if status == 400 and "DIGEST_INVALID" in detail:
            raise DigestMismatch(f"registry {self.host} could not {what}: {said}")
        if status >= 500:
            raise RegistryUnavailable(
                f"registry {self.host} failed to {what}: {said}",
                hint="the registry is up but broken; check its log",
            )
        hint = None
        if status == 405 and response.request.method == "DELETE":
            hint = "the registry does not allow deletes; enable storage.delete in its config"
        raise RegistryError(f"registry {self.host} could not {what}: {said}", hint=hint)


def _manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{repository}/manifests/{reference}"


def _error_detail(response: httpx.Response) -> str:
    """``CODE: message`` from the registry's JSON error body, if it sent one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict):
            code, message = error.get("code", ""), error.get("message", "")
            parts.append(f"{code}: {message}" if code and message else str(code or message))
    return "; ".join(part for part in parts if part)


def _rechunk(data: bytes | Iterable[bytes], size: int) -> Iterator[bytes]:
    if size <= 0:
        raise UsageError(f"chunk size must be positive, not {size}")
    if isinstance(data, bytes):
        for start in range(0, len(data), size):
            yield data[start : start + size]
        return
    buffer = bytearray()
    for piece in data:
        buffer.extend(piece)
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
