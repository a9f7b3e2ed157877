"""Warm kernels: per grading process one sandboxed zygote (pipeline/zygote.py) that has imported numpy,
torch, matplotlib, ipykernel and course_utils, and forks a fresh kernel for each notebook.

Between notebooks the zygote kills every other process of its sandbox and empties the sandbox's /tmp
(the notebook's folder included) and /dev/shm; this side empties the folder it shares with the sandbox
(the submission's copy, read-only there, and the kernel's sockets). One kernel runs at a time. A zygote
that dies or stops answering is killed with its whole sandbox and started again when next needed. Its
host folder, /var/tmp/cg-warm-<pid>-*, goes when the grading process ends, however it ends (a helper
process waits for that), or when the next grading process finds it left behind by a dead one.
"""
import contextlib
import json
import multiprocessing.util
import os
import re
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

# what every graded kernel loads: course_utils.judge keeps a cell's output to COURSE_OUTPUT_LIMIT characters
KERNEL_ARGS = ["--IPKernelApp.extra_extensions=course_utils.judge"]

_ZYGOTES = {}
_CLOSED = False


class ZygoteError(RuntimeError):
    """The zygote died, stopped answering or refused to fork."""


def zygote(uid, budget=None):
    """This thread's zygote for sandbox user `uid` and budget (started when it first forks a kernel): a
    zygote runs one kernel at a time, so a worker that grades in several threads has one per thread, and a
    forked worker never uses its parent's."""
    key = os.getpid(), uid, threading.get_ident(), tuple(sorted((budget or {}).items()))
    if key not in _ZYGOTES:
        _ZYGOTES[key] = Zygote(uid, budget)
        multiprocessing.util.Finalize(None, _ZYGOTES[key].close, exitpriority=10)  # pool workers skip atexit
    return _ZYGOTES[key]


def close_all():
    """End every zygote this process started, and with them their sandboxes, for good: a notebook still
    being graded then fails at once instead of starting another."""
    global _CLOSED
    _CLOSED = True
    for (pid, *_), each in list(_ZYGOTES.items()):
        if pid == os.getpid():
            each.close()


class Zygote:
    def __init__(self, uid, budget=None):
        self.uid, self.budget = uid, budget
        remove_stale()
        self.root = Path(tempfile.mkdtemp(prefix=f"cg-warm-{os.getpid()}-", dir=PLACE))
        os.chmod(self.root, 0o755)  # a sandbox made in a user namespace binds it as the sandbox user
        # removes the folder once this process has gone, even by SIGTERM or SIGKILL (its pipe then closes)
        self.reaper = subprocess.Popen(["sh", "-c", 'read _; chmod -R u+rwx "$0"; rm -rf "$0"', self.root],
                                       stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        self.folder = self.root / "box"
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
        _empty(self.folder, keep=("ipc",))
        return self.folder

    def fork(self, connection_file, env):
        """Namespace pid of a fresh kernel for `connection_file`, with `env` added to its environment, run
        in a fresh copy of the submission."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        reply = self._ask(op="fork", connection_file=str(connection_file), folder=str(self.folder),
                          workdir=sandbox.WORK, args=KERNEL_ARGS, env=env)
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

    def start(self):
        """Start the zygote in the prepared folder (seconds: until it has imported everything)."""
        self.stop()
        if _CLOSED:
            raise ZygoteError("grading is stopping")
        start = time.perf_counter()
        ours, theirs = socket.socketpair()
        env = {"COURSE_JUDGE": str(self.folder / "judge.sock"), "COURSE_ZYGOTE_FD": str(theirs.fileno())}
        # -Xfrozen_modules=off as in ipykernel's kernel spec (the debugger warns otherwise)
        source = Path(__file__).with_name("zygote.py").read_text()
        argv = [sys.executable, "-Xfrozen_modules=off", "-c", source]
        self.process = subprocess.Popen(sandbox.command(self.folder, argv, self.uid, env, self.budget),
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
        _remove(self.root)
        self.reaper.stdin.close()
        self.reaper.wait()


PLACE = "/var/tmp"  # not /tmp, which may be a tmpfs of little room


def remove_stale():
    """Remove the zygote folders of this user's grading processes that have ended."""
    for folder in Path(PLACE).glob("cg-warm-*-*"):
        owner = re.fullmatch(r"cg-warm-(\d+)-\w+", folder.name)
        with contextlib.suppress(OSError):  # gone meanwhile
            if owner and not _alive(int(owner[1])) and folder.stat().st_uid == os.getuid():
                _remove(folder)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


def _empty(folder, keep=()):
    """Remove everything in `folder` but the folders named in `keep` (emptied: the sandbox binds them), what
    the kernel made unreadable or unwritable (chmod 0) included."""
    folder.mkdir(exist_ok=True)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
            _empty(Path(entry.path))
            if entry.name not in keep:
                os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def _remove(folder):
    _empty(folder)
    folder.rmdir()


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
        self.process = _Forked(manager.zygote, manager.zygote.fork(manager.connection_file, manager.kernel_env))
        self.pid, self.pgid, self.cwd = self.process.pid, None, sandbox.WORK
        return self.connection_info
