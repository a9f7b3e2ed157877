"""The grading proof, with real `nbgrader autograde` on real notebooks (one class, graded once).

For every unit: the solution scores full marks; the release stub scores zero on every graded cell;
every classic wrong answer of the bank loses points in the cells it breaks, and only there, with a
message naming the problem; every correct alternative scores full marks; feedback shows calls and
messages, never the reference code of the hidden checks.
"""
import html
import re
from pathlib import Path

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units
from tests.conftest import bank_students, cell_outputs, cell_scores

STUDENTS = bank_students()
CASES = [pytest.param(student, variant, id=f"{unit[:2]}-{variant.slug}"[:90])
         for student, (unit, kind) in STUDENTS.items() if not isinstance(kind, str) for variant in kind]


@pytest.mark.parametrize("unit", units())
def test_solution_scores_full_marks(graded_bank, unit):
    scores = cell_scores(graded_bank, f"u{unit[:2]}_solution", unit)
    assert scores and all(s == m > 0 for s, m in scores.values()), scores


@pytest.mark.parametrize("unit", units())
def test_release_stub_fails_every_graded_cell(graded_bank, unit):
    student = f"u{unit[:2]}_release"
    scores = cell_scores(graded_bank, student, unit)
    assert set(scores) == set(samples.test_cells(samples.read(samples.source_notebook(ROOT, unit))))
    assert all(s == 0 for s, _ in scores.values()), scores
    outputs = cell_outputs(graded_bank, student, unit)
    assert all("not implemented yet" in text or "NotImplementedError" in text for text in outputs.values())


@pytest.mark.parametrize("student, variant", CASES)
def test_bank_entry_scores_as_expected(graded_bank, student, variant):
    """The variant's cells lose points; the notebook it shares loses points nowhere else."""
    unit, pack = STUDENTS[student]
    scores = cell_scores(graded_bank, student, unit)
    lost = {cell for cell, (s, m) in scores.items() if s < m}
    expected = {cell for other in pack for cell in other.breaks}
    assert set(variant.breaks) <= lost and lost <= expected, (
        f"{variant.name!r} should lose points in {sorted(variant.breaks) or 'no cell'}; its notebook "
        f"(shared with {[v.name for v in pack if v != variant]}) lost {sorted(lost)}")
    outputs = cell_outputs(graded_bank, student, unit)
    for cell in variant.breaks:
        assert variant.says in outputs[cell], f"{cell} output lacks {variant.says!r}:\n{outputs[cell]}"


@pytest.mark.parametrize("unit", units())
def test_banks_are_big_enough(unit):
    bank = [v for u, kind in STUDENTS.values() if u == unit and not isinstance(kind, str) for v in kind]
    wrong = [v for v in bank if v.breaks]
    alternatives = [v for v in bank if not v.breaks]
    assert len(wrong) >= (15 if unit.startswith("03") else 8) + 4, "classic bugs plus four kinds of broken code"
    assert len(alternatives) >= 2
    names = " ".join(v.name.lower() for v in wrong)
    for kind in ("exception", "loop", "nan", "shape"):
        assert kind in names, f"the bank of {unit} has no {kind} entry"


def _visible_text(path):
    text = html.unescape(re.sub(r"<[^>]+>", "", Path(path).read_text()))
    return {line.strip() for line in text.splitlines()}


@pytest.mark.parametrize("unit", units())
def test_feedback_shows_no_reference_code(graded_bank, unit):
    module = ROOT / "course_grading" / "checks" / f"unit{unit[:2]}.py"
    notebook_text = "\n".join(c.source for c in samples.read(samples.source_notebook(ROOT, unit)).cells)
    notebook_text += "\n".join(v.source + "".join(new for _, new in v.replace) for v in variants(unit))
    secret = {line.strip() for line in module.read_text().splitlines()
              if len(line.strip()) >= 30 and line.strip() not in notebook_text}
    failing = [s for s, (u, kind) in STUDENTS.items()
               if u == unit and (kind == "release" or (not isinstance(kind, str) and kind[0].breaks))]
    for student in failing:
        feedback = Path(graded_bank.out) / "feedback" / student / unit / f"{unit}.html"
        shown = _visible_text(feedback)
        assert not secret & shown, f"{student}'s feedback shows hidden-check code: {sorted(secret & shown)[:3]}"


def test_feedback_is_what_nbgraders_own_exporter_writes(graded_bank):
    """The workers render feedback with kept templates, highlighted code and Markdown (shared across the
    students they grade); nbgrader's generate_feedback with nbconvert's plain HTMLExporter writes the same
    bytes, for a solved, a stubbed and a bug-ridden notebook of every unit."""
    from nbconvert.exporters import HTMLExporter

    from course_grading.course import nbgrader_api

    out = Path(graded_bank.out)
    api = nbgrader_api(out, db_url=graded_bank.db_url, feedback_directory="plain-feedback")
    api.config.GenerateFeedback.exporter_class = HTMLExporter
    for unit in units():
        for student in (f"u{unit[:2]}_solution", f"u{unit[:2]}_release", f"u{unit[:2]}_pack00"):
            assert api.generate_feedback(unit, student, force=True)["success"]
            plain = out / "plain-feedback" / student / unit / f"{unit}.html"
            assert plain.read_bytes() == (out / "feedback" / student / unit / f"{unit}.html").read_bytes(), \
                f"{student}'s feedback differs from nbgrader's own"
