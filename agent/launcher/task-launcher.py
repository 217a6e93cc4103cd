"""Jobfleet task launcher, where the host has Python 3.9 or later (subprocess's user=, group=
and extra_groups= came with 3.9; the agent checks the version before it starts this).

The same process as task-launcher.pl, speaking the same protocol (agent/src/task-launcher.ts
holds the other side; both ends are this repository's, so nothing here is validated twice):

  agent -> launcher, stdin:  u32 length | fields joined by NUL
    run  id cwd uid gid env-count env... file argv...   (uid/gid empty: the agent's own)
    drop id                                              (stop reading the task's output)
  launcher -> agent, stdout: u8 kind | u32 id | u32 length | data
    P pid | F why it could not start | O output | X "exit N" or "signal N" | C output closed

Why Python first: its subprocess starts a child with vfork where it can (Python 3.10 and later,
no user switch asked), so nothing of this process's memory is copied at the start or torn down
at the exec. A fork from perl copied perl's page tables and the task's exec tore them down
again: 1,000 `sh -c echo` four at a time took 8.7-9.0 s of CPU that way against 4.7-5.0 s here.
A task run as another user is forked as before (a setuid in a vfork child is unsafe), and so
is every task on Python 3.9.

Each task runs in a session and process group of its own (the agent kills the group by the
task's pid), with stdin on /dev/null and stdout and stderr on one pipe (their order kept). It
exits when the agent closes its stdin (the agent stopped or died), and kills the process group
of every task still running: nobody can report them any more, and the agent's next start calls
them lost.
"""
import fcntl
import os
import selectors
import signal
import struct
import subprocess


# A task that has printed 64 KiB (a pipe's worth on Linux) gets a pipe of a MiB, read a MiB at a
# time, and is read only once its pipe holds a quarter of a MiB or it rested a millisecond: read
# as soon as anything is in it, the pipe of a task printing fast yields a few KiB per read (every
# write wakes this process), each a frame for the agent to spool and send and for its server to
# take. Only such tasks: a user's pipe memory is limited, and thousands of quiet tasks must not
# use it up. F_SETPIPE_SZ (1031) and FIONREAD (0x541B) are Linux's.
READ_BYTES = 1 << 20
SMALL_PIPE = 65536
FULL_ENOUGH = READ_BYTES // 4
REST_SECONDS = 0.001
F_SETPIPE_SZ = 1031
FIONREAD = 0x541B

selector = selectors.DefaultSelector()
pipe_of = {}      # task id -> read end of its output pipe
id_of_pid = {}    # pid -> task id
relayed = {}      # task id -> bytes of output relayed so far
large = set()     # task ids whose pipe was enlarged
resting = {}      # task id -> its pipe, unwatched until the next turn of the loop
rested = set()    # task ids whose pipe rested since its last read
large_stdout = False
# Frames wait here until the end of the current step (a request handled, a turn of the loop), so
# that a task's output, exit status and end of output reach the agent in one write.
frames = []


def send_frame(kind, task_id, data):
    frames.append(struct.pack('>cII', kind, task_id, len(data)))
    if data:
        frames.append(data)


def flush_frames():
    global frames
    pending, frames = frames, []
    at = 0
    while at < len(pending):
        try:
            # At most IOV_MAX (1,024 on Linux) pieces a call.
            n = os.writev(1, pending[at:at + 1024])
        except InterruptedError:
            continue
        except OSError:
            agent_gone()
        while n > 0:
            size = len(pending[at])
            if n >= size:
                n -= size
                at += 1
            else:
                pending[at] = memoryview(pending[at])[n:]
                n = 0


def agent_gone():
    for pid in id_of_pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


def stop_reading(task_id):
    fd = pipe_of.pop(task_id, None)
    if fd is None:
        return
    large.discard(task_id)
    relayed.pop(task_id, None)
    rested.discard(task_id)
    if resting.pop(task_id, None) is None:
        selector.unregister(fd)
    os.close(fd)


def large_pipe(task_id, fd):
    global large_stdout
    if task_id in large:
        return
    large.add(task_id)
    ends = [fd] if large_stdout else [fd, 1]
    large_stdout = True
    for end in ends:
        try:
            fcntl.fcntl(end, F_SETPIPE_SZ, READ_BYTES)
        except OSError:
            pass  # not a pipe (the agent's end is a socket where Node made it), or over the limit


def held(fd):
    """Bytes waiting in a pipe (None where FIONREAD is not known)."""
    try:
        return struct.unpack('i', fcntl.ioctl(fd, FIONREAD, b'\0\0\0\0'))[0]
    except OSError:
        return None


