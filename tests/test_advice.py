"""Feedback after a failed visible check, graded by real nbgrader (unit 08): the hidden checks still name
the cause (their advice, no points), honest failures are never called tampering, paths are the course's."""
import html
import re
from pathlib import Path

import nbformat
import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT
from course_grading.pipeline import sandbox
from course_grading.pipeline.grading import grade_class
from tests.conftest import cell_outputs, cell_scores

UNIT = "08_optimizers"
pytestmark = pytest.mark.skipif(bool(sandbox.available()), reason=f"no sandbox here: {sandbox.available()}")

# the common mistakes of unit 08 (bank entry) and the cause their feedback must name
CAUSES = {
    "momentum with lr applied twice (buffer accumulates lr * dw)": ("test_sgd_momentum",
                                                                    "lr is applied twice"),
    "AdaGrad sums dw instead of dw**2": ("test_adagrad", "sum must accumulate dw**2, not dw"),
    "eps inside the square root (RMSProp)": ("test_rmsprop", "eps belongs outside the square root"),
    "Adam without bias correction": ("test_adam", "without the bias correction"),
    "clipping per tensor": ("test_clip_grad_norm", "ONE factor"),
    "velocity scaled by lr stored as the buffer (CS231n v)": ("test_sgd_momentum",
                                                              "velocity v = -lr * momentum_buffer"),
    "Adam step starting at 0 (incremented after use)": ("test_adam", "1 on the first call"),
}
STUDENTS = {"first": list(CAUSES)[:5], "second": list(CAUSES)[5:]}
REPLACED_JUDGE = "import course_utils.judge as judge\njudge.hidden_check = lambda name, *objects: None"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("advice")
    bank = {v.name: v for v in variants(UNIT)}
    work = {student: samples.student_notebook(ROOT, UNIT, tuple(bank[name] for name in names))
            for student, names in STUDENTS.items()}
    tamperer = samples.student_notebook(ROOT, UNIT)
    tamperer.cells.insert(3, nbformat.v4.new_code_cell(REPLACED_JUDGE))
    work["tamperer"] = tamperer
    samples.write_class(scratch / "subs", {student: {UNIT: nb} for student, nb in work.items()})
    return grade_class(scratch / "subs", scratch / "graded", jobs=1, progress=False, only=(UNIT,))


@pytest.mark.parametrize("student", STUDENTS)
def test_each_common_mistake_gets_its_cause(graded, student):
    outputs, scores = cell_outputs(graded, student, UNIT), cell_scores(graded, student, UNIT)
    for name in STUDENTS[student]:
        cell, cause = CAUSES[name]
        assert scores[cell][0] == 0, (name, scores[cell])
        assert "a check above failed" in outputs[cell], outputs[cell]
        assert cause in outputs[cell], f"{name}: {cause!r} not in\n{outputs[cell]}"
        assert "never reached the grader" not in outputs[cell]


def test_only_real_tampering_is_called_so(graded):
    outputs = cell_outputs(graded, "tamperer", UNIT)
    assert all("never reached the grader" in text for text in outputs.values()), outputs
    assert sum(score for score, _ in cell_scores(graded, "tamperer", UNIT).values()) == 0


def test_feedback_paths_are_the_courses(graded):
    for feedback in Path(graded.out, "feedback").rglob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", feedback.read_text()))
        assert str(ROOT) not in text, feedback
        assert "course_utils/checks.py" in text or "tamperer" in str(feedback)
