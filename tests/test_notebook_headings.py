"""No markdown heading starts in the middle of a cell: Colab's and JupyterLab's outline and section
collapsing attach a heading to its cell, so a section that starts inside the previous one's last cell
takes that cell's demo out of its own section."""
import re

import pytest

from course_grading import samples
from course_grading.course import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "source").glob("*/*.ipynb"))


def mid_cell_headings(text):
    """The headings of a markdown cell that come after some other text (code fences skipped)."""
    found, fenced, seen_text = [], False, False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r" {0,3}#{1,6}(\s|$)", line) and seen_text:
            found.append(line.strip())
        seen_text = seen_text or bool(line.strip())
    return found


def test_the_check_finds_a_heading_after_text_and_skips_code():
    assert mid_cell_headings("## 1. Start\n\ntext\n\n## 2. Next") == ["## 2. Next"]
    assert mid_cell_headings("\n## Only heading\ntext\n```\n# a comment\n```") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_heading_starts_its_cell(path):
    cells = samples.read(path).cells
    late = {n: mid_cell_headings(c.source) for n, c in enumerate(cells) if c.cell_type == "markdown"}
    assert not {n: h for n, h in late.items() if h}, "split these cells at the heading"
