"""Set-up shared by the remote-engine tests (ssh://, tcp:// with TLS, Swarm).

:func:`remote_cluster` gives a test module a cluster of its own (a bridge
network and a relay to this machine's registry) and removes everything
labelled for it afterwards; :func:`remote_environment` is the part of an
environment every remote test shares (the engine, the registry as the nodes
see it, the router published beyond the node's loopback, two replicas);
:func:`deploy_version` deploys one of the seeded versions in process.

:func:`ssh_host` starts one node (dockerd + sshd, see
:mod:`dockroll.devenv.cluster`) that publishes its sshd and the given router
ports on this machine's 127.0.0.1, makes a key pair and a known_hosts of
its own, and puts an ``ssh`` wrapper first on the PATH that uses them, so
the user's own ~/.ssh is never read or written. Everything is removed
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockroll.devenv import ensure_commands
from dockroll.devenv.cluster import (
    NodeSpec,
    ensure_node_image,
    ensure_registry_relay,
    remove_cluster,
    start_node,
)
from dockroll.events import Progress
from dockroll.pipeline.deploy import deploy_release
from tests.integration.rollout_support import Seeded

OLD, NEW = "v1.0.0", "v1.1.0"
"""The two good releases every remote test moves between."""

# A blue-green verify command: appends to the file it is given the URL it got and
# the version answering there.
VERIFY = (
    "import json, os, sys, urllib.request\n"
    "url = os.environ['TARGET_URL']\n"
    "answer = json.load(urllib.request.urlopen(url + '/version', timeout=10))\n"
    "open(sys.argv[1], 'a').write(json.dumps({'url': url, 'version': answer['version']}) + '\\n')\n"
)


@dataclass(frozen=True)
class RemoteCluster:
    name: str
    """The cluster label's value: everything made for it is removed with it."""
    network: str
    registry: str
    """This machine's registry as the cluster's nodes reach it (the relay)."""


@contextlib.contextmanager
def remote_cluster(prefix: str) -> Iterator[RemoteCluster]:
    """A fresh cluster ``<prefix>-<id>`` with its network and registry relay; removed afterwards.

    Whatever the test starts with the cluster's label (nodes, their volumes) goes too.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    network = f"dockroll-{name}"
    try:
        yield RemoteCluster(name, network, ensure_registry_relay(name, network))
    finally:
        remove_cluster(name)


def remote_environment(engine: str, registry: str, **settings: Any) -> dict[str, Any]:
    """An environment on a remote engine: the settings every remote test shares, then ``settings``.

    The router is published on every address of the node (which publishes it on
    this machine's 127.0.0.1); two replicas, so a rollout has something to keep.
    """
    return {
        "engine": engine,
        "registry": registry,
        "router_bind": "0.0.0.0",
        "replicas": 2,
        **settings,
    }


def _print_progress(event: Progress) -> None:
    print(f"  [{event.stage}] {event.message}")


def deploy_version(seeded: Seeded, environment: str, version: str) -> str:
    """Deploy a seeded version in process; the outcome's status ("unchanged" when none)."""
    with seeded.ledger() as ledger:
        outcome = deploy_release(
            seeded.config(),
            environment,
            seeded.releases[version],
            ledger,
            progress=_print_progress,
        )
    return outcome.status if outcome else "unchanged"


@dataclass(frozen=True)
class SshHost:
    name: str
    endpoint: str
    """``ssh://root@127.0.0.1:PORT``."""
    registry: str
    """The host registry's address as the node sees it."""
    known_hosts: Path
    ssh_port: int


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as c:
            # sshd greets first; docker-proxy accepts even when nothing is behind it
            c.settimeout(2)
            if c.recv(4).startswith(b"SSH-"):
                return
        if time.monotonic() >= deadline:
            raise AssertionError(f"no sshd answers on 127.0.0.1:{port}")
        time.sleep(0.3)


@contextlib.contextmanager
def ssh_host(
    tmp: Path,
    *,
    cluster: str,
    network: str,
    registry: str,
    ssh_port: int,
    router_ports: Sequence[int],
) -> Iterator[SshHost]:
    """A DinD node with sshd on 127.0.0.1:``ssh_port``; its router ports published there too.

    The caller removes the cluster (:func:`remove_cluster`).
    """
    ensure_commands(
        {"ssh": "openssh-client", "ssh-keygen": "openssh-client", "ssh-keyscan": "openssh-client"}
    )
    ensure_node_image()
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = f"dockroll-{cluster}-host"
    start_node(
        NodeSpec(
            name=name,
            cluster=cluster,
            network=network,
            publish={ssh_port: 22, **{port: port for port in router_ports}},
            authorized_key=(tmp / "id_ed25519.pub").read_text().strip(),
            insecure_registries=(registry,),
        )
    )
    _wait_for_port(ssh_port)
    known_hosts = tmp / "known_hosts"
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(ssh_port), "127.0.0.1"],
        check=True,
        capture_output=True,
        text=True,
    )
    known_hosts.write_text(scanned.stdout)
    config = tmp / "ssh_config"
    config.write_text(
        "Host *\n"
        f"    IdentityFile {key}\n"
        "    IdentitiesOnly yes\n"
        "    StrictHostKeyChecking yes\n"
        "    LogLevel ERROR\n"
    )
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    # The known_hosts file is named per call, so a test can swap in an empty one.
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec /usr/bin/ssh -F {config} -o "UserKnownHostsFile='
        f'${{DOCKROLL_TEST_KNOWN_HOSTS:-{known_hosts}}}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield SshHost(
            name=name,
            endpoint=f"ssh://root@127.0.0.1:{ssh_port}",
            registry=registry,
            known_hosts=known_hosts,
            ssh_port=ssh_port,
        )
