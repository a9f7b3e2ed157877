"""Why a graded cell lost points, in the words the student saw, and a summary that opens each feedback file.

A test cell's reason is the first line of the first error it showed (a check's message without its
`CheckFailed:`; other exceptions with their name), else of what it wrote to stderr; its mistake key is
the cell and that line with every number (and address) as '#', so "off by 50%" and "off by 3%" are one kind.
cell_grades.csv, the class report (course_grading.tools.report) and FeedbackSummary all use them.
"""
import html
import json
import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_raw_cell
from nbgrader.preprocessors import NbGraderPreprocessor

from course_grading import samples

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:0x[0-9a-fA-F]+|\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?!\w)")
CHECK_ERRORS = ("CheckFailed", "AssertionError")  # the message is the check's own words
NO_MESSAGE = "lost points without an error message (see the cell's output)"


def message(cell):
    """The whole text of the first error the cell showed (else its stderr), '' when there is none."""
    outputs = cell.get("outputs", [])
    for output in outputs:
        if output.get("output_type") == "error":
            text, name = ANSI.sub("", str(output.get("evalue", ""))).strip(), output.get("ename", "")
            return text if name in CHECK_ERRORS and text else f"{name}: {text}" if text else name
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return "wrote to stderr: " + ANSI.sub("", str(output.get("text", ""))).strip()
    return ""


def first_line(text):
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def messages(path):
    """{grade_id: whole message} of the test cells of an autograded notebook ({} when it is missing)."""
    path = Path(path)
    if not path.is_file():
        return {}
    cells = nbformat.from_dict(json.loads(path.read_text(encoding="utf-8"))).cells  # unvalidated: 50x faster
    return {samples.grade_id(cell): message(cell) for cell in cells if samples.is_test(cell)}


def reason(text, score, max_score):
    """The reason a cell lost points (the first line of its message), '' at full marks."""
    if score is not None and score >= max_score:
        return ""
    return first_line(text) or NO_MESSAGE


def mistake_key(cell, why):
    """'cell: the reason with its numbers as #', '' for no reason."""
    return f"{cell}: {NUMBER.sub('#', why)}" if why else ""


def exercise(grade_id):
    """The exercise a test cell grades, by name: test_batchnorm_forward -> batchnorm_forward."""
    return grade_id[5:] if grade_id.startswith("test_") else grade_id


SUMMARY_CSS = """
div.course-summary { display: table; width: 100%; margin: 0.5em 0 1.5em 0; border-collapse: collapse; }
div.course-summary > div { display: table-row; }
div.course-summary > div > span { display: table-cell; padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; }
div.course-summary > div.head > span { font-weight: bold; border-bottom: 2px solid #888; }
div.course-summary span.points { white-space: nowrap; text-align: right; }
div.course-summary div.lost span.points { color: #b52a1c; font-weight: bold; }
div.course-summary div.full span.points { color: #2a7d2a; }
div#toc { display: none; }
"""


def _row(kind, first, points, why):
    """A row of the summary (bleach, which nbconvert runs over raw HTML, keeps divs and spans, not tables)."""
    return (f'<div class="{kind}"><span>{first}</span><span class="points">{points}</span>'
            f'<span>{html.escape(why)}</span></div>')


class FeedbackSummary(NbGraderPreprocessor):
    """GenerateFeedback, after GetGrades: the feedback opens with every graded cell by name, its score and
    the reason it lost points, each linking to its cell; nbgrader's list of alike "Test cell" lines is
    hidden, its cells and tracebacks stay below."""

    def preprocess(self, nb, resources):
        rows = [_row("head", "exercise", "score", "why points were lost")]
        for cell in nb.cells:
            info = cell.get("metadata", {}).get("nbgrader", {})
            if not info.get("grade"):
                continue
            grade_id, score, points = html.escape(info["grade_id"]), info.get("score"), info.get("points", 0)
            why = reason(message(cell), score, points) if samples.is_test(cell) else ""
            if score is None:
                why = why or "needs grading by hand"
            link = f'<a href="#{grade_id}"><code>{html.escape(exercise(info["grade_id"]))}</code></a>'
            rows.append(_row("lost" if why else "full", link,
                             "not graded yet" if score is None else f"{score:g} / {points:g}", why))
            if info.get("comment"):
                rows.append(_row("comment", f'<a href="#comment-{grade_id}">comment</a>', "",
                                 first_line(info["comment"])))
        grades = resources.get("nbgrader", {})
        if grades.get("late_penalty"):
            rows.append(_row("lost", "late submission", f"-{grades['late_penalty']:g}",
                             "handed in after the due date"))
        if "score" in grades:
            rows.append(_row("head", "total", f"{grades['score']:g} / {grades['max_score']:g}", ""))
        table = '<div class="course-summary" id="course-summary">' + "".join(rows) + "</div>"
        nb.cells.insert(0, new_raw_cell(table, metadata={"raw_mimetype": "text/html"}))
        resources.setdefault("inlining", {}).setdefault("css", []).append(SUMMARY_CSS)
        return nb, resources
