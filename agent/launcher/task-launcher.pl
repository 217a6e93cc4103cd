#!/usr/bin/perl
# Jobfleet task launcher: a small process that starts an agent's task processes, so that a
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
# It exits when the agent closes its stdin (the agent stopped or died); task processes keep
# running then, as they would have had the agent started them itself, and the agent's next
# start finds and kills them from its spool.
use strict;
use warnings;
use Errno qw(EINTR EAGAIN);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use IO::Select;
use POSIX ();

binmode STDIN;
binmode STDOUT;
$SIG{PIPE} = 'IGNORE';

# SIGCHLD writes to a pipe that the main loop watches, so no exit is missed between a check
# and the wait in select.
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
# A task that fills its pipe (64 KiB on Linux) gets a pipe of a MiB, read a MiB at a time: fewer
# reads here, fewer and larger frames to the agent. Only such tasks: a user's pipe memory is
# limited, and thousands of quiet tasks must not use it up. F_SETPIPE_SZ is Linux's; elsewhere
# this does nothing.
my $READ_BYTES = 1 << 20;
my $SMALL_PIPE = 65536;
my %large;         # task id -> its pipe was enlarged
my $large_stdout = 0;
sub large_pipe {
    my ($id, $fh) = @_;
    return if $large{$id}++;
    fcntl($fh, 1031, $READ_BYTES);
    fcntl(STDOUT, 1031, $READ_BYTES) unless $large_stdout++;
}

sub nonblocking {
    my ($fh) = @_;
    my $flags = fcntl($fh, F_GETFL, 0) or die "fcntl: $!";
    fcntl($fh, F_SETFL, $flags | O_NONBLOCK) or die "fcntl: $!";
}
nonblocking($_) for $wake_r, $wake_w;
$SIG{CHLD} = sub { syswrite($wake_w, 'x') };

my $select = IO::Select->new(\*STDIN, $wake_r);
my %pipe_of;    # task id -> read end of its output pipe
my %id_of_fd;   # fileno of that pipe -> task id
my %id_of_pid;  # pid -> task id
my $in = '';
# Frames wait here until the end of the current step (a request handled, a turn of the loop),
# so that a task's output, exit status and end of output reach the agent in one write.
my $out = '';

sub send_frame {
    my ($kind, $id, $data) = @_;
    $out .= pack('a1 N N', $kind, $id, length $data) . $data;
}

sub flush_frames {
    my $off = 0;
    while ($off < length $out) {
        my $n = syswrite(STDOUT, $out, length($out) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR;
            exit 0;    # the agent is gone
        }
        $off += $n;
    }
    $out = '';
}

sub stop_reading {
    my ($id) = @_;
    my $fh = delete $pipe_of{$id} or return;
    delete $large{$id};
    delete $id_of_fd{ fileno $fh };
    $select->remove($fh);
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

sub start_task {
    my ($id, $cwd, $uid, $gid, $env_count, @rest) = @_;
    my @env = splice(@rest, 0, $env_count);
    my ($file, @argv) = @rest;
    # Perl opens these close-on-exec: the status pipe closes when exec succeeds.
    pipe(my $out_r, my $out_w) or return send_frame('F', $id, "pipe: $!");
    pipe(my $status_r, my $status_w) or return send_frame('F', $id, "pipe: $!");
    my $pid = fork;
    if (!defined $pid) {
        send_frame('F', $id, "fork: $!");
        return;
    }
    if ($pid == 0) {
        eval {
            $SIG{PIPE} = 'DEFAULT';
            $SIG{CHLD} = 'DEFAULT';
            close $out_r;
            close $status_r;
            # Its own session and process group: killing the group reaches every descendant.
            POSIX::setsid() or die "setsid: $!\n";
            open(STDIN, '<', '/dev/null') or die "/dev/null: $!\n";
            POSIX::dup2(fileno $out_w, 1) or die "dup2: $!\n";
            POSIX::dup2(fileno $out_w, 2) or die "dup2: $!\n";
            if ($gid ne '') {
                $) = "$gid $gid";    # also the supplementary groups: only this one
                POSIX::setgid($gid) or die "setgid $gid: $!\n";
            }
            if ($uid ne '') {
                POSIX::setuid($uid) or die "setuid $uid: $!\n";
                die "could not switch to uid $uid\n" if $< != $uid || $> != $uid;
            }
            chdir $cwd or die "chdir $cwd: $!\n";
            %ENV = map { split /=/, $_, 2 } @env;
            exec {$file} @argv;
            die "exec $file: $!\n";
        };
        syswrite($status_w, $@ || "could not start\n");
        POSIX::_exit(127);
    }
    close $out_w;
    close $status_w;
    nonblocking($out_r);
    my $why = read_all($status_r);
    close $status_r;
    if ($why ne '') {
        waitpid($pid, 0);
        close $out_r;
        chomp $why;
        send_frame('F', $id, $why);
        return;
    }
    $pipe_of{$id} = $out_r;
    $id_of_fd{ fileno $out_r } = $id;
    $id_of_pid{$pid} = $id;
    $select->add($out_r);
    send_frame('P', $id, $pid);
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
        exit 0;
    }
    exit 0 if $n == 0;
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
        next unless defined $id;
        my $eof = drain($id);
        send_frame('X', $id, ($status & 127) ? 'signal ' . ($status & 127) : 'exit ' . ($status >> 8));
        if ($eof) {
            stop_reading($id);
            send_frame('C', $id, '');
        }
    }
}

while (1) {
    my @ready = $select->can_read();
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
            large_pipe($id, $fh) if $n >= $SMALL_PIPE;
            send_frame('O', $id, $buf);
        }
    }
    flush_frames();
}
