"""Warm kernels (course_grading.pipeline.warm) keep every notebook apart: one grading worker forks the kernels
of four notebooks from one zygote, in order: A tampers with everything it can reach (a file in every place of
its sandbox it can write), B checks it sees none of it, C attacks the zygote itself, D checks again and is
graded as if nothing had happened. As root and as an ordinary user (tests/sandbox_modes.py).
"""
import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_grading import samples
from course_grading.pipeline import sandbox
from course_grading.course import ROOT
from tests.sandbox_modes import MODES, grade

UNIT = "01_perceptron"
pytestmark = pytest.mark.skipif(bool(sandbox.available()), reason=f"no sandbox here: {sandbox.available()}")

FIRST = """import hashlib, numpy as np, random
print('RNG', hashlib.sha256(np.random.get_state()[1].tobytes()).hexdigest()[:16], random.random())
"""
LEFT = ["/tmp/atexit_leak", "/tmp/background_leak"]
# every mount of the sandbox, the folders above them, and the places a kernel is told of
PLACES = """import os
places = {line.split()[4] for line in open('/proc/self/mountinfo')}
places |= {os.path.dirname(p) for p in places} | {os.getcwd(), os.environ['HOME'], os.environ['MPLCONFIGDIR'],
          '/var/tmp', '/dev/shm', os.path.dirname(os.environ['COURSE_JUDGE']) + '/ipc'}
"""
TAMPER = FIRST + PLACES + f"""import atexit, builtins, ctypes, os, subprocess, sys, torch
ctypes.CDLL(None).shmget(0x5EC, 4096, 0o1666)  # System V shared memory outlives its process
ctypes.CDLL(None).mq_open(b'/leak', os.O_CREAT | os.O_RDWR, 0o666, None)  # so does a POSIX message queue
TAMPERED_GLOBAL = 1
builtins.TAMPERED = 1
sys.modules['course_utils'].TAMPERED = 1
os.environ['TAMPERED'] = '1'
np.mean = lambda *a, **k: 42
torch.zeros = lambda *a, **k: 42
np.random.seed(12345); random.seed(12345); torch.manual_seed(12345)
written = []
for place in sorted(places):
    try:
        open(os.path.join(place, 'cg_leak'), 'w').write('x')
        written.append(place)
    except OSError:
        pass
print('WROTE', written)
atexit.register(lambda: open('/tmp/atexit_leak', 'w').write('x'))
subprocess.Popen(['sleep', '1000'])
subprocess.Popen(['sh', '-c', 'while true; do touch /tmp/background_leak; sleep 0.1; done'],
                 start_new_session=True)
"""
CHECK = FIRST + PLACES + f"""import builtins, ctypes, os, sys, torch
leaks = [name for name, leaked in [
    ('global', 'TAMPERED_GLOBAL' in globals()), ('builtins', hasattr(builtins, 'TAMPERED')),
    ('module', hasattr(sys.modules['course_utils'], 'TAMPERED')), ('environ', 'TAMPERED' in os.environ),
    ('numpy function', np.mean(np.ones(3)) != 1),
    ('torch function', not isinstance(torch.zeros(2), torch.Tensor)),
    ('numpy seed', (np.random.get_state()[1] == np.random.RandomState(12345).get_state()[1]).all()),
    ('random seed', random.getstate() == random.Random(12345).getstate()),
    ('torch seed', torch.initial_seed() == 12345),
    ('shared memory', ctypes.CDLL(None).shmget(0x5EC, 0, 0o666) != -1),
    ('message queue', ctypes.CDLL(None).mq_open(b'/leak', os.O_RDONLY) != -1)] if leaked]
leaks += [path for path in {LEFT!r} if os.path.exists(path)]
leaks += [place for place in sorted(places) if os.path.exists(os.path.join(place, 'cg_leak'))]
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        program = open(f'/proc/{{pid}}/cmdline', 'rb').read().split(b'\\0')[0]
    except OSError:
        continue
    if program.endswith((b'sleep', b'sh')):
        leaks.append(f'process {{program.decode()}}')
print('LEAKS', leaks)
"""
ATTACK = """import ctypes, os, signal
zygote = os.getppid()
try:
    open(f'/proc/{zygote}/mem', 'rb').read(1)
    print('READ MEMORY')
except OSError as error:
    print('memory', type(error).__name__)
libc = ctypes.CDLL(None, use_errno=True)
print('PTRACE', libc.ptrace(16, zygote, 0, 0))
os.kill(zygote, signal.SIGSTOP)
"""


def _first(nb, code):
    nb = copy.deepcopy(nb)
    nb.cells.insert(0, nbformat.v4.new_code_cell(code))
    return nb


@pytest.fixture(scope="module", params=MODES)
def graded(request, tmp_path_factory):
    scratch = tmp_path_factory.mktemp(f"warm_{request.param}")
    solved = samples.student_notebook(ROOT, UNIT)
    work = {"a_tamper": _first(solved, TAMPER), "b_check": _first(solved, CHECK),
            "c_attack": _first(solved, ATTACK), "d_check": _first(solved, CHECK)}
    samples.write_class(scratch / "subs", {student: {UNIT: nb} for student, nb in work.items()})
    report = grade(request.param, scratch / "subs", scratch / "graded", jobs=1, only=(UNIT,))
    outputs = {}
    for student in work:
        nb = samples.read(scratch / "graded" / "autograded" / student / UNIT / f"{UNIT}.ipynb")
        outputs[student] = "".join(str(o.get("text", "")) for o in nb.cells[0].get("outputs", []))
    return report, outputs


