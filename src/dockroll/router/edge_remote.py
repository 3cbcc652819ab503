"""The shared edge on a remote engine: its files in named volumes, its runtime API reached
through the engine connection.

A remote engine (``ssh://``, ``tcp://``, a Swarm manager) shares no directory
with this machine, so the edge's two directories are named volumes there:
``<edge>-conf`` (haproxy.cfg of each container, the maps, the crt-list, the
certificates) and ``<edge>-run`` (each container's runtime socket and the
``admin.sock`` symlink to the serving one's). A new container gets its config
written into the volume before it starts (the engine's archive API reaches a
created container's volumes); later writes go through the same API into the
running container. Every container of the edge mounts both volumes, so a new
one beside the running one finds its maps and certificates, and ``-x`` on the
running one's socket hands the listening sockets over as on a local engine.

**The runtime API stays a unix socket.** The edge shares the host's network
namespace, so a TCP admin port, even on 127.0.0.1, would be open to every
process of that host. Instead dockroll starts one ``perl`` (Debian's perl-base,
essential, so in every Debian-based HAProxy image) inside the edge container,
attached through the engine connection, that relays each line of commands to
the unix socket and the answer back with the end marker of
:class:`~dockroll.router.transport.ExecTransport`: whoever may drive the edge
is whoever may use the engine, and nothing listens for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockroll.engine.port import Engine, ExecSession
from dockroll.errors import EngineError
from dockroll.router.transport import ExecTransport

__all__ = ["UnixSocketRelay", "conf_volume", "point_command", "run_volume", "seed_command"]

# $ARGV[0]: the socket, $ARGV[1]: the end marker. Per line read (with the payload
# lines up to an empty one when it ends with " <<"): connect, send, copy the answer,
# then "\n<marker> <status>\n" (status 111: nothing listens there).
_RELAY = (
    "use IO::Socket::UNIX; $| = 1; my ($path, $mark) = @ARGV; "
    "while (defined(my $line = <STDIN>)) { "
    "if ($line =~ / <<\\n\\z/) { while (defined(my $more = <STDIN>)) "
    '{ $line .= $more; last if $more eq "\\n"; } } '
    "my $api = IO::Socket::UNIX->new(Peer => $path); "
    'if (!$api) { print "\\n$mark 111\\n"; next; } '
    "print $api $line; my $buffer; "
    "while (sysread($api, $buffer, 65536)) { print $buffer; } "
    'close $api; print "\\n$mark 0\\n"; }'
)


def conf_volume(edge: str) -> str:
    return f"{edge}-conf"


def run_volume(edge: str) -> str:
    return f"{edge}-run"


class UnixSocketRelay(ExecTransport):
    """Runtime API exchanges with a unix socket inside a container, through a relay
    attached to it over the engine connection."""

    def __init__(self, engine: Engine, container: str, path: str, *, timeout: float = 5.0) -> None:
        super().__init__(engine, container, timeout=timeout)
        self.path = path

    def __str__(self) -> str:
        return f"exec:{self.container}:unix:{self.path}"

    def __call__(self, line: str) -> str:
        try:
            return super().__call__(line)
        except OSError as exc:
            if "nothing listens" in str(exc):  # said of the TCP port the base class relays to
                raise OSError(0, f"nothing listens on {self.path} in {self.container}") from None
            raise

    def _open(self) -> ExecSession:
        if not self._sessions:
            import secrets  # noqa: PLC0415 - with the first exchange

            token = secrets.token_hex(8)
            try:
                session = self.engine.open_exec(
                    self.container, ["perl", "-e", _RELAY, self.path, token], timeout=self.timeout
                )
            except EngineError as exc:
                raise OSError(0, exc.message) from None
            self._sessions.append(session)
            self._marker = f"\n{token} ".encode()
        return self._sessions[0]


def seed_command(
    config_dir: str, empty: Sequence[str], default_cert: str, command: Sequence[str]
) -> list[str]:
    """``command`` run after the files a config names are made in a fresh volume: the
    ``empty`` ones empty, ``default_cert`` from its ``.seed`` copy; existing ones stay."""
    script = (
        f'cd {config_dir} && mkdir -p certs && for f in "$@"; do '
        '[ "$f" = -- ] && break; [ -e "$f" ] || : > "$f"; done && '
        f"{{ [ -e {default_cert} ] || cp {default_cert}.seed {default_cert}; }} && "
        'while [ "$1" != -- ]; do shift; done && shift && exec "$@"'
    )
    return ["sh", "-c", script, "dockroll-edge", *empty, "--", *command]


def point_command(run_dir: str, socket_name: str) -> list[str]:
    """Make ``admin.sock`` in ``run_dir`` a symlink to ``socket_name``, atomically."""
    return [
        "sh",
        "-c",
        f'cd {run_dir} && ln -sfn "$1" admin.sock.link && mv -Tf admin.sock.link admin.sock',
        "dockroll-edge",
        socket_name,
    ]
