"""The template of warm kernels, run inside a sandbox as `python -c <this file's text>` (pipeline/warm.py).

It imports what every notebook imports, marks itself non-dumpable (no ptrace, no /proc/<pid>/mem for
the kernels), then serves the grader on the socket COURSE_ZYGOTE_FD, one JSON line per request:
fork a fresh ipykernel for a connection file (after cleaning up, in the notebook's folder copied afresh),
poll or signal it, or clean up: kill every other process of the sandbox, drop SysV IPC objects, empty
/tmp and /dev/shm (the sandbox's only writable places but its folder of sockets, which the grader empties).
A forked kernel closes that socket first, so it cannot ask for anything.
"""
import contextlib
import ctypes
import gc
import json
import os
import shutil
import signal
import socket
import sys
import time

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE, IPC_RMID = 4, 0
TORCH_THREADS = 0


def _imports():
    """What every notebook imports, from the environment only (never from the submission's folder)."""
    global TORCH_THREADS
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    os.chdir("/")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # as ipykernel sets it
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # or numpy starts OpenBLAS's thread pool when imported
    with contextlib.suppress(ImportError):  # an environment without torch still gets warm kernels
        import torch
        TORCH_THREADS = torch.get_num_threads()
        torch.set_num_threads(1)  # before anything starts a thread pool: forking needs a single thread
        torch.set_num_interop_threads(1)
    import matplotlib.pyplot  # noqa: F401
    import matplotlib_inline.backend_inline  # noqa: F401
    import numpy  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    # what a kernel's start imports
    import ipykernel.debugger, ipykernel.ipkernel, ipykernel.zmqshell  # noqa: F401, E401
    import pdb, pydoc, sqlite3, threadpoolctl, tornado.gen, tornado.locks, tornado.queues  # noqa: F401, E401
    import course_utils.checks  # noqa: F401
    import course_utils.judge  # noqa: F401
    if blas is None:
        del os.environ["OPENBLAS_NUM_THREADS"]
    gc.collect()
    gc.freeze()  # the kernels' garbage collector leaves the template's objects alone (fewer copied pages)


def clean():
    """Kill every process of the sandbox but this one and its init, wait for them, drop SysV IPC objects,
    empty /tmp and /dev/shm; how many processes are left."""
    if (os.getpid(), os.getppid()) != (2, 1):  # kill(-1) is only safe inside the sandbox's pid namespace
        raise RuntimeError("the zygote runs outside a pid namespace of its own")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:  # nothing else is running
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    deadline = time.monotonic() + 5
    while _others() and time.monotonic() < deadline:  # orphans are reaped by the sandbox's init
        time.sleep(0.005)
    for kind, remove in (("shm", lambda i: LIBC.shmctl(i, IPC_RMID, None)),
                         ("msg", lambda i: LIBC.msgctl(i, IPC_RMID, None)),
                         ("sem", lambda i: LIBC.semctl(i, 0, IPC_RMID))):
        with open(f"/proc/sysvipc/{kind}") as table:
            for line in list(table)[1:]:
                remove(int(line.split()[1]))
    with open("/proc/self/mountinfo") as table:
        mounts = {line.split()[4] for line in table}
    for folder in ("/tmp", "/dev/shm"):
        _empty(folder, mounts)
    return len(_others())


def _empty(folder, mounts=()):
    """Remove what is in `folder` but mount points and their parents (read-only paths bound under /tmp),
    whatever a kernel made unreadable or unwritable included."""
    for entry in os.scandir(folder):
        if entry.path in mounts:
            continue
        if any(m.startswith(entry.path + "/") for m in mounts):
            _empty(entry.path, mounts)
        elif entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
            _empty(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def _copy_in(folder, workdir, mplconfig):
    """The notebook's folder and matplotlib's cache, fresh from the grader's copy in `folder`."""
    shutil.copytree(os.path.join(folder, "work"), workdir)
    shutil.copytree(os.path.join(folder, "mpl"), mplconfig, dirs_exist_ok=True)


def _others():
    return [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]


def _kernel(request):
    """In the forked child: become a fresh kernel process and run ipykernel until it ends."""
    code = 1
    try:
        os.closerange(3, 1 << 16)  # the zygote's socket above all
        os.setpgid(0, 0)
        LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        if TORCH_THREADS:
            sys.modules["torch"].set_num_threads(TORCH_THREADS)  # what a new process starts with
        os.chdir(request["workdir"])
        os.environ.update(request["env"])
        from ipykernel import kernelapp
        # the parent to watch, as jupyter_client's JPY_PARENT_PID tells a kernel it starts (and so
        # no "`ipython kernel` entry point" banner on the grader's terminal)
        kernelapp.launch_new_instance(["-f", request["connection_file"], *request["args"],
                                        f"--IPKernelApp.parent_handle={os.getppid()}"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        import atexit
        atexit._run_exitfuncs()  # what a process that ends normally runs (the kernel's own included)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(control):
    exits = {}
    for line in control.makefile("r"):
        request = json.loads(line)
        op, pid = request["op"], request.get("pid")
        if op == "fork":
            clean()
            _copy_in(request["folder"], request["workdir"], os.environ["MPLCONFIGDIR"])
            exits.clear()
            threads = len(os.listdir("/proc/self/task"))
            if threads != 1:
                reply = {"error": f"the template has {threads} threads: forking it is unsafe"}
            else:
                pid = os.fork()
                if pid == 0:
                    _kernel(request)
                reply = {"pid": pid}
        elif op == "poll":
            if pid not in exits:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        exits[pid] = os.waitstatus_to_exitcode(status)
                except ChildProcessError:  # already reaped by clean()
                    exits[pid] = -signal.SIGKILL
            reply = {"code": exits.get(pid)}
        elif op == "signal":
            try:
                os.killpg(pid, request["signal"])
            except OSError:
                try:
                    os.kill(pid, request["signal"])
                except OSError:
                    pass
            reply = {}
        else:
            reply = {"left": clean()}
        control.sendall((json.dumps(reply) + "\n").encode())


if __name__ == "__main__":
    _control = socket.socket(fileno=int(os.environ.pop("COURSE_ZYGOTE_FD")))
    _imports()
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _control.sendall(b'{"ready": true}\n')
    serve(_control)
