"""An in-memory OCI registry behind ``httpx.MockTransport``, for unit tests.

It speaks just enough of the distribution API (manifests, blobs, uploads with
mount and chunks, tags pagination, catalog) and of Basic / Bearer auth to
exercise the client; every request is recorded for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"errors": [{"code": code, "message": message}]}
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class FakeRegistry:
    host: str = "registry.test"
    auth: Literal["none", "basic", "bearer"] = "none"
    username: str = "alice"
    password: str = "s3cret-pw"
    token_lifetime: int = 300
    send_digest_header: bool = True
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    manifests: dict[str, dict[str, tuple[bytes, str]]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path, Authorization scheme) as each request arrived."""
    token_requests: list[httpx.Request] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- seeding --------------------------------------------------------

    def add_blob(self, repository: str, content: bytes) -> dict[str, Any]:
        digest = digest_of(content)
        self.blobs.setdefault(repository, {})[digest] = content
        return {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": len(content),
        }

    def add_manifest(
        self, repository: str, content: bytes, media_type: str, tag: str | None = None
    ) -> str:
        digest = digest_of(content)
        self.manifests.setdefault(repository, {})[digest] = (content, media_type)
        if tag:
            self.tags.setdefault(repository, {})[tag] = digest
        return digest

    def add_image(
        self, repository: str, tag: str | None, *, layers: int = 2, seed: str = ""
    ) -> tuple[bytes, str]:
        config = json.dumps({"os": "linux", "architecture": "amd64", "seed": seed}).encode()
        config_descriptor = self.add_blob(repository, config)
        config_descriptor["mediaType"] = "application/vnd.oci.image.config.v1+json"
        layer_descriptors = [
            self.add_blob(repository, f"layer {seed} {i}".encode() * 50) for i in range(layers)
        ]
        # Deliberately odd formatting: a copy must not re-serialise it.
        content = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor,
                "layers": layer_descriptors,
            },
            indent=7,
        ).encode()
        return content, self.add_manifest(repository, content, OCI_MANIFEST, tag)

    # -- the protocol -----------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return self._token(request)
        self.requests.append(request)
        scheme = request.headers.get("Authorization", "").partition(" ")[0]
        self.log.append((request.method, request.url.path, scheme))
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if path == "/v2/_catalog":
            return self._paginated(
                request, sorted(set(self.manifests) | set(self.blobs)), "repositories"
            )
        match = re.match(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)$", path)
        if match is None:
            return error(404, "NAME_UNKNOWN", "unknown path")
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if kind == "tags":
            return self._paginated(request, sorted(self.tags.get(name, {})), "tags", name=name)
        if kind == "manifests":
            return self._manifest(request, name, rest)
        if rest.startswith("uploads/"):
            return self._upload(request, name, rest.removeprefix("uploads/"))
        return self._blob(request, name, rest)

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("Authorization", "")
        if self.auth == "none":
            return None
        if self.auth == "basic":
            expected = (
                "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            )
            if header == expected:
                return None
            return error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                {"WWW-Authenticate": 'Basic realm="fake"'},
            )
        if header.startswith("Bearer ") and header.removeprefix("Bearer ") in self.issued:
            return None
        scope = "registry:catalog:*"
        match = re.match(r"^/v2/(.+)/(manifests|blobs|tags)/", request.url.path)
        if match:
            action = "pull" if request.method in {"GET", "HEAD"} else "pull,push"
            scope = f"repository:{match[1]}:{action}"
        challenge = f'Bearer realm="https://auth.test/token",service="{self.host}",scope="{scope}"'
        return error(
            401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        header = request.headers.get("Authorization")
        if header is not None:
            expected = (
                "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            )
            if header != expected:
                return httpx.Response(401, json={"details": "incorrect username or password"})
        token = f"tok-{uuid.uuid4().hex}"
        self.issued.add(token)
        return httpx.Response(200, json={"token": token, "expires_in": self.token_lifetime})

    def _paginated(
        self, request: httpx.Request, items: list[str], key: str, name: str = ""
    ) -> httpx.Response:
        n = request.url.params.get("n")
        last = request.url.params.get("last")
        if last:
            items = [item for item in items if item > last]
        headers = {}
        if n is not None and len(items) > int(n):
            items = items[: int(n)]
            headers["Link"] = f'<{request.url.path}?n={n}&last={items[-1]}>; rel="next"'
        body: dict[str, Any] = {key: items}
        if name:
            body["name"] = name
        return httpx.Response(200, json=body, headers=headers)

    def _manifest(self, request: httpx.Request, name: str, reference: str) -> httpx.Response:
        stored = self.manifests.setdefault(name, {})
        if request.method == "PUT":
            content = request.read()
            media_type = request.headers["Content-Type"]
            digest = self.add_manifest(
                name, content, media_type, None if reference.startswith("sha256:") else reference
            )
            return httpx.Response(
                201,
                headers={
                    "Docker-Content-Digest": digest,
                    "Location": f"/v2/{name}/manifests/{digest}",
                },
            )
        digest = (
            reference
            if reference.startswith("sha256:")
            else self.tags.get(name, {}).get(reference, "")
        )
        if digest not in stored:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        if request.method == "DELETE":
            del stored[digest]
            self.tags[name] = {t: d for t, d in self.tags.get(name, {}).items() if d != digest}
            return httpx.Response(202)
        content, media_type = stored[digest]
        headers = {"Content-Type": media_type}
        if self.send_digest_header:
            headers["Docker-Content-Digest"] = digest
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(content))
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, content=content, headers=headers)

    def _blob(self, request: httpx.Request, name: str, digest: str) -> httpx.Response:
        content = self.blobs.get(name, {}).get(digest)
        if content is None:
            return error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        if request.method == "HEAD":
            return httpx.Response(
                200, headers={"Content-Length": str(len(content)), "Docker-Content-Digest": digest}
            )
        return httpx.Response(200, content=content)

    def _upload(self, request: httpx.Request, name: str, session: str) -> httpx.Response:
        if request.method == "POST":
            mount, source = request.url.params.get("mount"), request.url.params.get("from")
            if mount and source and mount in self.blobs.get(source, {}):
                self.blobs.setdefault(name, {})[mount] = self.blobs[source][mount]
                return httpx.Response(201, headers={"Docker-Content-Digest": mount})
            new = uuid.uuid4().hex
            self.uploads[new] = bytearray()
            return httpx.Response(
                202,
                headers={"Location": f"/v2/{name}/blobs/uploads/{new}?_state=x", "Range": "0-0"},
            )
        if session not in self.uploads:
            return error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
        buffer = self.uploads[session]
        if request.method == "DELETE":
            del self.uploads[session]
            return httpx.Response(204)
        body = request.read()
        if request.method == "PATCH":
            content_range = request.headers.get("Content-Range")
            if content_range is not None:
                start, _, end = content_range.partition("-")
                if int(start) != len(buffer) or int(end) != len(buffer) + len(body) - 1:
                    return httpx.Response(416)
            buffer.extend(body)
            return httpx.Response(
                202,
                headers={
                    "Location": f"/v2/{name}/blobs/uploads/{session}?_state=y",
                    "Range": f"0-{len(buffer) - 1}",
                },
            )
        # PUT closes the upload.
        buffer.extend(body)
        digest = request.url.params["digest"]
        if digest_of(bytes(buffer)) != digest:
            return error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        self.blobs.setdefault(name, {})[digest] = bytes(buffer)
        del self.uploads[session]
        return httpx.Response(
            201, headers={"Docker-Content-Digest": digest, "Location": f"/v2/{name}/blobs/{digest}"}
        )
