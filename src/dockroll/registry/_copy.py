"""Promotion by digest: retag within a repository, copy across repositories/registries.

Both write the manifest bytes exactly as read, so the destination digest is
the source digest. Both are idempotent: when the destination already points to
the digest (checked with HEAD), nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockroll.errors import DigestMismatch, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.refs import Digest, ImageRef, parse_reference
from dockroll.registry._client import RegistryClient
from dockroll.registry._media import Manifest
from dockroll.registry._traffic import Traffic

__all__ = ["CopyResult", "copy", "retag"]


@dataclass(frozen=True)
class CopyResult:
    """What a retag or copy did."""

    source: ImageRef
    destination: ImageRef
    digest: Digest
    """The digest now at the destination, equal to the source's."""
    written: bool
    """False when the destination already pointed to the digest."""
    manifests_written: int = 0
    manifests_skipped: int = 0
    blobs_mounted: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    bytes_sent: int = 0
    """Body bytes sent to the registries (uploads, manifests)."""
    bytes_received: int = 0
    """Body bytes received from the registries (downloads, manifests)."""
    requests: int = 0


def _as_ref(value: ImageRef | str) -> ImageRef:
    return value if isinstance(value, ImageRef) else parse_reference(value)


def _reference(ref: ImageRef) -> str:
    reference = ref.digest or ref.tag
    if reference is None:
        raise UsageError(f"{ref} names neither a tag nor a digest")
    return reference


def _check_host(ref: ImageRef, client: RegistryClient, role: str) -> None:
    if ref.registry != client.host:
        raise UsageError(
            f"the {role} {ref} is on registry {ref.registry}, but the client talks to {client.host}"
        )


def _traffic(*clients: RegistryClient) -> Traffic:
    total = Traffic()
    for client in {id(client): client for client in clients}.values():
        total = total + client.traffic
    return total


def retag(
    client: RegistryClient,
    source: ImageRef | str,
    tag: str,
    *,
    progress: ProgressCallback = discard,
) -> CopyResult:
    """Point ``tag`` of the source's repository at the source's digest.

    No blob moves: the manifest bytes are read and put back under the new
    tag. When the tag already points there, only two HEADs are sent.
    """
    src = _as_ref(source)
    _check_host(src, client, "source")
    destination = src.with_tag(tag)
    before = client.traffic
    digest = client.resolve(src.repository, _reference(src))
    current = client.manifest_digest(src.repository, tag)
    written = current != digest
    if written:
        progress(Progress("promote", f"tagging {destination} → {digest}"))
        manifest = client.get_manifest(src.repository, digest)
        client.put_manifest(src.repository, tag, manifest)
        _verify(client, destination, digest)
    else:
        progress(Progress("promote", f"{destination} already points to {digest}"))
    moved = client.traffic - before
    return CopyResult(
        source=src,
        destination=destination,
        digest=digest,
        written=written,
        manifests_written=1 if written else 0,
        manifests_skipped=0 if written else 1,
        bytes_sent=moved.bytes_sent,
        bytes_received=moved.bytes_received,
        requests=moved.requests,
    )


def copy(
    source: ImageRef | str,
    destination: ImageRef | str,
    src_client: RegistryClient,
    dst_client: RegistryClient | None = None,
    *,
    progress: ProgressCallback = discard,
) -> CopyResult:
    """Copy an image or index to another repository or registry, keeping its digest.

    An index's child manifests go first (by digest), then the index. For an
    image manifest the config and layers go first: blobs the destination has
    are skipped, blobs in another repository of the same registry are
    mounted, the rest are streamed from source to destination. Then the
    manifest bytes are put, and the destination's digest is checked.
    """
    src, dst = _as_ref(source), _as_ref(destination)
    dst_client = dst_client or src_client
    _check_host(src, src_client, "source")
    _check_host(dst, dst_client, "destination")
    before = _traffic(src_client, dst_client)
    digest = src_client.resolve(src.repository, _reference(src))
    if dst.digest is not None and dst.digest != digest:
        raise UsageError(f"cannot copy {src} ({digest}) to {dst}: the digests differ")
    dst_reference = dst.tag or digest
    copier = _Copier(src_client, src.repository, dst_client, dst.repository, progress)
    written = dst_client.manifest_digest(dst.repository, dst_reference) != digest
    if written:
        progress(Progress("promote", f"copying {src} → {dst} ({digest})"))
        manifest = src_client.get_manifest(src.repository, digest)
        copier.copy_manifest(manifest, dst_reference)
        _verify(dst_client, dst, digest)
    else:
        copier.manifests_skipped += 1
        progress(Progress("promote", f"{dst} already points to {digest}"))
    moved = _traffic(src_client, dst_client) - before
    return CopyResult(
        source=src,
        destination=dst if dst.digest else dst.with_tag(dst_reference),
        digest=digest,
        written=written,
        manifests_written=copier.manifests_written,
        manifests_skipped=copier.manifests_skipped,
        blobs_mounted=copier.blobs_mounted,
        blobs_copied=copier.blobs_copied,
        blobs_skipped=copier.blobs_skipped,
        bytes_sent=moved.bytes_sent,
        bytes_received=moved.bytes_received,
        requests=moved.requests,
    )


def _verify(client: RegistryClient, ref: ImageRef, digest: Digest) -> None:
    stored = client.manifest_digest(ref.repository, ref.tag or digest)
    if stored != digest:
        raise DigestMismatch(
            f"after the copy {ref} points to {stored}, not to the source digest {digest}"
        )


class _Copier:
    def __init__(
        self,
        src: RegistryClient,
        src_repository: str,
        dst: RegistryClient,
        dst_repository: str,
        progress: ProgressCallback,
    ) -> None:
        self.src, self.src_repository = src, src_repository
        self.dst, self.dst_repository = dst, dst_repository
        self.progress = progress
        # Mounting needs both repositories in one registry.
        self.can_mount = src is dst or src.host == dst.host
        self.manifests_written = 0
        self.manifests_skipped = 0
        self.blobs_mounted = 0
        self.blobs_copied = 0
        self.blobs_skipped = 0

    def copy_manifest(self, manifest: Manifest, reference: str) -> None:
        for child in manifest.children():
            if self.dst.manifest_digest(self.dst_repository, child.digest) == child.digest:
                self.manifests_skipped += 1
                continue
            self.copy_manifest(
                self.src.get_manifest(self.src_repository, child.digest), child.digest
            )
        for blob in manifest.blobs():
            if blob.urls:
                # Foreign layers live elsewhere by design; registries do not hold them.
                continue
            if self.dst.blob_exists(self.dst_repository, blob.digest):
                self.blobs_skipped += 1
                continue
            mount_from = self.src_repository if self.can_mount else None
            # A generator sends nothing until iterated, so a mount costs no download.
            data = self.src.iter_blob(self.src_repository, blob.digest)
            try:
                how = self.dst.push_blob(
                    self.dst_repository, blob.digest, data, size=blob.size, mount_from=mount_from
                )
            finally:
                data.close()
            if how == "mounted":
                self.blobs_mounted += 1
            else:
                self.blobs_copied += 1
            self.progress(Progress("promote", f"blob {blob.digest} {how}", detail=True))
        self.dst.put_manifest(self.dst_repository, reference, manifest)
        self.manifests_written += 1
