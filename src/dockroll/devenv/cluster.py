"""Docker-in-Docker nodes: stand-ins for remote hosts and Swarm nodes on one machine.

A node is a container of :data:`NODE_IMAGE` (Debian with docker.io, iptables
and openssh-server, built once from the local Debian base and cached) running
its own dockerd and sshd. Nodes join one user-defined bridge network; each has
its own volume at /var/lib/docker (so overlay2 works, not vfs). They reach the
host's registry, which listens on 127.0.0.1 only, through a relay container on
the host's network that listens on the bridge's gateway address, and trust it
as an insecure registry.

Every node, volume, network and relay created here carries the label
``dev.dockroll.cluster=<cluster>`` so :func:`remove_cluster` removes exactly
what one cluster made and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockroll.devenv.base_images import DEBIAN, PYTHON, ensure_base_image
from dockroll.devenv.report import ComponentReport, ComponentState
from dockroll.devenv.system import LocalSystem, System
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = [
    "CLUSTER_LABEL",
    "INGRESS_LABEL",
    "NODE_IMAGE",
    "SWARM_CLUSTER",
    "Node",
    "NodeSpec",
    "SwarmCluster",
    "ensure_node_image",
    "ensure_registry_relay",
    "ensure_swarm",
    "node_engine",
    "remove_cluster",
    "start_node",
    "swarm_report",
]

NODE_IMAGE = "dockroll.local/node:bookworm"
CLUSTER_LABEL = "dev.dockroll.cluster"
_RECIPE_LABEL = "dev.dockroll.node-recipe"

_NODE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN set -eux; \\
    apt-get update; \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
        docker.io iptables openssh-server procps; \\
    rm -rf /var/lib/apt/lists/*; \\
    mkdir -p /run/sshd /root/.ssh; \\
    chmod 700 /root/.ssh; \\
    rm -f /etc/ssh/ssh_host_*
COPY node-entrypoint.sh /usr/local/bin/
VOLUME /var/lib/docker
ENTRYPOINT ["node-entrypoint.sh"]
"""

# Host keys are made per node at its first start, so two nodes never share one.
_NODE_ENTRYPOINT = """\
#!/bin/sh
set -e
if [ -n "$NODE_AUTHORIZED_KEY" ]; then
    printf '%s\\n' "$NODE_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
fi
ssh-keygen -A
/usr/sbin/sshd
# Without --privileged the cgroup v1 hierarchies are mounted read-only; in the
# node's own cgroup namespace they can be mounted afresh, writable, for dockerd.
if grep -q ' /sys/fs/cgroup/cpuset ro,' /proc/self/mountinfo; then
    for path in /sys/fs/cgroup/*; do
        [ -L "$path" ] && continue
        name=${path##*/}
        case "$name" in systemd) options=none,name=systemd ;; *) options=$name ;; esac
        umount "$path" && mount -t cgroup -o "$options" cgroup "$path"
    done
fi
set --
for registry in $NODE_INSECURE_REGISTRIES; do
    set -- "$@" --insecure-registry "$registry"
done
for address in $NODE_DOCKERD_HOSTS; do
    set -- "$@" --host "$address"
done
for argument in $NODE_DOCKERD_ARGS; do
    set -- "$@" "$argument"
done
exec dockerd --host=unix:///var/run/docker.sock "$@"
"""

# A relay from the bridge's gateway to the host's registry on 127.0.0.1: the
# registry stays on loopback, and only this machine's own containers reach it.
_RELAY = """\
import socket, sys, threading
listen, port, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def pump(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
server = socket.create_server((listen, port), reuse_port=False)
while True:
    client, _ = server.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", target), 10)
    except OSError:
        client.close()
        continue
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
"""

# The docker security options under which dockerd runs in a container here
# (--privileged needs CAP_SYS_RESOURCE, which the machine may lack).
_DIND_FLAGS = (
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
)


