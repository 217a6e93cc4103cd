#!/usr/bin/perl
# Jobfleet task launcher where the host has no python3 (task-launcher.py, whose children start
# with vfork, is preferred): a small process that starts an agent's task processes, so that a
# fork copies this process (a few MiB) instead of the agent's heap. It relays each task's
# output and exit status to the agent. Protocol (agent/src/task-launcher.ts holds the other
# side; both ends are this repository's, so nothing here is validated twice):
#
#   agent -> launcher, stdin:  u32 length | fields joined by NUL
#     run  id cwd uid gid env-count env... file argv...   (uid/gid empty: the agent's own)
#     drop id                                              (stop reading the task's output)
#   launcher -> agent, stdout: u8 kind | u32 id | u32 length | data
#     P pid | F why it could not start | O output | X "exit N" or "signal N" | C output closed
#
# It exits when the agent closes its stdin (the agent stopped or died), and kills the process
# group of every task still running: nobody can report them any more, and the agent's next start
# calls them lost. Killing them here rather than only at that start keeps a script from running
# on for as long as the agent stays down.
#
# Once it has been idle for $SPARE_AFTER_SECONDS (no task running, no request), a spare child
# waits for the next task: forked ahead, out of this process's session, its output set up,
# reading one request from a pipe of its own. Forking is most of a short task's start (the
# fork, and the child's first writes copying pages it shares with this process: 4 to 9 ms
# here), and a host between jobs has the time to spend on it before the next one comes. Tasks
# that come while others run or soon after are forked for themselves: on a busy host a spare's
# hand-over (a pipe, a wake-up, its environment set in the child) costs more than it saves
# (1,000 hosts' `echo` on two cores took 5-10 % longer with a spare made whenever no task ran).
# The spare exits when this process does (its request pipe reaches end of file).
use strict;
use warnings;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
# POSIX's functions without POSIX.pm, whose export tables (and IO::Select's and Errno's
# modules) made up most of this process's own memory: every fork copies the page tables of
# that memory and marks it copy-on-write, and every exec in a child tears it down again, so a
# smaller launcher starts each task for less (about 0.1 ms of CPU per task here).
BEGIN {
    package POSIX;
    require XSLoader;
    XSLoader::load('POSIX');
}
use constant { EINTR => POSIX::EINTR(), EAGAIN => POSIX::EAGAIN() };

binmode STDIN;
binmode STDOUT;
$SIG{PIPE} = 'IGNORE';

# SIGCHLD writes to a pipe that the main loop watches, so no exit is missed between a check
# and the wait in select.
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
# A task that has printed 64 KiB (a pipe's worth on Linux) gets a pipe of a MiB, read a MiB at a
# time. Only such tasks: a user's pipe memory is limited, and thousands of quiet tasks must not
# use it up. F_SETPIPE_SZ (1031) is Linux's; elsewhere this does nothing.
# Such a pipe is read once it holds a quarter of a MiB (FIONREAD, 0x541B, tells); with less in
# it, it rests: it is left unread until the next turn of the loop, which waits at most
# $REST_SECONDS for anything else, and then read for whatever it holds. Read as soon as
# anything is in it, the pipe of a task printing fast yields a few KiB per read when this
# process keeps up (every write of the task wakes it): each a frame for the agent to spool and
# send and for its server to take, hundreds per MiB. A millisecond does not fill the pipe at
# the rate of a disk or a pipe, so the task rarely waits for it.
my $READ_BYTES = 1 << 20;
my $SMALL_PIPE = 65536;
my $FULL_ENOUGH = $READ_BYTES / 4;
my $REST_SECONDS = 0.001;
my $SPARE_AFTER_SECONDS = 0.01;
my %relayed;       # task id -> bytes of output relayed so far
my %large;         # task id -> its pipe was enlarged
my %resting;       # task id -> its pipe, unwatched until the next turn of the loop
my %rested;        # task id -> its pipe rested since its last read
my $large_stdout = 0;
sub large_pipe {
    my ($id, $fh) = @_;
    return if $large{$id}++;
    fcntl($fh, 1031, $READ_BYTES);
    fcntl(STDOUT, 1031, $READ_BYTES) unless $large_stdout++;
}

