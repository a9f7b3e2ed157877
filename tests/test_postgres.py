"""`course grade --db postgresql://...` on a real PostgreSQL server that the test starts itself:
parallel grading writes the same grades as SQLite, and a resumed run double-counts nothing."""
import json

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units
from course_grading.pipeline.grading import cell_scores, grade_class
from tests.pgserver import postgres_server, unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
pytest.importorskip("psycopg2", reason="psycopg2 (the instructor extra's PostgreSQL driver) is not installed")

UNITS = units(only=("01", "02"))


def small_class():
    """A full solution, an untouched release and one wrong answer from each unit's bank."""
    broken = {unit: next(v for v in variants(unit) if v.breaks) for unit in UNITS}
    return {
        "full": {u: samples.student_notebook(ROOT, u) for u in UNITS},
        "stub": {u: samples.student_notebook(ROOT, u, solved=False) for u in UNITS},
        "bug": {u: samples.student_notebook(ROOT, u, broken[u]) for u in UNITS},
    }


def gradebook_contents(db_url, students):
    """{(student, unit, cell): (score, max)} and the row counts of submissions and grades."""
    from nbgrader.api import Grade, Gradebook, SubmittedAssignment

    with Gradebook(db_url) as gradebook:
        cells = {(s, u, c): score for s in students for u in UNITS
                 for c, score in cell_scores(gradebook, s, u).items()}
        pairs = sorted((a.student.id, a.assignment.name) for a in gradebook.db.query(SubmittedAssignment))
        return cells, pairs, gradebook.db.query(Grade).count()


def test_postgres_gradebook_matches_sqlite_and_a_resumed_run_counts_once(tmp_path):
    students = small_class()
    samples.write_class(tmp_path / "subs", students)
    lite = grade_class(tmp_path / "subs", tmp_path / "lite", jobs=2, progress=False, only=UNITS)
    lite_cells, lite_pairs, lite_grades = gradebook_contents(f"sqlite:///{tmp_path / 'lite' / 'gradebook.db'}",
                                                             students)
    full = {u: lite.scores["full", u][1] for u in UNITS}
    assert all(lite.scores["full", u] == (full[u], full[u]) and lite.scores["stub", u][0] == 0 for u in UNITS)
    assert all(0 < lite.scores["bug", u][0] < full[u] for u in UNITS)

    with postgres_server() as database:
        url = database("gradebook")
        first = grade_class(tmp_path / "subs", tmp_path / "pg", jobs=2, db_url=url, progress=False,
                            only=UNITS[:1])
        assert sorted(first.graded) == [(s, UNITS[0]) for s in sorted(students)]
        assert not (tmp_path / "pg" / "gradebook.db").exists(), "grades must go to the server, not to SQLite"

        # interrupted after grading "bug" in the gradebook but before the ledger recorded it
        ledger_path = tmp_path / "pg" / "ledger.json"
        ledger = json.loads(ledger_path.read_text())
        del ledger[f"bug/{UNITS[0]}"]
        ledger_path.write_text(json.dumps(ledger))

        resumed = grade_class(tmp_path / "subs", tmp_path / "pg", jobs=2, db_url=url, progress=False,
                              only=UNITS)
        assert sorted(resumed.graded) == sorted([("bug", UNITS[0])] + [(s, UNITS[1]) for s in students])
        assert resumed.scores == lite.scores and resumed.problems == lite.problems

        cells, pairs, grades = gradebook_contents(url, students)
        assert cells == lite_cells
        assert pairs == lite_pairs == sorted((s, u) for s in students for u in UNITS)  # one submission each
        assert grades == lite_grades
        for name in ("grades.csv", "cell_grades.csv"):  # per-student totals and per-cell rows
            assert (tmp_path / "pg" / name).read_text() == (tmp_path / "lite" / name).read_text(), name

        again = grade_class(tmp_path / "subs", tmp_path / "pg", jobs=2, db_url=url, progress=False, only=UNITS)
        assert again.graded == [] and again.scores == lite.scores
