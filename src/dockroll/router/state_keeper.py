"""A router task keeps its servers' state on its node, and starts from it.

The tasks of a router run as a Swarm service (``swarm.router: service``) get
every server change through the runtime API, and a task that Swarm starts
again (its container killed, its node rebooted, a service update) would come
back with the servers as its config declares them: all in maintenance, so
its node answers 503 until dockroll restores it. dockroll cannot write files
into tasks on other nodes, so each task keeps its own:

- its ``server-state-file`` is in a named volume mounted at
  :data:`STATE_DIR`, which Swarm creates on each node the first time a task
  runs there and keeps across the tasks of that node;
- a Perl loop (:data:`SCRIPT_FILE`, an HAProxy ``program`` of the task's
  master) asks the task's runtime API for ``show servers state`` every
  :data:`INTERVAL_SECONDS` and replaces the file when the servers changed
  (write and rename, so a start never reads half a file);
- HAProxy loads the file when it starts: the next task on that node serves
  the servers at the weights and drain/maintenance states its predecessor
  last had, before any dockroll command.

A task that was not running while a change was made gets the state before
it; the next command under the environment's lock compares every task with
the one that has run longest and restores those that differ.
"""

from __future__ import annotations

from dockroll.router.restore import perl_program

__all__ = ["INTERVAL_SECONDS", "SCRIPT_FILE", "STATE_DIR", "STATE_FILE", "keeper_script", "program"]

STATE_DIR = "/var/lib/haproxy"
"""Where the task's volume is mounted: HAProxy's own directory, writable by its user
(a new volume takes the image's ownership of the directory)."""
STATE_FILE = f"{STATE_DIR}/servers.state"
SCRIPT_FILE = "keep-state.pl"
INTERVAL_SECONDS = 0.5

# ARGV: the runtime API's unix socket, the state file, the backend, the seconds between looks.
_SCRIPT = r"""# dockroll: keep this router task's server state on its node for its next start.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my ($api, $file, $backend, $every) = @ARGV;

sub run {
    my ($command) = @_;
    my $socket = IO::Socket::UNIX->new(Peer => $api, Type => SOCK_STREAM) or return undef;
    print $socket "$command\n";
    local $/;
    my $answer = <$socket>;
    close $socket;
    return $answer;
}

# The state without the seconds since each server's last change, which grow by themselves.
sub essence {
    my ($state) = @_;
    my @lines;
    for my $line (split /\n/, $state) {
        my @fields = split / /, $line;
        splice(@fields, 9, 1) if @fields > 10 && $line !~ /^#/;
        push @lines, join(" ", @fields);
    }
    return join("\n", @lines);
}

my $kept = "";
while (1) {
    my $state = run("show servers state $backend");
    if (defined $state && $state =~ /\A1\n# be_id /) {
        my $now = essence($state);
        if ($now ne $kept && open(my $out, ">", "$file.tmp")) {
            print $out $state;
            if (close($out) && rename("$file.tmp", $file)) {
                $kept = $now;
            }
        }
    }
    select(undef, undef, undef, $every);
}
"""


def keeper_script() -> str:
    """The Perl loop a router task's master runs beside its worker."""
    return _SCRIPT


def program(config_dir: str, socket: str, backend: str) -> list[str]:
    """The config section running the keeper from ``config_dir`` against ``socket``."""
    return perl_program(
        "dockroll-keep-state",
        f"{config_dir}/{SCRIPT_FILE}",
        [socket, STATE_FILE, backend, f"{INTERVAL_SECONDS:g}"],
        endless=True,
    )