def _recipe() -> str:
    return hashlib.sha256((_NODE_DOCKERFILE + _NODE_ENTRYPOINT).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NodeSpec:
    """One node to start."""

    name: str
    cluster: str
    network: str
    publish: Mapping[int, int] = field(default_factory=dict)
    """Host port on 127.0.0.1 → port in the node (its sshd is on 22)."""
    authorized_key: str | None = None
    """An ssh public key root may log in with."""
    insecure_registries: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    dockerd_hosts: Sequence[str] = ()
    """Extra ``-H`` addresses of the node's dockerd (its unix socket is always one)."""
    dockerd_args: Sequence[str] = ()
    """More dockerd options (e.g. ``--tlsverify`` and its files)."""
    volumes: Mapping[str, str] = field(default_factory=dict)
    """Host path → path in the node, read-only."""


@dataclass(frozen=True)
class Node:
    """A running node."""

    name: str
    address: str
    """Its address on the cluster's bridge network."""
    published: Mapping[int, int]
    """Port in the node → host port on 127.0.0.1."""


def _docker(system: System, *argv: str, timeout: float = 120) -> str:
    done = system.run(["docker", *argv], timeout=timeout)
    if not done.ok:
        raise DevEnvError(f"{done.why()}", hint="is the local Docker engine up? `dockroll dev up`")
    return done.stdout.strip()


def _exists(system: System, kind: str, name: str) -> bool:
    return system.run(["docker", kind, "inspect", name], timeout=30).ok


def ensure_node_image(
    *, system: System | None = None, progress: ProgressCallback = discard, root: Path | None = None
) -> ComponentReport:
    """Build :data:`NODE_IMAGE` unless an image of the current recipe is present."""
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    recipe = _recipe()
    found = system.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", NODE_IMAGE],
        timeout=30,
    )
    if found.ok and (json.loads(found.stdout or "null") or {}).get(_RECIPE_LABEL) == recipe:
        return ComponentReport(f"image {NODE_IMAGE}", ComponentState.UP, "present")
    base = ensure_base_image(DEBIAN, system=system, progress=progress, root=root)[-1]
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    context = Path(tempfile.mkdtemp(prefix="node-", dir=tmp))
    try:
        (context / "Dockerfile").write_text(_NODE_DOCKERFILE)
        script = context / "node-entrypoint.sh"
        script.write_text(_NODE_ENTRYPOINT)
        script.chmod(0o755)
        progress(Progress("dev", f"docker build {NODE_IMAGE} (docker.io, sshd; a few minutes)"))
        done = system.run(
            [
                "docker",
                "build",
                # the build's RUN steps need no bridge of their own (the default one may be gone)
                "--network",
                "host",
                "--build-arg",
                f"BASE={base.facts['image']}",
                "--label",
                f"{_RECIPE_LABEL}={recipe}",
                "-t",
                NODE_IMAGE,
                str(context),
            ],
            timeout=1800,
            on_output=lambda line: progress(Progress("dev", line, detail=True)),
        )
        if not done.ok:
            raise DevEnvError(
                f"building {NODE_IMAGE} failed: {done.why()}",
                hint="the build installs docker.io from Debian: is the Debian mirror reachable?",
            )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    seconds = system.monotonic() - start
    return ComponentReport(
        f"image {NODE_IMAGE}",
        ComponentState.UP,
        f"built in {seconds:.0f} s",
        changed=True,
        seconds=seconds,
    )


def ensure_network(cluster: str, network: str, *, system: System | None = None) -> str:
    """Create the cluster's bridge network unless it exists; returns its gateway address."""
    system = system or LocalSystem()
    if not _exists(system, "network", network):
        _docker(system, "network", "create", "--label", f"{CLUSTER_LABEL}={cluster}", network)
    gateway = _docker(
        system,
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        network,
    )
    if not gateway:
        raise DevEnvError(f"network {network} reports no gateway address")
    return gateway.split()[0] if " " in gateway else gateway


def ensure_registry_relay(
    cluster: str,
    network: str,
    *,
    registry_port: int = 5000,
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
) -> str:
    """Relay the cluster's gateway:``registry_port`` to the host's registry on 127.0.0.1.

    Returns the registry address as the nodes see it (``GATEWAY:PORT``).
    """
    system = system or LocalSystem()
    gateway = ensure_network(cluster, network, system=system)
    name = f"dockroll-relay-{cluster}"
    state = system.run(["docker", "inspect", "--format", "{{.State.Running}}", name], timeout=30)
    if state.ok and state.stdout.strip() == "true":
        return f"{gateway}:{registry_port}"
    if state.ok:
        _docker(system, "rm", "-f", name)
    python = ensure_base_image(PYTHON, system=system, progress=progress, root=root)[-1]
    progress(Progress("dev", f"relaying {gateway}:{registry_port} to the registry"))
    _docker(
        system,
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--restart",
        "unless-stopped",
        "--label",
        f"{CLUSTER_LABEL}={cluster}",
        python.facts["image"],
        "python3",
        "-c",
        _RELAY,
        gateway,
        str(registry_port),
        str(registry_port),
    )
    return f"{gateway}:{registry_port}"


