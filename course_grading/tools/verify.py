"""`course verify`: everything CI and an instructor must be able to trust, as a list of failures."""
import re
import tempfile
from pathlib import Path

from course_grading import samples
from course_grading.tools.build import release_differences
from course_grading.course import ROOT, units as course_units
from course_grading.tools.publish import ADDRESS_SLOT, SETUP_MARKERS

LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def clean_notebook_problems(root=ROOT):
    """Committed notebooks: no outputs, no execution counts, the setup cell first."""
    root = Path(root)
    problems = []
    for path in sorted([*root.glob("notebooks/*.ipynb"), *root.glob("source/*/*.ipynb"),
                        *root.glob("release/*/*.ipynb")]):
        name = path.relative_to(root)
        nb = samples.read(path)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if any(c.outputs or c.execution_count for c in code):
            problems.append(f"{name}: has outputs or execution counts (clear them before committing)")
        if not code or not all(m in code[0].source for m in SETUP_MARKERS):
            problems.append(f"{name}: the first code cell is not the course setup cell (docs/AUTHORING.md)")
    return problems


def solution_lines(root=ROOT):
    """{unit: distinctive lines of its reference solutions} (long enough not to occur by chance), less
    the lines the course shows students anyway (visible code of any assignment, the lectures)."""
    notebooks = {unit: samples.read(samples.source_notebook(root, unit)) for unit in course_units(root)}
    lectures = [samples.read(path) for path in sorted((Path(root) / "notebooks").glob("*.ipynb"))]
    shown = {line.strip() for nb in [*notebooks.values(), *lectures] for cell in nb.cells
             for line in samples.without_hidden(samples.stub(cell.source) if samples.is_solution(cell)
                                                else cell.source).splitlines()}
    found = {}
    for unit, nb in notebooks.items():
        blocks = [block for cell in nb.cells if samples.is_solution(cell)
                  for block in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", cell.source, re.S)]
        found[unit] = {line.strip() for block in blocks for line in block.splitlines()
                       if len(line.strip()) >= 25} - shown
    return found


def hidden_names(root=ROOT):
    """Names of the hidden checks (check_* functions of course_grading.checks.unitNN)."""
    names = set()
    for path in (Path(root) / "course_grading" / "checks").glob("unit*.py"):
        names |= set(re.findall(r"^def (check_\w+)", path.read_text(), re.M))
    return names


def leak_problems(edition, root=ROOT):
    """Files of a student edition that reveal a solution, a hidden test or hidden-check code, or that
    still carry the committed setup cell's address slot instead of the edition's address."""
    edition = Path(edition)
    problems = []
    if (edition / "course_grading").exists():
        problems.append("course_grading/ (hidden checks) is in the student edition")
    solutions, hidden = solution_lines(root), hidden_names(root)
    for path in sorted(p for p in edition.rglob("*") if p.is_file() and p.suffix in (".ipynb", ".py", ".md", ".txt")):
        text = path.read_text(errors="replace")
        name = path.relative_to(edition)
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in samples.read(path).cells)
        found = [m for m in LEAK_MARKERS if m in text]
        if ADDRESS_SLOT in text:
            found.append(f"{ADDRESS_SLOT}, not the edition's address "
                         "(a setup cell publish did not recognise)")
        found += [f"hidden check {h}" for h in hidden if re.search(rf"\b{h}\b", text)]
        found += [f"import of {m}" for m in re.findall(r"(course_grading\.(?:checks|banks))\b", text)]
        if path.suffix == ".ipynb" and path.parts[len(edition.parts)] == "release":
            # a unit may show what earlier units asked for, never its own or a later unit's solutions
            unit = path.parts[len(edition.parts) + 1]
            secret = set().union(*(lines for u, lines in solutions.items() if u >= unit))
            code = {line.strip() for line in text.splitlines()}
            found += [f"solution line `{line}`" for line in sorted(secret & code)]
        problems += [f"student edition {name}: {what}" for what in found]
    return problems


def unjudged_problems(root=ROOT):
    """Test cells whose verdict would come from the student's kernel alone: each must name hidden
    checks of the judge (`hidden_check("unitNN.check_x", ...)`) that exist."""
    from course_grading.pipeline.judge import hidden_checks_in
    from course_grading.pipeline.remote import resolve_check

    problems = []
    for unit in course_units(root):
        for cell in samples.read(samples.source_notebook(root, unit)).cells:
            if not samples.is_test(cell):
                continue
            names = hidden_checks_in(cell.source)
            if not names:
                problems.append(f"{unit}: test cell {samples.grade_id(cell)} calls no hidden check of the judge")
            for name in names:
                try:
                    resolve_check(name)
                except Exception as error:  # noqa: BLE001 - a misspelt or missing check
                    problems.append(f"{unit}: test cell {samples.grade_id(cell)} names {name!r} ({error})")
    return problems


def grading_problems(report, solution="solution", release="release"):
    """Full marks for the `solution` student, zero on every graded cell for the `release` student."""
    problems = []
    for unit in report.units:
        score, maximum = report.scores[solution, unit]
        if score != maximum or maximum == 0:
            problems.append(f"{unit}: the solution scores {score:g}/{maximum:g} "
                            f"({'; '.join(report.problems.get((solution, unit), [])) or 'see the feedback'})")
        score, _ = report.scores[release, unit]
        if score != 0:
            problems.append(f"{unit}: the release stub scores {score:g} (every graded cell must fail)")
    return problems


def verify(root=ROOT, jobs=2, progress=True, only=()):
    """All failures as text lines (empty when the course is sound); `only` grades just those units'
    solutions and stubs (the other checks always cover the whole course)."""
    from course_grading.pipeline.grading import grade_class
    from course_grading.tools.publish import publish

    problems = [f"release/ is out of sync with source/: {name} (run `course build`)"
                for name in release_differences(root)]
    problems += clean_notebook_problems(root)
    problems += unjudged_problems(root)
    with tempfile.TemporaryDirectory() as scratch:
        publish(Path(scratch) / "edition", root)
        problems += leak_problems(Path(scratch) / "edition", root)
        units = course_units(root, only)
        samples.write_class(Path(scratch) / "class", {
            "solution": {u: samples.student_notebook(root, u) for u in units},
            "release": {u: samples.student_notebook(root, u, solved=False) for u in units}})
        report = grade_class(Path(scratch) / "class", Path(scratch) / "graded", jobs=jobs, root=root,
                             only=only, progress=progress)
        problems += grading_problems(report)
    return problems
