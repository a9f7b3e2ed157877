"""Student notebooks made from source/: solved, stubbed, or rewritten by a bank variant."""
import copy
import re
from pathlib import Path

import nbformat

SOLUTION = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.M)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.M | re.S)
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_solution(cell):
    return cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def is_test(cell):
    info = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and info.get("grade", False) and not info.get("solution", False)


def strip_markers(source):
    """A solution cell as a student who solved it would have it: the markers gone, the code kept."""
    return SOLUTION.sub("", source)


def stub(source):
    """The release version of a solution cell (what nbgrader's ClearSolutions writes)."""
    def replace(match):
        indent = re.match(r"[ \t]*", match.group(0)).group(0)
        return "\n".join(indent + line for line in STUB.splitlines()) + "\n"
    return re.sub(r"^[ \t]*### BEGIN SOLUTION.*?### END SOLUTION[ \t]*\n?", replace, source, flags=re.M | re.S)


def without_hidden(source):
    return HIDDEN.sub("", source)


def source_notebook(root, unit):
    return Path(root) / "source" / unit / f"{unit}.ipynb"


def solved(nb):
    """The notebook with every solution cell solved (markers stripped)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = strip_markers(cell.source)
    return nb


def with_variant(nb, variant):
    """The solved notebook with `variant` rewriting its cell (`nb` must be solved already)."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if is_solution(c) and grade_id(c) == variant.cell]
    if not cells:
        raise ValueError(f"variant {variant.name!r}: no solution cell {variant.cell!r}")
    cells[0].source = variant.rewrite(cells[0].source)
    return nb


def test_cells(nb):
    return [grade_id(c) for c in nb.cells if is_test(c)]


def read(path):
    return nbformat.read(str(path), as_version=4)


def write(nb, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def student_notebook(root, unit, variant=None, solved=True):
    """What a student hands in: the release notebook, its answer cells solved (and rewritten by
    `variant`, a bank Variant or a tuple of Variants of different cells)."""
    nb = read(Path(root) / "release" / unit / f"{unit}.ipynb")
    if not solved:
        return nb
    answers = {grade_id(c): strip_markers(c.source) for c in read(source_notebook(root, unit)).cells
               if is_solution(c)}
    for one in (variant if isinstance(variant, tuple) else (variant,) if variant else ()):
        if one.cell not in answers:
            raise ValueError(f"variant {one.name!r}: no solution cell {one.cell!r} in {unit}")
        answers[one.cell] = one.rewrite(answers[one.cell])
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = answers[grade_id(cell)]
    return nb


def write_class(dest, students):
    """Lay out {student: {unit: notebook | str (raw file text) | None (folder, no notebook)}}."""
    for student, work in students.items():
        for unit, nb in work.items():
            folder = Path(dest) / student / unit
            folder.mkdir(parents=True, exist_ok=True)
            if isinstance(nb, str):
                (folder / f"{unit}.ipynb").write_text(nb)
            elif nb is not None:
                write(nb, folder / f"{unit}.ipynb")
