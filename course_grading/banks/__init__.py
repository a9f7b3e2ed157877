"""Banks of student answers with known grades: classic bugs, broken code and correct alternatives.

Each unit's module `unitNN.py` holds `VARIANTS`, a list of `Variant`s. A variant rewrites one
solution cell of the fully solved assignment; `breaks` lists the test cells that must lose points
(empty for a correct alternative, which must keep full marks), and `says` is text the failing
cells' output must contain so that the student learns what is wrong.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str          # the bug (or alternative) in a few words
    cell: str          # grade_id of the solution cell this variant rewrites
    source: str = ""   # the whole new cell source, or ...
    replace: tuple = ()  # ... ((old, new), ...) edits of the reference solution cell
    breaks: tuple = ()   # grade_ids of the test cells that must lose points
    says: str = ""       # text the output of each broken test cell must contain

    @property
    def slug(self):
        return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_")

    def rewrite(self, solution):
        """The cell source for this variant, given the reference solution's cell source."""
        if self.source:
            return self.source
        for old, new in self.replace:
            if old not in solution:
                raise ValueError(f"variant {self.name!r}: {old!r} is not in cell {self.cell!r}")
            solution = solution.replace(old, new)
        return solution


def variants(unit):
    """The bank of unit `unit` ('01_perceptron' or '01'); [] when the unit has none yet."""
    try:
        module = importlib.import_module(f"course_grading.banks.unit{unit[:2]}")
    except ModuleNotFoundError:
        return []
    return list(module.VARIANTS)
