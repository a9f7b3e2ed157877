"""Students who attack the grader, graded by real nbgrader next to honest students (unit 01).

Every attack gains no point, changes no honest student's grade or files, leaks no hidden-check
code into feedback, and is named in the problems column of grades.csv. A notebook that goes over its memory
or disk budget loses its remaining cells, even correct ones. As root and as an ordinary user
(tests/sandbox_modes.py), with a memory budget of 2 GiB to keep the machine's memory free.
"""
import copy
import csv
import hashlib
import html
import os
import re
from pathlib import Path

import nbformat
import pytest

from course_grading import samples
from course_grading.pipeline import sandbox
from course_grading.banks import variants
from course_grading.course import ROOT
from tests.sandbox_modes import MODES, grade

UNIT = "01_perceptron"
pytestmark = pytest.mark.skipif(bool(sandbox.available()), reason=f"no sandbox here: {sandbox.available()}")

# name: (extra code cell after the setup cell, whether the answers are the full solution)
ATTACKS = {
    "gradebook_write": ("import glob, sqlite3\n"
                        "for path in ['../../../gradebook.db', '../../gradebook.db'] + glob.glob('/**/gradebook.db', recursive=True):\n"
                        "    try:\n"
                        "        db = sqlite3.connect(path)\n"
                        "        db.execute('UPDATE grade SET manual_score = 0, auto_score = 0'); db.commit(); print('WROTE', path)\n"
                        "    except Exception as error:\n"
                        "        print('no', path, error)", False),
    "read_classmates": ("import os\nfor p in ['..', '../..', '../../..', '/tmp', '/work', '/root', '/home']:\n"
                        "    try:\n        print(p, os.listdir(p))\n    except Exception as error:\n        print(p, error)", False),
    "grader_source": ("import importlib, inspect\ntry:\n    m = importlib.import_module('course_' + 'grading' + '.unit01')\n"
                      "    print(inspect.getsource(m))\nexcept Exception as error:\n    print('no grader', error)", False),
    "rebind_numpy": ("import builtins, numpy as np\nnp.array_equal = lambda *a, **k: True\nnp.allclose = lambda *a, **k: True\n"
                     "np.isclose = lambda *a, **k: True\nbuiltins.isinstance = lambda *a: True", False),
    "fake_judge": ("import course_utils.judge as judge, course_utils.checks as checks\n"
                   "judge.hidden_check = lambda name, *objects: print(name.split('.')[-1] + ': all hidden checks passed')\n"
                   "checks.expect_equal = checks.expect_close = lambda *a, **k: None", False),
    "swallow_errors": ("get_ipython().set_custom_exc((BaseException,), lambda *a, **k: print('all hidden checks passed'))", False),
    "escape_writes": ("for path in ['/work/main/source/HACKED', '../../../HACKED', '/tmp/HACKED', '../HACKED']:\n"
                      "    try:\n        open(path, 'w').write('x'); print('wrote', path)\n    except Exception as error:\n"
                      "        print(path, error)", False),
    "network": ("import os, socket\nfor addr in [('127.0.0.1', 5432), ('127.0.0.1', 22), ('8.8.8.8', 53)]:\n"
                "    try:\n        socket.create_connection(addr, timeout=2); print('CONNECTED', addr)\n"
                "    except Exception as error:\n        print(addr, error)\n"
                "s = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['COURSE_JUDGE'])\ns.sendall(b'\\x00' * 7 + b'\\x20' + b'{' * 32)\ns.close()",
                False),
    "memory": ("import numpy as np\nbig = np.ones(int(5e9))\nprint('ALLOCATED')", False),
    "processes": ("import subprocess\nprocs = []\ntry:\n    for i in range(3000):\n"
                  "        procs.append(subprocess.Popen(['sleep', '300']))\nexcept Exception as error:\n"
                  "    print(len(procs), 'processes, then', error)", False),
    "output_flood": ("for i in range(2000):\n    print('x' * 1_000_000)", False),
    "sleep_forever": ("import time\ntime.sleep(10 ** 6)", False),
    "os_exit": ("import os\nos._exit(0)", True),
    "kill_kernel": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", True),
    "ignore_interrupts": ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(10 ** 6)", True),
}
# fully solved notebooks that go over a budget in their first cell: no cell after it earns anything
BUDGET_ATTACKS = {
    "disk": "data = b'x' * (100 << 20)\nfor i in range(30):\n    open(f'/tmp/hog{i}', 'wb').write(data)",
    "memory": ("import os, time\nimport numpy as np\nfor i in range(16):\n    if os.fork() == 0:\n"
               "        hog = np.ones(1 << 25)\n        time.sleep(60)\n        os._exit(0)\ntime.sleep(60)"),
}
MEMORY_BUDGET = 2 << 30
LYING_ANSWER = '''import numpy as np

class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), bool).view(np.ndarray)
    __ne__ = lambda self, other: np.zeros(np.shape(self), bool)
    def __array__(self, dtype=None, copy=None):
        return np.ones(self.shape)


def perceptron_predict(X, w, b):
    return np.zeros(len(X)).view(Liar)
'''
BAD_NAMES = ["..sneaky", "a b", "-rf", "x" * 100, "\u00fcn\u00efcode"]


def _with_cell(nb, code):
    nb = copy.deepcopy(nb)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(code))
    return nb


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob("*"))}