def relay(task_id, data):
    relayed[task_id] = relayed.get(task_id, 0) + len(data)
    if relayed[task_id] >= SMALL_PIPE:
        large_pipe(task_id, pipe_of[task_id])
    send_frame(b'O', task_id, data)


def drain(task_id):
    """Sends what a task's pipe holds now; true at end of file."""
    fd = pipe_of.get(task_id)
    if fd is None:
        return False
    while True:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return False  # a background child still holds the pipe
        except InterruptedError:
            continue
        if not data:
            return True
        relay(task_id, data)


def reap():
    """Everything a task wrote before it exited goes out before its exit status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        task_id = id_of_pid.pop(pid, None)
        if task_id is None:
            continue
        eof = drain(task_id)
        if os.WIFSIGNALED(status):
            send_frame(b'X', task_id, b'signal %d' % os.WTERMSIG(status))
        else:
            send_frame(b'X', task_id, b'exit %d' % os.WEXITSTATUS(status))
        if eof:
            stop_reading(task_id)
            send_frame(b'C', task_id, b'')


def start_failure(err):
    """Why a task did not start, as a person reads it: "No such file or directory: /the/path"."""
    if isinstance(err, OSError) and err.strerror:
        if err.filename is None:
            return err.strerror
        return '%s: %s' % (err.strerror, os.fsdecode(err.filename))
    return str(err)


def start_task(fields):
    task_id = int(fields[0])
    cwd, uid, gid, env_count = fields[1], fields[2], fields[3], int(fields[4])
    env = dict(entry.split(b'=', 1) for entry in fields[5:5 + env_count])
    file, argv = fields[5 + env_count], fields[6 + env_count:]
    switch = {}
    if gid:
        switch.update(group=int(gid), extra_groups=[])
    if uid:
        switch['user'] = int(uid)
    out_r, out_w = os.pipe()
    try:
        child = subprocess.Popen(
            argv,
            executable=file,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            start_new_session=True,
            **switch,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        os.close(out_r)
        os.close(out_w)
        send_frame(b'F', task_id, start_failure(err).encode())
        return
    os.close(out_w)
    # Reaped by reap(), never by the Popen object (which would otherwise keep it to wait for).
    child.returncode = 0
    os.set_blocking(out_r, False)
    pipe_of[task_id] = out_r
    id_of_pid[child.pid] = task_id
    selector.register(out_r, selectors.EVENT_READ, task_id)
    send_frame(b'P', task_id, str(child.pid).encode())


def handle_request(payload):
    command, *fields = payload.split(b'\0')
    if command == b'run':
        start_task(fields)
    elif command == b'drop':
        stop_reading(int(fields[0]))


requests = bytearray()


def read_requests():
    try:
        data = os.read(0, 65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        agent_gone()
    if not data:
        agent_gone()
    requests.extend(data)
    while len(requests) >= 4:
        (length,) = struct.unpack_from('>I', requests)
        if len(requests) < 4 + length:
            break
        payload = bytes(requests[4:4 + length])
        del requests[:4 + length]
        handle_request(payload)
        # Tasks that ended while a backlog of requests is started report now, not after it.
        reap()
        flush_frames()


def read_output(task_id, fd):
    waiting = held(fd) if task_id in large and task_id not in rested else None
    if waiting is not None and waiting < FULL_ENOUGH:
        selector.unregister(fd)
        resting[task_id] = fd
        return
    rested.discard(task_id)
    try:
        data = os.read(fd, READ_BYTES)
    except (BlockingIOError, InterruptedError):
        return
    if data:
        relay(task_id, data)
    else:
        stop_reading(task_id)
        send_frame(b'C', task_id, b'')


def main():
    # SIGCHLD wakes the loop through this pipe, so no exit is missed between a check and the wait.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    # Ended by an interrupt as perl's is (and a C program would be), without Python's traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.set_blocking(0, False)
    selector.register(0, selectors.EVENT_READ, 'requests')
    selector.register(wake_r, selectors.EVENT_READ, 'wake')
    while True:
        ready = selector.select(REST_SECONDS if resting else None)
        for task_id, fd in list(resting.items()):
            del resting[task_id]
            selector.register(fd, selectors.EVENT_READ, task_id)
            rested.add(task_id)
        reap()
        for key, _ in ready:
            if key.data == 'wake':
                try:
                    os.read(wake_r, 4096)
                except OSError:
                    pass
            elif key.data == 'requests':
                read_requests()
            elif pipe_of.get(key.data) == key.fd:
                read_output(key.data, key.fd)
        flush_frames()


main()
