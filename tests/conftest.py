"""Shared fixtures: a class made of every bank entry of every unit, graded once by real nbgrader.

To keep the class small, bank entries that rewrite different answer cells and break disjoint sets
of test cells share a notebook (each exercise is graded independently); correct alternatives share
notebooks only with other alternatives, so a pack of them must score full marks.
"""
import re
from pathlib import Path

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _layer(cell):
    """A forward/backward pair shares a cache: 'batchnorm' for 'batchnorm_forward' and 'batchnorm_backward'."""
    return cell.rsplit("_", 1)[0] if cell.endswith(("_forward", "_backward")) else cell


def pack(bank):
    """Greedy packs of variants: distinct cells (a layer's forward and backward apart), disjoint `breaks`,
    bugs apart from alternatives."""
    packs = []
    for variant in bank:
        for group in packs:
            if (all(_layer(v.cell) != _layer(variant.cell) and not set(v.breaks) & set(variant.breaks)
                    for v in group)
                    and all(bool(v.breaks) == bool(variant.breaks) for v in group)):
                group.append(variant)
                break
        else:
            packs.append([variant])
    return [tuple(group) for group in packs]


def bank_students():
    """{student id: (unit, 'solution' / 'release' / a tuple of bank variants)} for every unit."""
    students = {}
    for unit in units():
        students[f"u{unit[:2]}_solution"] = (unit, "solution")
        students[f"u{unit[:2]}_release"] = (unit, "release")
        for number, group in enumerate(pack(variants(unit))):
            students[f"u{unit[:2]}_pack{number:02d}"] = (unit, group)
    return students


@pytest.fixture(scope="session")
def graded_bank(tmp_path_factory):
    """The grade report of the bank class, plus a reader of the autograded cells' outputs."""
    from course_grading.pipeline.grading import grade_class

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

    from course_grading.pipeline.grading import cell_scores as scores

    with Gradebook(f"sqlite:///{Path(report.out) / 'gradebook.db'}") as gradebook:
        return scores(gradebook, student, unit)
