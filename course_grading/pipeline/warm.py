"""Warm kernels: per grading process one sandboxed zygote (pipeline/zygote.py) that has imported numpy,
torch, matplotlib, ipykernel and course_utils, and forks a fresh kernel for each notebook.

The sandbox's writable folder and its /tmp are host folders that this side empties between notebooks,
after the zygote has killed every other process of the sandbox; one kernel runs at a time. A zygote
that dies or stops answering is killed with its whole sandbox and started again when next needed.
"""
import json
import multiprocessing.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

from course_grading.pipeline import sandbox

_ZYGOTES = {}


class ZygoteError(RuntimeError):
    """The zygote died, stopped answering or refused to fork."""


def zygote(uid):
    """This thread's zygote for sandbox user `uid` (started when it first forks a kernel): a zygote
    runs one kernel at a time, so a worker that grades in several threads has one per thread, and a
    forked worker never uses its parent's."""
    key = os.getpid(), uid, threading.get_ident()
    if key not in _ZYGOTES:
        _ZYGOTES[key] = Zygote(uid)
        multiprocessing.util.Finalize(None, _ZYGOTES[key].close, exitpriority=10)  # pool workers skip atexit
    return _ZYGOTES[key]


class Zygote:
    def __init__(self, uid):
        self.uid = uid
        # not under /tmp: the sandbox's /tmp is a folder of its own, emptied between notebooks
        self.root = Path(tempfile.mkdtemp(prefix="cg-warm-", dir="/var/tmp"))
        self.folder, self.tmp = self.root / "box", self.root / "tmp"
        self.process = self.control = None
        self.lock = threading.Lock()

    def fresh_folder(self):
        """Stop whatever the last notebook left running and empty the folders; the sandbox's folder."""
        if self.process is not None:
            try:
                if self._ask(op="clean")["left"]:
                    self.stop()
            except ZygoteError:
                pass  # stopped with its sandbox
        _empty(self.folder)
        # read-only paths under /tmp (a course cloned there) are bound on folders of self.tmp: deleting
        # those would detach the binds inside the running sandbox
        _empty(self.tmp, keep={self.tmp / p.relative_to("/tmp") for p in sandbox.mount_points("/tmp")})
        os.chmod(self.tmp, 0o1777)
        return self.folder

    def fork(self, connection_file, workdir):
        """Namespace pid of a fresh kernel for `connection_file`, run in `workdir` (inside self.folder)."""
        if self.process is None or self.process.poll() is not None:
            self.start(workdir)
        reply = self._ask(op="fork", connection_file=str(connection_file), workdir=str(workdir))
        if "error" in reply:
            self.stop()
            raise ZygoteError(reply["error"])
        return reply["pid"]

    def poll(self, pid):
        try:
            return self._ask(op="poll", pid=pid)["code"]
        except ZygoteError:
            return -signal.SIGKILL  # its kernels ended with it

    def signal(self, pid, signum):
        try:
            self._ask(op="signal", pid=pid, signal=int(signum))
        except ZygoteError:
            pass

    def start(self, workdir):
        """Start the zygote (seconds: until it has imported everything), `workdir` as its kernels' HOME."""
        self.stop()
        start = time.perf_counter()
        ours, theirs = socket.socketpair()
        env = {"COURSE_JUDGE": str(self.folder / "judge.sock"), "COURSE_ZYGOTE_FD": str(theirs.fileno())}
        # -Xfrozen_modules=off as in ipykernel's kernel spec (the debugger warns otherwise)
        source = Path(__file__).with_name("zygote.py").read_text()
        argv = [sys.executable, "-Xfrozen_modules=off", "-c", source]
        self.process = subprocess.Popen(sandbox.command(self.folder, workdir, argv, self.uid, env, self.tmp),
                                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        theirs.close()
        self.control, self.replies = ours, ours.makefile("r")
        if not self._reply(timeout=180).get("ready"):
            self.stop()
            raise ZygoteError("the zygote did not start")
        return time.perf_counter() - start

    def _ask(self, timeout=20, **request):
        with self.lock:
            if self.control is None:
                raise ZygoteError("no zygote")
            try:
                self.control.sendall((json.dumps(request) + "\n").encode())
            except OSError as error:
                self.stop()
                raise ZygoteError("the zygote is gone") from error
            return self._reply(timeout)

    def _reply(self, timeout):
        self.control.settimeout(timeout)
        try:
            line = self.replies.readline()
        except OSError:  # timeouts included
            line = ""
        if not line:
            self.stop()
            raise ZygoteError("the zygote stopped answering")
        return json.loads(line)

    def stop(self):
        """Kill the zygote with its whole sandbox."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()
        if self.control is not None:
            self.control.close()
        self.process = self.control = None

    def close(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _empty(folder, keep=frozenset()):
    """Remove everything in `folder` but the folders `keep` (emptied in turn)."""
    folder.mkdir(exist_ok=True)
    for entry in folder.iterdir():
        if entry in keep and entry.is_dir() and not entry.is_symlink():
            _empty(entry, keep)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_unlock)
        else:
            entry.unlink()


def _unlock(function, path, _):
    """A folder the kernel made unwritable (chmod 0) is emptied anyway."""
    os.chmod(os.path.dirname(path), 0o700)
    function(path)


class _Forked:
    """A kernel the zygote forked, with the part of Popen's interface that LocalProvisioner uses."""

    stdin = stdout = stderr = None

    def __init__(self, zygote, pid):
        self.zygote, self.pid = zygote, pid

    def poll(self):
        return self.zygote.poll(self.pid)

    def wait(self, timeout=None):
        while (code := self.poll()) is None:
            time.sleep(0.05)
        return code

    def send_signal(self, signum):
        self.zygote.signal(self.pid, signum)  # to the kernel's process group

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class WarmProvisioner(LocalProvisioner):
    """Launches the kernel by asking the manager's zygote to fork one (the kernel command is not run)."""

    async def launch_kernel(self, cmd, **kwargs):
        manager = self.parent
        self.process = _Forked(manager.zygote, manager.zygote.fork(manager.connection_file, manager.work))
        self.pid, self.pgid, self.cwd = self.process.pid, None, manager.work
        return self.connection_info
