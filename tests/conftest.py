"""Shared fixtures: a class made of every bank entry of every unit, graded once by real nbgrader."""
import re
from pathlib import Path

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def bank_students():
    """{student id: (unit, variant or 'solution' / 'release')} for every unit and bank entry."""
    students = {}
    for unit in units():
        students[f"u{unit[:2]}_solution"] = (unit, "solution")
        students[f"u{unit[:2]}_release"] = (unit, "release")
        for variant in variants(unit):
            students[f"u{unit[:2]}_{variant.slug}"[:60]] = (unit, variant)
    return students


@pytest.fixture(scope="session")
def graded_bank(tmp_path_factory):
    """The grade report of the bank class, plus a reader of the autograded cells' outputs."""
    from course_grading.grading import grade_class

    scratch = tmp_path_factory.mktemp("bank")
    students = bank_students()
    samples.write_class(scratch / "submissions", {
        student: {unit: samples.student_notebook(ROOT, unit, solved=kind != "release")
                  if isinstance(kind, str) else samples.student_notebook(ROOT, unit, kind)}
        for student, (unit, kind) in students.items()})
    report = grade_class(scratch / "submissions", scratch / "graded", jobs=2, progress=False)
    return report


def cell_outputs(report, student, unit):
    """{grade_id: all text the cell printed or raised} of an autograded notebook."""
    nb = samples.read(Path(report.out) / "autograded" / student / unit / f"{unit}.ipynb")
    texts = {}
    for cell in nb.cells:
        if samples.is_test(cell):
            parts = []
            for out in cell.get("outputs", []):
                parts.append(out.get("text", ""))
                parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
                parts.append(str(out.get("data", {}).get("text/plain", "")))
            texts[samples.grade_id(cell)] = ANSI.sub("", "\n".join(parts))
    return texts


def cell_scores(report, student, unit):
    from nbgrader.api import Gradebook

    from course_grading.grading import cell_scores as scores

    with Gradebook(f"sqlite:///{Path(report.out) / 'gradebook.db'}") as gradebook:
        return scores(gradebook, student, unit)