# Bytes waiting in a pipe (undef where FIONREAD is not known).
sub held {
    my ($fh) = @_;
    my $n = pack('i', 0);
    return ioctl($fh, 0x541B, $n) ? unpack('i', $n) : undef;
}

sub nonblocking {
    my ($fh) = @_;
    my $flags = fcntl($fh, F_GETFL, 0) or die "fcntl: $!";
    fcntl($fh, F_SETFL, $flags | O_NONBLOCK) or die "fcntl: $!";
}
nonblocking($_) for $wake_r, $wake_w;
$SIG{CHLD} = sub { syswrite($wake_w, 'x') };

# What the main loop's select waits on: fileno -> handle, and the same as select's bit vector.
my %watched;
my $watch_bits = '';

sub watch {
    my ($fh) = @_;
    $watched{ fileno $fh } = $fh;
    vec($watch_bits, fileno $fh, 1) = 1;
}

sub unwatch {
    my ($fh) = @_;
    delete $watched{ fileno $fh };
    vec($watch_bits, fileno $fh, 1) = 0;
}
watch($_) for \*STDIN, $wake_r;
my %pipe_of;    # task id -> read end of its output pipe
my %id_of_fd;   # fileno of that pipe -> task id
my %id_of_pid;  # pid -> task id
my $in = '';
# Frames wait here until the end of the current step (a request handled, a turn of the loop),
# so that a task's output, exit status and end of output reach the agent in one write. A large
# output (a MiB read from a task printing fast) is queued as the string it was read into, not
# copied onto the others: it costs a write of its own instead of two copies of every byte.
my @out = ('');

# The agent is gone: its running tasks go with it (see the top of this file).
sub agent_gone {
    kill('-KILL', keys %id_of_pid) if %id_of_pid;
    exit 0;
}

sub send_frame {
    my ($kind, $id) = @_;    # the data is $_[2], not copied into a variable
    $out[-1] .= pack('a1 N N', $kind, $id, length $_[2]);
    if (length $_[2] < $SMALL_PIPE) {
        $out[-1] .= $_[2];
    }
    else {
        push @out, $_[2], '';
    }
}

