"""`course demo`: the instructor's whole pipeline on a sample class generated from source/."""
import copy
import shutil
from pathlib import Path

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units as course_units


def _find(unit, *words, wrong=True):
    """The first bank variant of `unit` whose name has one of `words` (a wrong one unless wrong=False)."""
    for variant in variants(unit):
        if bool(variant.breaks) == wrong and any(w in variant.name.lower() for w in words):
            return variant
    return None


def _wrong(unit, index):
    """The index-th classic wrong answer of the unit's bank (skipping the broken-code entries)."""
    bugs = [v for v in variants(unit) if v.breaks and not any(
        w in v.name.lower() for w in ("exception", "raises", "loop", "nan", "shape"))]
    return bugs[index % len(bugs)] if bugs else None


def _edited_tests(nb):
    """A student who 'fixed' the tests: every visible test replaced by `pass`, answers left as stubs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if samples.is_test(cell):
            cell.source = "pass  # the tests were in my way"
    return nb


def _deleted_test(nb):
    nb = copy.deepcopy(nb)
    first_test = next(i for i, c in enumerate(nb.cells) if samples.is_test(c))
    del nb.cells[first_test]
    del nb.metadata["kernelspec"]
    return nb


def sample_class(root=ROOT, only=()):
    """{student: {unit: notebook | raw text | None}}: one student per situation an instructor meets."""
    units = course_units(root, only)
    solved = {u: samples.student_notebook(root, u) for u in units}

    def one_change(unit, notebook):
        return {u: (notebook if u == unit else solved[u]) for u in units}

    def with_variant(unit, variant):
        return samples.student_notebook(root, unit, variant) if variant else solved[unit]

    first, second = units[0], units[min(1, len(units) - 1)]
    return {
        "ada_full_solution": dict(solved),
        "ben_unchanged_release": {u: samples.student_notebook(root, u, solved=False) for u in units},
        "cara_classic_bugs": {u: with_variant(u, _wrong(u, 0)) for u in units},
        "dan_more_bugs": {u: with_variant(u, _wrong(u, 1)) for u in units},
        "eve_exception": one_change(first, with_variant(first, _find(first, "exception", "raises"))),
        "finn_infinite_loop": one_change(second, with_variant(second, _find(second, "loop"))),
        "gus_edited_tests": one_change(first, _edited_tests(samples.student_notebook(root, first, solved=False))),
        "hana_malformed": one_change(first, '{"cells": [{"cell_type": "code", "source": "def perceptron'),
        "ivy_deleted_test": one_change(second, _deleted_test(solved[second])),
        "jon_missing_notebook": one_change(units[-1], None),
    }


def run_demo(out, root=ROOT, jobs=2, progress=True, only=()):
    """build, write the sample class (of the units `only`, default all), grade it, verify;
    returns (report, verify problems)."""
    from course_grading.build import generate_release
    from course_grading.grading import grade_class, table
    from course_grading.verify import clean_notebook_problems, grading_problems, leak_problems
    from course_grading.publish import publish
    from course_grading.sandbox import available

    out = Path(out).resolve()
    print(f"1/4 regenerating release/ from source/ ({len(course_units(root))} units)")
    generate_release(Path(root) / "release", root)
    print("2/4 writing the sample class")
    submissions = out / "submissions"
    shutil.rmtree(submissions, ignore_errors=True)
    students = sample_class(root, only)
    samples.write_class(submissions, students)
    print(f"3/4 autograding {len(students)} students with {jobs} worker(s) into {out / 'grading'}")
    why_not = available()
    if why_not:  # the sample class is written by this project, not by strangers
        print(f"notice: grading the sample class unsandboxed, since {why_not}")
    report = grade_class(submissions, out / "grading", jobs=jobs, root=root, only=only, progress=progress,
                         unsandboxed=bool(why_not))
    print("4/4 verifying the course (solutions full marks, stubs zero, clean notebooks, no leaks)")
    problems = grading_problems(report, "ada_full_solution", "ben_unchanged_release")
    problems += clean_notebook_problems(root)
    publish(out / "student-edition", root, force=True)  # demo/ is ours to rewrite
    problems += leak_problems(out / "student-edition", root)
    print()
    print(table(report))
    print(f"student edition: {out / 'student-edition'}")
    return report, problems