def test_the_next_notebook_sees_nothing_of_the_last(graded):
    report, outputs = graded
    for student in ("b_check", "d_check"):
        assert "LEAKS []" in outputs[student], outputs[student]
        assert report.scores[student, UNIT][0] == report.scores[student, UNIT][1]


def test_a_kernel_can_write_only_where_it_is_emptied(graded):
    """/tmp (the notebook's folder and matplotlib's cache in it), /dev/shm and the folder of its sockets;
    not the root, /dev, /var/tmp or any folder made for a mount point outside /tmp. A course cloned under
    /tmp (as CI may clone it) has the folders above it made in the sandbox's /tmp, which the zygote
    empties but for the mount points themselves (test_emptying_tmp_keeps_what_read_only_paths_are_bound_on)."""
    _, outputs = graded
    written = eval(re.search(r"WROTE (\[.*\])", outputs["a_tamper"])[1])
    above_mounts = {str(p) for p in (ROOT, *ROOT.parents) if str(p).startswith("/tmp/")}
    ipc = [p for p in written if re.fullmatch(r"/var/tmp/cg-warm-[^/]*/box/ipc", p)]
    assert sorted(written) == sorted(["/dev/shm", "/tmp", "/tmp/.matplotlib", "/tmp/work", *ipc,
                                      *(above_mounts & set(written))]) and len(ipc) == 1


def test_every_kernel_has_a_fresh_random_state(graded):
    _, outputs = graded
    states = [re.search(r"RNG (\S+) (\S+)", outputs[s]).groups() for s in ("a_tamper", "b_check", "d_check")]
    assert len({numpy for numpy, _ in states}) == 3 and len({python for _, python in states}) == 3


def test_an_attack_on_the_zygote_gains_nothing(graded):
    _, outputs = graded
    assert "memory PermissionError" in outputs["c_attack"] and "READ MEMORY" not in outputs["c_attack"]
    assert "PTRACE -1" in outputs["c_attack"]


def test_emptying_tmp_keeps_what_read_only_paths_are_bound_on(tmp_path):
    """A course cloned under /tmp is bound on folders of the sandbox's /tmp: the zygote empties /tmp between
    notebooks but for mount points and the folders above them (deleting them would fail or detach binds)."""
    from course_grading.pipeline import zygote

    for path in ("clone/.venv/bin", "clone/leak/deep", "leak"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "clone" / "file").write_text("left by a kernel")
    (tmp_path / "clone" / "leak").chmod(0)
    zygote._empty(str(tmp_path), {str(tmp_path / "clone" / ".venv")})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == \
        ["clone", "clone/.venv", "clone/.venv/bin"]


def test_course_run_forks_warm_kernels_names_errors_and_stays_quiet(tmp_path):
    """`course run` forks its kernels too: a notebook's error is named, its files stay in its sandbox,
    and no kernel banner or TCP warning reaches the terminal."""
    from course_grading.tools.runner import execute

    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("open('litter', 'w').write('x')"),
                                             nbformat.v4.new_code_cell("raise ValueError('no answer yet')")])
    nbformat.write(broken, tmp_path / "broken.ipynb")
    run = execute(tmp_path / "broken.ipynb")
    assert run.error == "ValueError: no answer yet" and not (tmp_path / "litter").exists()
    course = subprocess.run([sys.executable, "-m", "course_grading", "run", UNIT[:2]], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert course.returncode == 0, course.stdout + course.stderr
    lines = course.stdout.splitlines()
    assert [line.split()[-1] for line in lines[1:-1]] == ["ok", "ok"], course.stdout
    for noise in ("entry point", "without encryption", "--existing"):
        assert noise not in course.stdout + course.stderr, noise


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_grading_process_leaves_no_folder_however_it_ends(signum):
    """A zygote's /var/tmp/cg-warm-<pid>-* goes with its process (a `dask worker` stopped by SIGTERM too)."""
    code = ("import time\nfrom course_grading.pipeline import warm\n"
            "print(warm.zygote(None).root, flush=True)\ntime.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    root = Path(process.stdout.readline().strip())
    assert root.is_dir() and root.name.startswith(f"cg-warm-{process.pid}-")
    process.send_signal(signum)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while root.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not root.exists()


def test_folders_of_ended_grading_processes_are_removed():
    from course_grading.pipeline import warm

    ended = subprocess.Popen(["true"])
    ended.wait()
    stale, alive = (Path(warm.PLACE, f"cg-warm-{pid}-test") for pid in (ended.pid, os.getpid()))
    try:
        for folder in (stale / "box" / "ipc", alive):
            folder.mkdir(parents=True)
        (stale / "box" / "ipc").chmod(0)
        warm.remove_stale()
        assert not stale.exists() and alive.exists()
    finally:
        alive.rmdir()