sub write_all {
    my ($fh) = @_;    # the bytes are $_[1], not copied
    my $off = 0;
    while ($off < length $_[1]) {
        my $n = syswrite($fh, $_[1], length($_[1]) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

sub flush_frames {
    for my $bytes (@out) {
        write_all(\*STDOUT, $bytes) or agent_gone();
    }
    @out = ('');
}

sub stop_reading {
    my ($id) = @_;
    my $fh = delete $pipe_of{$id} or return;
    delete $large{$id};
    delete $relayed{$id};
    delete $resting{$id};
    delete $rested{$id};
    delete $id_of_fd{ fileno $fh };
    unwatch($fh);
    close $fh;
}

sub read_all {
    my ($fh) = @_;
    my $all = '';
    while (1) {
        my $n = sysread($fh, my $buf, 4096);
        if (!defined $n) {
            next if $! == EINTR;
            last;
        }
        last if $n == 0;
        $all .= $buf;
    }
    return $all;
}

my $env_now;    # the environment %ENV holds now (as the agent sent it); undef: the launcher's own

# The spare: { pid, ctl => the write end of its request pipe, out, status => read ends }.
my $spare;

# A run request's fields (cwd uid gid env-count env... file argv...) as its environment's
# NAME=value entries and the task [cwd, uid, gid, file, argv...] without them.
sub task_of {
    my ($cwd, $uid, $gid, $env_count, @rest) = @_;
    my @env = splice(@rest, 0, $env_count);
    return (\@env, [ $cwd, $uid, $gid, @rest ]);
}

# Forks a child for a task: for this one ([cwd, uid, gid, file, argv...], its environment already
# in %ENV), or, without it, a spare that reads its request later. The child as above, or why it
# could not be made.
sub fork_child {
    my ($task) = @_;
    # Perl opens these close-on-exec: the status pipe closes when exec succeeds.
    pipe(my $out_r, my $out_w) or return "pipe: $!";
    pipe(my $status_r, my $status_w) or return "pipe: $!";
    my ($ctl_r, $ctl_w);
    if (!$task) {
        pipe($ctl_r, $ctl_w) or return "pipe: $!";
    }
    my $pid = fork;
    return "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $_ for grep {defined} $out_r, $status_r, $ctl_w;
        child_execs($out_w, $status_w, $ctl_r, $task);
    }
    close $_ for grep {defined} $out_w, $status_w, $ctl_r;
    return { pid => $pid, ctl => $ctl_w, out => $out_r, status => $status_r };
}

# The child's side. What does not depend on the task is done first, so that a spare has only
# the request's own settings left to make after its wait.
sub child_execs {
    my ($out_w, $status_w, $ctl_r, $task) = @_;
    eval {
        $SIG{PIPE} = 'DEFAULT';
        $SIG{CHLD} = 'DEFAULT';
        # Its own session and process group: killing the group reaches every descendant.
        POSIX::setsid() or die "setsid: $!\n";
        open(STDIN, '<', '/dev/null') or die "/dev/null: $!\n";
        POSIX::dup2(fileno $out_w, 1) or die "dup2: $!\n";
        POSIX::dup2(fileno $out_w, 2) or die "dup2: $!\n";
        if (!$task) {
            # A length first: the request is whole without waiting for the pipe's end of file,
            # which would also wait for any other holder of its write end.
            my $request = read_exactly($ctl_r, 4);
            $request = read_exactly($ctl_r, unpack('N', $request)) if defined $request;
            POSIX::_exit(0) if !defined $request;    # the launcher is gone
            (my $env, $task) = task_of(split /\0/, $request, -1);
            %ENV = map { split /=/, $_, 2 } @$env;
        }
        my ($cwd, $uid, $gid, $file, @argv) = @$task;
        if ($gid ne '') {
            $) = "$gid $gid";    # also the supplementary groups: only this one
            POSIX::setgid($gid) or die "setgid $gid: $!\n";
        }
        if ($uid ne '') {
            POSIX::setuid($uid) or die "setuid $uid: $!\n";
            die "could not switch to uid $uid\n" if $< != $uid || $> != $uid;
        }
        chdir $cwd or die "chdir $cwd: $!\n";
        exec {$file} @argv;
        die "exec $file: $!\n";
    };
    syswrite($status_w, $@ || "could not start\n");
    POSIX::_exit(127);
}

# $n bytes from a blocking handle; undef at end of file before them.
sub read_exactly {
    my ($fh, $n) = @_;
    my $got = '';
    while (length $got < $n) {
        my $r = sysread($fh, $got, $n - length $got, length $got);
        if (!defined $r) {
            next if $! == EINTR;
            return undef;
        }
        return undef if $r == 0;
    }
    return $got;
}

sub close_child {
    my ($child) = @_;
    close $_ for grep {defined} @$child{qw(ctl out status)};
}

sub start_task {
    my $id = shift;
    my $child = $spare;
    undef $spare;
    if ($child && !write_all($child->{ctl}, pack('N/a*', join "\0", @_))) {
        # It died before its request: the task is forked for itself.
        waitpid($child->{pid}, 0);
        close_child($child);
        undef $child;
    }
    if (!$child) {
        # The child inherits the environment: set here, only when it differs from the last
        # task's, and not in the child, whose every write to memory copies a page it shares
        # with this process.
        my ($env, $task) = task_of(@_);
        my $env_key = join "\0", @$env;
        if (!defined $env_now || $env_key ne $env_now) {
            %ENV = map { split /=/, $_, 2 } @$env;
            $env_now = $env_key;
        }
        $child = fork_child($task);
        return send_frame('F', $id, $child) unless ref $child;
    }
    close $child->{ctl} if $child->{ctl};
    my $why = read_all($child->{status});
    close $child->{status};
    if ($why ne '') {
        waitpid($child->{pid}, 0);
        close $child->{out};
        chomp $why;
        send_frame('F', $id, $why);
        return;
    }
    my $out_r = $child->{out};
    nonblocking($out_r);
    $pipe_of{$id} = $out_r;
    $id_of_fd{ fileno $out_r } = $id;
    $id_of_pid{ $child->{pid} } = $id;
    watch($out_r);
    send_frame('P', $id, $child->{pid});
}

sub handle_request {
    my ($payload) = @_;
    my ($command, @fields) = split /\0/, $payload, -1;
    if ($command eq 'run') {
        start_task(@fields);
    }
    elsif ($command eq 'drop') {
        stop_reading($fields[0]);
    }
}

sub read_requests {
    my $n = sysread(STDIN, my $buf, 65536);
    if (!defined $n) {
        return 1 if $! == EINTR || $! == EAGAIN;
        agent_gone();
    }
    agent_gone() if $n == 0;
    $in .= $buf;
    while (length $in >= 4) {
        my $len = unpack('N', $in);
        last if length $in < 4 + $len;
        my $payload = substr($in, 4, $len);
        substr($in, 0, 4 + $len) = '';
        handle_request($payload);
        # Tasks that ended while a backlog of requests is started report now, not after it.
        reap();
        flush_frames();
    }
}

# Sends what a task's pipe holds now; true at end of file.
sub drain {
    my ($id) = @_;
    my $fh = $pipe_of{$id} or return 0;
    while (1) {
        my $n = sysread($fh, my $buf, $READ_BYTES);
        if (!defined $n) {
            next if $! == EINTR;
            return 0;    # EAGAIN: a background child still holds the pipe
        }
        return 1 if $n == 0;
        send_frame('O', $id, $buf);
    }
}

# Everything a task wrote before it exited goes out before its exit status, so the agent's
# short wait for late output from background children never races the task's own output.
sub reap {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $status = $?;
        my $id = delete $id_of_pid{$pid};
        if (!defined $id) {
            if ($spare && $pid == $spare->{pid}) {
                close_child($spare);
                undef $spare;
            }
            next;
        }
        my $eof = drain($id);
        send_frame('X', $id, ($status & 127) ? 'signal ' . ($status & 127) : 'exit ' . ($status >> 8));
        if ($eof) {
            stop_reading($id);
            send_frame('C', $id, '');
        }
    }
}