def start_node(spec: NodeSpec, *, system: System | None = None, timeout: float = 120) -> Node:
    """Start (or reuse, when it runs) the node ``spec.name`` and wait until its dockerd answers."""
    system = system or LocalSystem()
    state = system.run(
        ["docker", "inspect", "--format", "{{.State.Running}}", spec.name], timeout=30
    )
    if not (state.ok and state.stdout.strip() == "true"):
        if state.ok:
            _docker(system, "rm", "-f", spec.name)
        argv = [
            "run",
            "-d",
            "--name",
            spec.name,
            "--hostname",
            spec.name,
            *_DIND_FLAGS,
            # its own cgroup namespace: what its dockerd creates nests below the node
            "--cgroupns",
            "private",
            "--network",
            spec.network,
            "--label",
            f"{CLUSTER_LABEL}={spec.cluster}",
            "-v",
            f"{spec.name}-docker:/var/lib/docker",
            "-e",
            f"NODE_INSECURE_REGISTRIES={' '.join(spec.insecure_registries)}",
            "-e",
            f"NODE_DOCKERD_HOSTS={' '.join(spec.dockerd_hosts)}",
            "-e",
            f"NODE_DOCKERD_ARGS={' '.join(spec.dockerd_args)}",
        ]
        for key, value in spec.labels.items():
            argv += ["--label", f"{key}={value}"]
        for source, target in spec.volumes.items():
            argv += ["-v", f"{source}:{target}:ro"]
        if spec.authorized_key:
            argv += ["-e", f"NODE_AUTHORIZED_KEY={spec.authorized_key}"]
        for host_port, node_port in spec.publish.items():
            argv += ["-p", f"127.0.0.1:{host_port}:{node_port}"]
        if not _exists(system, "volume", f"{spec.name}-docker"):
            _docker(
                system,
                "volume",
                "create",
                "--label",
                f"{CLUSTER_LABEL}={spec.cluster}",
                f"{spec.name}-docker",
            )
        _docker(system, *argv, NODE_IMAGE)
    deadline = system.monotonic() + timeout
    while True:
        done = system.run(
            ["docker", "exec", spec.name, "docker", "info", "-f", "{{.ID}}"], timeout=30
        )
        if done.ok:
            break
        if system.monotonic() >= deadline:
            logs = system.run(["docker", "logs", "--tail", "15", spec.name], timeout=30)
            raise DevEnvError(
                f"the engine in node {spec.name} did not start within {timeout:g}s: "
                f"{(logs.stdout + logs.stderr).strip()[-800:]}",
                hint=f"`docker logs {spec.name}` shows dockerd's log",
            )
        system.sleep(0.5)
    address = _docker(
        system,
        "inspect",
        "--format",
        f"{{{{(index .NetworkSettings.Networks {json.dumps(spec.network)}).IPAddress}}}}",
        spec.name,
    )
    return Node(
        name=spec.name,
        address=address,
        published={node: host for host, node in spec.publish.items()},
    )


def node_engine(node: Node | str, *, system: System | None = None) -> str:
    """The node's dockerd version, asked through ``docker exec``."""
    system = system or LocalSystem()
    name = node if isinstance(node, str) else node.name
    return _docker(system, "exec", name, "docker", "version", "-f", "{{.Server.Version}}")


