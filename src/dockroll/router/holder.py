"""What the holder of a router's network namespace runs: a watch that starts HAProxy after it.

HAProxy runs in its holder's network namespace (``network_mode:
container:<holder>``). When the engine restarts (a reboot, an upgrade of
Docker) it starts every container whose restart policy asks for it, all at
once and in no order. An HAProxy started before its holder cannot join a
namespace that does not exist yet ("cannot join network of a non running
container"); the engine gives up on it and does not try again, so the
router would stay down until the next dockroll command that changes the
environment.

So the holder does not only sleep. For :data:`WATCH_SECONDS` after it
starts, it asks the engine every :data:`POLL_SECONDS` whether its HAProxy
container (by name, so whichever generation serves) runs, and starts it when
it exists and does not; it stops asking once it has seen it running. Its
HAProxy then adds its servers back itself (:mod:`dockroll.router.restore`), as
any HAProxy of the router does when it starts without dockroll. The watch talks to the engine
through the engine's unix socket, mounted into the holder alone: HAProxy
shares the holder's network namespace only, not its files or processes, and
the holder serves nothing on the network. The watch is a Perl script (Perl
is part of every Debian-based image, the official HAProxy images included);
in an image without Perl the holder only sleeps, as before.

A holder that dockroll starts itself finds no HAProxy yet, or one dockroll is
starting at that moment (a second start of a running container changes
nothing).
"""

from __future__ import annotations

from dockroll.engine.port import Mount

__all__ = ["ENGINE_SOCKET", "POLL_SECONDS", "WATCH_SECONDS", "holder_entrypoint", "socket_mount"]

ENGINE_SOCKET = "/var/run/docker.sock"
"""Where the watch finds the engine's socket in the holder (and, on a remote host, where the
engine's socket is taken from)."""
WATCH_SECONDS = 180
"""How long after the holder starts its watch may start HAProxy."""
POLL_SECONDS = 2

# ARGV: the HAProxy container's name, the seconds to watch, the seconds between two
# looks, the engine's socket.
_WATCH = r"""
my ($name, $window, $poll, $engine) = @ARGV;
# time counts whole seconds: ask for at least $window of them, not up to one fewer
my $until = time + $window;
sub engine {
    my ($method, $path) = @_;
    my $socket = IO::Socket::UNIX->new(Peer => $engine) or return "";
    print $socket "$method $path HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n";
    local $/;
    my $answer = <$socket>;
    close $socket;
    return defined $answer ? $answer : "";
}
while (time <= $until) {
    my $found = engine("GET", "/containers/$name/json");
    last if $found =~ /"Running":true/;
    if ($found =~ m{\AHTTP/1\.\d 200} && $found =~ /"Running":false/) {
        print STDERR "starting $name, which the engine did not start after this holder\n";
        engine("POST", "/containers/$name/start");
    }
    select(undef, undef, undef, $poll);
}
exec "sleep", "infinity";
"""

# $0: the watch, $1..: its arguments. Without perl the holder only holds the namespace.
_SHELL = (
    "if command -v perl >/dev/null 2>&1; then "
    'exec perl -MIO::Socket::UNIX -e "$0" "$@"; fi; exec sleep infinity'
)


def holder_entrypoint(
    haproxy_container: str,
    *,
    watch: float = WATCH_SECONDS,
    poll: float = POLL_SECONDS,
    engine_socket: str = ENGINE_SOCKET,
) -> list[str]:
    """The holder's entrypoint: hold the namespace, and start ``haproxy_container`` after it."""
    arguments = [haproxy_container, f"{watch:g}", f"{poll:g}", engine_socket]
    return ["sh", "-c", _SHELL, _WATCH, *arguments]


def socket_mount(endpoint: str) -> Mount:
    """The engine's unix socket for the holder's watch.

    A local engine's own socket (``unix://PATH``); a remote host's engine is asked
    for at its usual path there.
    """
    source = endpoint.removeprefix("unix://") if endpoint.startswith("unix://") else ENGINE_SOCKET
    return Mount(source, ENGINE_SOCKET, read_only=True, kind="bind")
