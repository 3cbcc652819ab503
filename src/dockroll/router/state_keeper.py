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

The hold and maintenance flags (the state map of :mod:`dockroll.router.hold`)
are kept the same way in :data:`FLAGS_FILE`: the map itself comes from the
task's config, so the keeper sets the kept flags again as soon as the runtime
API answers, before it starts watching.

A task that was not running while a change was made gets the state before
it; the next command under the environment's lock compares every task's
servers with those of the one that has run longest and restores those that
differ.
"""

from __future__ import annotations

from dockroll.router.restore import PERL_RUN, perl_program

__all__ = [
    "FLAGS_FILE",
    "INTERVAL_SECONDS",
    "SCRIPT_FILE",
    "STATE_DIR",
    "STATE_FILE",
    "keeper_script",
    "program",
]

STATE_DIR = "/var/lib/haproxy"
"""Where the task's volume is mounted: HAProxy's own directory, writable by its user
(a new volume takes the image's ownership of the directory)."""
STATE_FILE = f"{STATE_DIR}/servers.state"
FLAGS_FILE = f"{STATE_DIR}/flags.map"
SCRIPT_FILE = "keep-state.pl"
INTERVAL_SECONDS = 0.5

# ARGV: the runtime API's unix socket, the state file, the backend, the seconds between looks,
# the state map (as the config names it), the file its flags are kept in.
_SCRIPT = r"""# dockroll: keep this router task's servers and flags on its node for its next start.
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

my ($api, $file, $backend, $every, $map, $flags) = @ARGV;

PERL_RUN

sub replace_file {
    my ($path, $text) = @_;
    open(my $out, ">", "$path.tmp") or return 0;
    print $out $text;
    return close($out) && rename("$path.tmp", $path);
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

# `show map` lines are "<id> <key> <value>"; kept as "<key> <value>".
sub flags_of {
    my ($answer) = @_;
    return undef unless defined $answer && $answer ne "";
    my $text = "";
    for my $line (split /\n/, $answer) {
        my @parts = split " ", $line;
        return undef unless @parts == 3 && $parts[0] =~ /^0x/;
        $text .= "$parts[1] $parts[2]\n";
    }
    return $text;
}

my $info;
do {
    $info = run("show info");
    select(undef, undef, undef, 0.05) unless defined $info && $info =~ /^Pid:/m;
} until (defined $info && $info =~ /^Pid:/m);

my $kept_flags;
if (defined $map && open(my $in, "<", $flags)) {
    while (my $line = <$in>) {
        my ($key, $value) = split " ", $line;
        next unless defined $value && $key =~ /^\w+$/ && $value =~ /^[\w.:-]+$/;
        my $answer = run("set map $map $key $value");
        run("add map $map $key $value") if defined $answer && $answer =~ /not found|entry/i;
    }
    close $in;
}

my $kept = "";
while (1) {
    my $state = run("show servers state $backend");
    if (defined $state && $state =~ /\A1\n# be_id /) {
        my $now = essence($state);
        $kept = $now if $now ne $kept && replace_file($file, $state);
    }
    if (defined $map) {
        my $now = flags_of(run("show map $map"));
        if (defined $now && (!defined $kept_flags || $now ne $kept_flags)) {
            $kept_flags = $now if replace_file($flags, $now);
        }
    }
    select(undef, undef, undef, $every);
}
"""


def keeper_script() -> str:
    """The Perl loop a router task's master runs beside its worker."""
    return _SCRIPT.replace("PERL_RUN", PERL_RUN)


def program(config_dir: str, socket: str, backend: str, state_map: str) -> list[str]:
    """The config section running the keeper from ``config_dir`` against ``socket``."""
    return perl_program(
        "dockroll-keep-state",
        f"{config_dir}/{SCRIPT_FILE}",
        [socket, STATE_FILE, backend, f"{INTERVAL_SECONDS:g}", state_map, FLAGS_FILE],
        endless=True,
    )