while (1) {
    my $idle = !$spare && !%id_of_pid && !%resting;
    # -1 on EINTR: a SIGCHLD
    my $n = select(my $bits = $watch_bits, undef, undef,
        %resting ? $REST_SECONDS : $idle ? $SPARE_AFTER_SECONDS : undef);
    if ($n == 0 && $idle) {
        my $child = fork_child();
        $spare = $child if ref $child;
        next;
    }
    my @ready = $n > 0 ? map { $watched{$_} } grep { vec($bits, $_, 1) } keys %watched : ();
    for my $id (keys %resting) {
        watch(delete $resting{$id});
        $rested{$id} = 1;
    }
    reap();
    for my $fh (@ready) {
        if ($fh == $wake_r) {
            sysread($wake_r, my $drain, 4096);
            next;
        }
        if ($fh == \*STDIN) {
            read_requests();
            next;
        }
        my $fd = fileno $fh;
        next unless defined $fd;
        my $id = $id_of_fd{$fd};
        next unless defined $id;
        if ($large{$id} && !delete $rested{$id} && (held($fh) // $FULL_ENOUGH) < $FULL_ENOUGH) {
            unwatch($fh);
            $resting{$id} = $fh;
            next;
        }
        my $n = sysread($fh, my $buf, $READ_BYTES);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            $n = 0;
        }
        if ($n == 0) {
            stop_reading($id);
            send_frame('C', $id, '');
        }
        else {
            large_pipe($id, $fh) if ($relayed{$id} += $n) >= $SMALL_PIPE;
            send_frame('O', $id, $buf);
        }
    }
    flush_frames();
}
