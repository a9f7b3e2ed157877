"""Turn whatever a student handed in into a notebook nbgrader can grade, and say what was wrong.

Problems a student can cause are repaired where grading stays fair, and always reported:
unreadable JSON (not gradable), a missing notebook, no kernelspec, test cells deleted or stripped
of their metadata (restored from the release), test cells edited (nbgrader grades the original),
grade ids duplicated by copy-paste, and code that reaches for the grader's own package. Also what
a submission folder says of its student: a valid id, and who the LMS says they are (lms.json).
"""
import copy
import json
import re
from pathlib import Path

import nbformat

from course_grading import samples

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

# What honest answers never need and attacks on the grader do: flagged for review, never a penalty.
SUSPICIOUS = {
    "the gradebook or a database": r"gradebook|sqlite3|psycopg|sqlalchemy",
    "other folders": r"\.\./|os\.listdir|os\.walk|glob\.glob|os\.scandir|shutil\.",
    "the grader's code": r"course_grading|course_utils\.judge|hidden_check|inspect\.getsource|importlib|__import__",
    "ending the kernel": r"os\._exit|sys\.exit|os\.kill|signal\.|os\.abort",
    "processes or the network": r"subprocess|os\.fork|os\.system|multiprocessing|socket|urllib|requests\.",
    "rebinding library functions": r"^\s*(np|numpy|torch|math|builtins|sys|os)\.[\w.]+\s*=(?!=)|setattr\(\s*(np|numpy|torch|math|builtins)\b|sys\.modules",
    "the interpreter's machinery": r"(?<![.\w])(exec|eval|compile)\(|ctypes|set_custom_exc|get_ipython\(\)\.(events|set_|run_cell)|sys\.settrace|gc\.get_objects",
    "objects that fake comparisons or conversions": r"def __(eq|ne|array|array_ufunc|float|bool|getattr|instancecheck)__|\(\s*(np\.)?ndarray\s*\)",
}


def _same_code(a, b):
    return a.strip() == b.strip()


def repair(submitted, release):
    """(notebook to grade, [problems]) from a submitted notebook and the release notebook."""
    nb = copy.deepcopy(submitted)
    problems = []
    if not nb.metadata.get("kernelspec"):
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        problems.append("no kernelspec (graded with Python 3)")

    seen = set()
    for cell in nb.cells:
        gid = samples.grade_id(cell)
        if gid and gid in seen:
            cell.metadata.pop("nbgrader", None)
            problems.append(f"cell {gid} appears twice (the copy was ignored)")
        seen.add(gid)

    released = {samples.grade_id(c): c for c in release.cells if samples.grade_id(c)}
    present = {samples.grade_id(c): c for c in nb.cells if samples.grade_id(c)}
    previous = None  # the release cell before the one we look at, to place restored tests after it
    for cell in release.cells:
        gid = samples.grade_id(cell)
        if samples.is_test(cell):
            if gid not in present:
                _restore_test(nb, cell, previous)
                problems.append(f"test cell {gid} was deleted or unmarked (restored from the release)")
            elif not _same_code(present[gid].source, cell.source):
                problems.append(f"test cell {gid} was edited (graded with the original)")
        previous = cell
    for gid, cell in released.items():
        if samples.is_solution(cell) and gid not in present:
            problems.append(f"answer cell {gid} lost its nbgrader metadata (its code still runs)")

    original = {c.source.strip() for c in release.cells if c.cell_type == "code"}
    for what, pattern in SUSPICIOUS.items():
        cells = [samples.grade_id(c) or f"cell {i + 1}" for i, c in enumerate(nb.cells)
                 if c.cell_type == "code" and not samples.is_test(c) and c.source.strip() not in original
                 and re.search(pattern, c.source, re.M)]
        if cells:
            problems.append(f"flagged for manual review: code in {', '.join(cells)} reaches for {what}")
    return nb, problems


def _restore_test(nb, test_cell, previous):
    """Put the release's test cell back: onto an identical unmarked cell, else after `previous`."""
    for cell in nb.cells:
        if cell.cell_type == "code" and not samples.grade_id(cell) and _same_code(cell.source, test_cell.source):
            cell.metadata["nbgrader"] = copy.deepcopy(test_cell.metadata["nbgrader"])
            return
    position = len(nb.cells)
    if previous is not None:
        for i, cell in enumerate(nb.cells):
            pid = samples.grade_id(previous)
            if (pid and samples.grade_id(cell) == pid) or (not pid and _same_code(cell.source, previous.source)):
                position = i + 1
                break
    restored = copy.deepcopy(test_cell)
    restored["id"] = f"restored-{samples.grade_id(test_cell)}"[:64]
    nb.cells.insert(position, restored)


def read_submission(path):
    """(notebook, None) or (None, reason it cannot be read as a notebook)."""
    if not path.exists():
        return None, f"missing notebook {path.name}"
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, f"malformed notebook {path.name}: not valid JSON ({error})"
    except Exception as error:  # nbformat's own complaints: not a notebook at all
        return None, f"malformed notebook {path.name}: {type(error).__name__}: {error}"
    if not isinstance(nb.get("cells"), list):
        return None, f"malformed notebook {path.name}: no cells"
    return nb, None


def identities(submissions):
    """{student: {first_name, last_name, email, lms_user_id}} from the lms.json files collect wrote."""
    found = {}
    for path in sorted(Path(submissions).glob("*/*/lms.json")):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("student_id") == path.parent.parent.name:
            found[path.parent.parent.name] = {k: str(info.get(k) or "") or None
                                              for k in ("first_name", "last_name", "email", "lms_user_id")}
    return found
