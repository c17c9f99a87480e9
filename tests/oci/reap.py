#!/usr/bin/env python3
# Runs one container to its end with corral-runc (create, start) as its
# caller would: this process is the subreaper that the container's first
# process is handed to, and prints how it ended ("exit N" or "signal N").
# With --console, it also receives the pty master over a console socket
# (SCM_RIGHTS, as conmon does) and copies the container's output to stdout.
# usage: reap.py RUNTIME STATEDIR BUNDLE ID [--console]
import array, ctypes, os, socket, sys

runtime, state, bundle, cid = sys.argv[1:5]
console = "--console" in sys.argv[5:]
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

args = [runtime, "--root", state, "create", "--bundle", bundle]
srv = None
if console:
    path = os.path.join(state, "console-%s.sock" % cid)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    args += ["--console-socket", path]
pidfile = os.path.join(state, "pid-%s" % cid)
args += ["--pid-file", pidfile, cid]
pid = os.fork()
if pid == 0:
    os.execv(runtime, args)
_, st = os.waitpid(pid, 0)
if os.waitstatus_to_exitcode(st) != 0:
    print("create failed %d" % os.waitstatus_to_exitcode(st))
    sys.exit(0)
master = None
if srv:
    conn, _ = srv.accept()
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(256, socket.CMSG_LEN(fds.itemsize))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[: fds.itemsize])
    master = fds[0]
    os.unlink(path)
init = int(open(pidfile).read())
rc = os.spawnv(os.P_WAIT, runtime, [runtime, "--root", state, "start", cid])
if rc != 0:
    print("start failed %d" % rc)
out = b""
if master is not None:
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
while True:
    try:
        p, st = os.waitpid(-1, 0)
    except ChildProcessError:
        print("lost the container's process")
        break
    if p == init:
        if os.WIFSIGNALED(st):
            print("signal %d" % os.WTERMSIG(st))
        else:
            print("exit %d" % os.WEXITSTATUS(st))
        break
sys.stdout.flush()
if out:
    sys.stdout.write(out.decode(errors="replace").replace("\r\n", "\n"))