@pytest.fixture(scope="module", params=MODES)
def attacked(request, tmp_path_factory):
    scratch = tmp_path_factory.mktemp(f"attacks_{request.param}")
    subs, out = scratch / "subs", scratch / "graded"
    solved, stub = samples.student_notebook(ROOT, UNIT), samples.student_notebook(ROOT, UNIT, solved=False)
    partial = samples.student_notebook(ROOT, UNIT, next(v for v in variants(UNIT) if v.breaks))
    work = {"honest_full": solved, "honest_partial": partial}
    for name, (code, full) in ATTACKS.items():
        work[f"attack_{name}"] = _with_cell(solved if full else stub, code)
    for name, code in BUDGET_ATTACKS.items():
        work[f"over_{name}_budget"] = _with_cell(solved, code)
    liar = copy.deepcopy(stub)
    next(c for c in liar.cells if samples.grade_id(c) == "perceptron_predict").source = LYING_ANSWER
    work["attack_lying_objects"] = liar
    work["attack_symlinks"] = stub
    for name in BAD_NAMES:
        work[name] = solved
    samples.write_class(subs, {student: {UNIT: nb} for student, nb in work.items()})
    os.symlink(out / "gradebook.db", subs / "attack_symlinks" / UNIT / "gradebook.db")
    (subs / "attack_unit_link").mkdir()
    os.symlink(subs / "honest_full" / UNIT, subs / "attack_unit_link" / UNIT)
    os.symlink(subs / "honest_full", subs / "attack_student_link")
    honest_before = {s: _digest(subs / s / UNIT) for s in ("honest_full", "honest_partial")}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COURSE_MEMORY_BUDGET", str(MEMORY_BUDGET))
        report = grade(request.param, subs, out, jobs=2, only=(UNIT,), cell_timeout=20)
    with open(report.grades_csv, newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    return report, rows, honest_before, subs, out


def _points(row):
    return float(row["total"])


def test_honest_students_keep_their_grades_and_files(attacked):
    report, rows, before, subs, out = attacked
    release = samples.read(ROOT / "release" / UNIT / f"{UNIT}.ipynb")
    points = {samples.grade_id(c): c.metadata.nbgrader["points"] for c in release.cells if samples.is_test(c)}
    broken = next(v for v in variants(UNIT) if v.breaks).breaks
    assert _points(rows["honest_full"]) == sum(points.values())
    assert _points(rows["honest_partial"]) == sum(points.values()) - sum(points[c] for c in broken)
    for student, digests in before.items():
        assert _digest(subs / student / UNIT) == digests
    assert not list(ROOT.rglob("HACKED")) and not list(out.rglob("HACKED"))


@pytest.mark.parametrize("attack", [a for a, (_, full) in ATTACKS.items() if not full] + ["lying_objects", "symlinks"])
def test_attacks_gain_nothing_and_are_named(attacked, attack):
    _, rows, _, _, _ = attacked
    row = rows[f"attack_{attack}"]
    assert _points(row) == 0, row
    assert row["problems"], f"attack_{attack} is not named in the problems column"


@pytest.mark.parametrize("attack", [a for a, (_, full) in ATTACKS.items() if full])
def test_a_killed_kernel_costs_only_its_cell(attacked, attack):
    """The attack cell kills or hangs the kernel; the correct answers after it still earn full marks."""
    report, rows, _, _, _ = attacked
    row = rows[f"attack_{attack}"]
    assert _points(row) == float(row["max_total"]), row
    assert "stopped the kernel" in row["problems"], row["problems"]


def test_escape_attempts_are_named(attacked):
    _, rows, _, _, _ = attacked
    assert "symbolic link" in rows["attack_symlinks"]["problems"]
    assert "symbolic link" in rows["attack_unit_link"]["problems"]
    assert "symbolic link" in rows["attack_student_link"]["problems"]
    for name in BAD_NAMES:
        row = rows[ascii(name)[1:-1][:80]]
        assert row["total"] == "0" and "not a valid student id" in row["problems"]
    assert "printed more than" in rows["attack_output_flood"]["problems"]
    assert "out of memory" in rows["attack_memory"]["problems"]
    assert "time limit" in rows["attack_sleep_forever"]["problems"]
    assert "not allowed" in rows["attack_network"]["problems"] or "judge" in rows["attack_network"]["problems"]


@pytest.mark.parametrize("budget", BUDGET_ATTACKS)
def test_a_notebook_over_budget_loses_its_remaining_cells(attacked, budget):
    _, rows, _, _, out = attacked
    row = rows[f"over_{budget}_budget"]
    assert _points(row) == 0, row
    assert f"went over the notebook's {budget} budget" in row["problems"], row["problems"]
    assert "This test cell did not run" in _outputs(out, f"over_{budget}_budget")


def _outputs(out, student):
    nb = samples.read(Path(out) / "autograded" / student / UNIT / f"{UNIT}.ipynb")
    return "\n".join(str(o.get("text", "")) + str(o.get("evalue", "")) for c in nb.cells for o in c.get("outputs", []))


def test_the_sandbox_held(attacked):
    _, rows, _, _, out = attacked
    assert "WROTE" not in _outputs(out, "attack_gradebook_write")
    seen = _outputs(out, "attack_read_classmates")
    assert "honest_full" not in seen and "gradebook" not in seen and "source" not in seen
    assert "def check_perceptron" not in _outputs(out, "attack_grader_source")
    assert "CONNECTED" not in _outputs(out, "attack_network")
    assert "ALLOCATED" not in _outputs(out, "attack_memory")
    assert "processes, then" in _outputs(out, "attack_processes")


def test_feedback_shows_no_hidden_check_code(attacked):
    report, _, _, _, out = attacked
    module = ROOT / "course_grading" / "checks" / "unit01.py"
    notebook_text = "\n".join(c.source for c in samples.read(samples.source_notebook(ROOT, UNIT)).cells)
    secret = {line.strip() for line in module.read_text().splitlines()
              if len(line.strip()) >= 30 and line.strip() not in notebook_text}
    for feedback in Path(out, "feedback").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", feedback.read_text()))
        assert not secret & {line.strip() for line in text.splitlines()}, feedback