def remove_cluster(cluster: str, *, system: System | None = None) -> list[str]:
    """Remove every node, relay, volume and network labelled for ``cluster``; their names."""
    system = system or LocalSystem()
    selector = f"label={CLUSTER_LABEL}={cluster}"
    removed: list[str] = []
    containers = _docker(system, "ps", "-a", "--filter", selector, "--format", "{{.Names}}")
    for name in containers.split():
        system.run(["docker", "rm", "-f", "-v", name], timeout=120)
        removed.append(name)
    volumes = _docker(system, "volume", "ls", "--filter", selector, "--format", "{{.Name}}")
    for name in volumes.split():
        system.run(["docker", "volume", "rm", "-f", name], timeout=120)
        removed.append(name)
    networks = _docker(system, "network", "ls", "--filter", selector, "--format", "{{.Name}}")
    for name in networks.split():
        system.run(["docker", "network", "rm", name], timeout=60)
        removed.append(name)
    return removed


SWARM_CLUSTER = "swarm"
"""The cluster name of ``dockroll dev up --with swarm``."""
INGRESS_LABEL = "dockroll.ingress"
"""Swarm node label of the nodes the routers may run on."""


@dataclass(frozen=True)
class SwarmCluster:
    """A running Swarm of DinD nodes."""

    cluster: str
    manager: Node
    workers: tuple[Node, ...]
    registry: str
    """The host registry's address as the nodes reach it."""
    engine: str
    """The manager's engine as this machine reaches it (``tcp://127.0.0.1:PORT``)."""

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (self.manager, *self.workers)


def swarm_report(cluster: SwarmCluster) -> ComponentReport:
    """``dev up``'s line for the Swarm: where its manager's engine answers."""
    return ComponentReport(
        f"{cluster.cluster} cluster",
        ComponentState.UP,
        f"manager and {len(cluster.workers)} workers",
        required=False,
        facts={"endpoint": cluster.engine, "registry": cluster.registry},
    )


def _swarm_state(system: System, node: str) -> str:
    return _docker(system, "exec", node, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}")


def ensure_swarm(
    *,
    cluster: str = SWARM_CLUSTER,
    workers: int = 2,
    engine_port: int = 23750,
    publish: Mapping[int, int] | None = None,
    registry_port: int = 5000,
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
) -> SwarmCluster:
    """A Swarm of one manager and ``workers`` workers on one bridge network; idempotent.

    The manager's engine is published on this machine's 127.0.0.1:``engine_port``
    (plain TCP, for a development cluster only) with ``publish`` (host port on
    127.0.0.1 → manager port) for routers; the manager is labelled for
    ingress. Nodes that run and are in the Swarm are reused as they are.
    """
    system = system or LocalSystem()
    network = f"dockroll-{cluster}"
    ensure_node_image(system=system, progress=progress, root=root)
    registry = ensure_registry_relay(
        cluster, network, registry_port=registry_port, system=system, progress=progress, root=root
    )
    progress(Progress("dev", f"starting the {cluster} manager"))
    manager = start_node(
        NodeSpec(
            name=f"dockroll-{cluster}-manager",
            cluster=cluster,
            network=network,
            publish={engine_port: 2375, **dict(publish or {})},
            insecure_registries=(registry,),
            dockerd_hosts=("tcp://0.0.0.0:2375",),
        ),
        system=system,
    )
    if _swarm_state(system, manager.name) != "active":
        progress(Progress("dev", f"docker swarm init on {manager.name}"))
        _docker(
            system,
            "exec",
            manager.name,
            "docker",
            "swarm",
            "init",
            "--advertise-addr",
            manager.address,
        )
    token = _docker(system, "exec", manager.name, "docker", "swarm", "join-token", "-q", "worker")
    nodes = []
    for index in range(1, workers + 1):
        progress(Progress("dev", f"starting {cluster} worker {index}"))
        node = start_node(
            NodeSpec(
                name=f"dockroll-{cluster}-worker-{index}",
                cluster=cluster,
                network=network,
                insecure_registries=(registry,),
            ),
            system=system,
        )
        if _swarm_state(system, node.name) != "active":
            _docker(
                system,
                "exec",
                node.name,
                "docker",
                "swarm",
                "join",
                "--token",
                token,
                f"{manager.address}:2377",
            )
        nodes.append(node)
    _docker(
        system,
        "exec",
        manager.name,
        "docker",
        "node",
        "update",
        "--label-add",
        f"{INGRESS_LABEL}=true",
        manager.name,
    )
    return SwarmCluster(
        cluster=cluster,
        manager=manager,
        workers=tuple(nodes),
        registry=registry,
        engine=f"tcp://127.0.0.1:{engine_port}",
    )
