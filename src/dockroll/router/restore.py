"""A router that restarts on its own serves its replicas again: the restore at HAProxy's start.

dockroll adds an environment's replicas to its router at runtime (``add
server``); no config lists them. So an HAProxy the engine restarted without
dockroll (a host reboot, ``docker restart``, a crash the restart policy mends)
would come back with no server and answer 503 until the next dockroll command.

Instead, after every change it makes to the servers, dockroll writes what the
router then has into :data:`RESTORE_FILE` beside haproxy.cfg (the host
directory mounted into a local router, a file copied into the container on a
remote engine): each server's name, port, weight, drain/maintenance state and
whether it is checked. Addresses are left out on purpose: an engine that
restarts may give a container another address, and an address written down
could then reach another replica (a canary's share going to stable). The
config declares an HAProxy ``program`` that the master starts with the router,
:data:`SCRIPT_FILE`, a short Perl script (Perl is part of every Debian-based
image, the official HAProxy images included). It waits for the runtime API,
resolves each server's name, the replica's container name, through the
engine's DNS on the environment's network, and adds the server at that address
with its weight, state and check; a server added back is down until its first
check passes, as any new one. A name that no longer resolves (the replica is
gone) is skipped, and so is a server the router already has.

``no option start-on-reload``: a hitless reload (a new worker under the same
master) carries the servers itself and runs no restore. A hand-over starts a
new master, whose restore finds the servers it carried and adds nothing.

dockroll stays the authority. The script marks its progress in the router's
state map (:data:`KEY`: ``pending`` as the file says, ``running``, ``done``),
and a command waits for ``done`` before it changes a server (for at most
:data:`WINDOW_SECONDS` after the router started), so a restore never runs
while a command changes the servers, and the command ends with its own view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dockroll.router.runtime_api import CheckSettings, validate_server_name

__all__ = [
    "KEY",
    "PERL_RUN",
    "RESTORE_FILE",
    "SCRIPT_FILE",
    "WINDOW_SECONDS",
    "perl_program",
    "program_lines",
    "render_servers",
    "restore_script",
]

RESTORE_FILE = "replicas.state"
SCRIPT_FILE = "restore.pl"
KEY = "restore"
"""The state map's key the restore marks its progress in."""
PENDING, RUNNING, DONE = "pending", "running", "done"
WINDOW_SECONDS = 30.0
"""How long after a router started a command waits for its restore to be done."""
API_WAIT_SECONDS = 20
"""How long the restore waits for the runtime API to answer."""

_CHECK_ENABLED = 0x04  # CHK_ST_ENABLED in srv_check_state
_ADMIN_MAINT = 0x01 | 0x02 | 0x04  # forced, inherited, configuration maintenance
_ADMIN_DRAIN = 0x08 | 0x10

PERL_RUN = r"""# One runtime API command on the unix socket $api: its answer ("" for none),
# undef when the socket does not take the connection.
sub run {
    my ($command) = @_;
    my $socket = IO::Socket::UNIX->new(Peer => $api, Type => SOCK_STREAM) or return undef;
    print $socket "$command\n";
    local $/;
    my $answer = <$socket>;
    close $socket;
    return defined $answer ? $answer : "";
}"""

# ARGV: the runtime API's unix socket, the file of servers, the state map, the backend,
# the seconds to wait for the API.
_SCRIPT = r"""# dockroll: give a router that started without dockroll its servers back.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(getaddrinfo getnameinfo AF_INET SOCK_STREAM NI_NUMERICHOST NIx_NOSERV);

my ($api, $file, $map, $backend, $wait) = @ARGV;

PERL_RUN

sub mark {
    my ($value) = @_;
    my $answer = run("set map $map KEY $value");
    run("add map $map KEY $value") if defined $answer && $answer =~ /not found|entry/i;
}

sub refused {
    my ($answer) = @_;
    return 1 unless defined $answer;
    for my $line (split /\n/, $answer) {
        next if $line =~ /^\s*$/ || $line =~ /^New server registered\.\s*$/;
        return 1;
    }
    return 0;
}

my $until = time + $wait;
my $info;
while (time < $until) {
    $info = run("show info");
    last if defined $info && $info =~ /^Pid:/m;
    select(undef, undef, undef, 0.1);
}
exit 1 unless defined $info && $info =~ /^Pid:/m;
mark("running");

my @servers;
if (open(my $in, "<", $file)) {
    while (my $line = <$in>) {
        next if $line =~ /^\s*(#|$)/;
        my ($name, $port, $weight, $state, @check) = split " ", $line;
        next unless defined $state && $name =~ /^[A-Za-z0-9_.:-]{1,64}$/;
        next unless $port =~ /^\d+$/ && $weight =~ /^\d+$/;
        push @servers, [$name, $port, $weight, $state, join(" ", @check)];
    }
    close $in;
}
my %present;
for my $line (split /\n/, run("show servers state $backend") // "") {
    my @row = split " ", $line;
    $present{$row[3]} = 1 if @row > 3 && $row[1] eq $backend;
}
for my $server (@servers) {
    my ($name, $port, $weight, $state, $check) = @$server;
    next if $present{$name};
    my ($error, @found) = getaddrinfo($name, "", {family => AF_INET, socktype => SOCK_STREAM});
    if ($error || !@found) {
        print STDERR "dockroll restore: $name does not resolve, left out\n";
        next;
    }
    my (undef, $address) = getnameinfo($found[0]->{addr}, NI_NUMERICHOST, NIx_NOSERV);
    my $target = "$backend/$name";
    my $add = "add server $target $address:$port weight $weight";
    $add .= " $check" if $check ne "";
    if (refused(run($add))) {
        print STDERR "dockroll restore: $name not added (the router has it already)\n";
        next;
    }
    # Added in maintenance; down until a first check passes, as any new server.
    my @then;
    push @then, "set server $target health down", "enable health $target" if $check ne "";
    push @then, "enable server $target" unless $state eq "maint";
    push @then, "set server $target state drain" if $state eq "drain";
    run(join(";", @then)) if @then;
    print STDERR "dockroll restore: $name back at $address:$port, weight $weight, $state\n";
}
mark("done");
"""


def restore_script() -> str:
    """The Perl script the router's master runs at its start."""
    return _SCRIPT.replace("KEY", KEY).replace("PERL_RUN", PERL_RUN)


def program_lines(config_dir: str, socket: str, state_map: str, backend: str) -> list[str]:
    """The config section that runs the restore at HAProxy's start (not at a reload).

    ``socket``: the unix runtime socket as the config's ``stats socket`` names it
    (a quoted ``"${VAR}"`` is expanded by HAProxy).
    """
    arguments = [
        socket,
        f"{config_dir}/{RESTORE_FILE}",
        state_map,
        backend,
        str(API_WAIT_SECONDS),
    ]
    return perl_program("dockroll-restore", f"{config_dir}/{SCRIPT_FILE}", arguments)


def perl_program(
    name: str, script: str, arguments: Sequence[str], *, endless: bool = False
) -> list[str]:
    """An HAProxy ``program`` section running the Perl ``script`` once per start of the master.

    The master stops every process at once when a program exits with an error: the shell
    outlives the script (an image without Perl, a failure) and sleeps, and ends with 0 on
    the master's signals (SIGUSR1 of a soft stop: its worker finishes its requests).
    ``endless``: the script loops until stopped; it runs in the background so that the
    master's signal stops it too (a shell runs a trap only once its foreground command ends).
    """
    run = 'perl "$@" & script=$!; wait $script' if endless else 'script=; perl "$@"'
    shell = (
        "stop() { kill $script $! 2>/dev/null; exit 0; }; trap stop USR1 USR2 TERM INT HUP; "
        f"{run}; sleep 2147483647 & wait"
    )
    return [
        f"program {name}",
        f"    command sh -c '{shell}' {name} {script} {' '.join(arguments)}",
        "    no option start-on-reload",
    ]


def render_servers(rows: Sequence[Mapping[str, str]], check: CheckSettings) -> str:
    """The restore file for the ``show servers state`` rows of the router's backend.

    One line per server: ``name port weight ready|drain|maint [check options]``.
    """
    lines = ["# dockroll: the servers to add back when the router starts without dockroll.\n"]
    for row in rows:
        name = validate_server_name(row.get("srv_name", ""))
        port = int(row.get("srv_port", "0"))
        weight = int(row.get("srv_uweight", "0"))
        admin = int(row.get("srv_admin_state", "0"))
        state = "maint" if admin & _ADMIN_MAINT else "drain" if admin & _ADMIN_DRAIN else "ready"
        line = f"{name} {port} {weight} {state}"
        if int(row.get("srv_check_state", "0")) & _CHECK_ENABLED:
            line += f" check inter {check.interval_ms} fall {check.fall} rise {check.rise}"
        lines.append(line + "\n")
    return "".join(lines)
