"""Why a graded cell lost points, in the words the student saw, and a summary that opens each feedback file.

A test cell's reason is the first line of the first error it showed (a check's message without its
`CheckFailed:`; other exceptions with their name), else of what it wrote to stderr; its mistake key is
the cell and that line with every number replaced by '#', so "off by 50%" and "off by 3%" are one kind.
cell_grades.csv, the class report (course_grading.tools.report) and FeedbackSummary all use them.
"""
import html
import re
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from course_grading import samples

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?!\w)")
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
    return {samples.grade_id(cell): message(cell) for cell in samples.read(path).cells if samples.is_test(cell)}


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
div.course-summary { margin: 0.5em 0 1.5em 0; }
div.course-summary table { border-collapse: collapse; width: 100%; }
div.course-summary td { padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; vertical-align: top; }
div.course-summary tr.head td { font-weight: bold; border-bottom: 2px solid #888; }
div.course-summary td.points { white-space: nowrap; text-align: right; }
div.course-summary tr.lost td.points { color: #b52a1c; font-weight: bold; }
div.course-summary tr.full td.points { color: #2a7d2a; }
div#toc { display: none; }
"""


class FeedbackSummary(NbGraderPreprocessor):
    """GenerateFeedback, after GetGrades: the feedback opens with every graded cell by name, its score and
    the reason it lost points, each linking to its cell; nbgrader's list of alike "Test cell" lines is
    hidden, its cells and tracebacks stay below."""

    def preprocess(self, nb, resources):
        rows = ['<tr class="head"><td>exercise</td><td class="points">score</td><td>why points were lost</td></tr>']
        for cell in nb.cells:
            info = cell.get("metadata", {}).get("nbgrader", {})
            if not info.get("grade"):
                continue
            score, points = info.get("score"), info.get("points") or 0
            why = reason(message(cell), score, points) if samples.is_test(cell) else ""
            shown = "not graded yet" if score is None else f"{score:g} / {points:g}"
            if score is None:
                why = why or "needs grading by hand"
            rows.append(f'<tr class="{"lost" if why else "full"}"><td><a href="#{html.escape(info["grade_id"])}">'
                        f'<code>{html.escape(exercise(info["grade_id"]))}</code></a></td>'
                        f'<td class="points">{shown}</td><td>{html.escape(why)}</td></tr>')
            if info.get("comment"):
                rows.append(f'<tr><td><a href="#comment-{html.escape(info["grade_id"])}">comment</a></td>'
                            f'<td class="points"></td><td>{html.escape(first_line(info["comment"]))}</td></tr>')
        grades = resources.get("nbgrader", {})
        if grades.get("late_penalty"):
            rows.append(f'<tr class="lost"><td>late submission</td><td class="points">'
                        f'-{grades["late_penalty"]:g}</td><td>points taken off for handing in late</td></tr>')
        if "score" in grades:
            rows.append(f'<tr class="head"><td>total</td><td class="points">{grades["score"]:g} / '
                        f'{grades["max_score"]:g}</td><td></td></tr>')
        summary = NotebookNode(cell_type="raw", source='<div class="course-summary" id="course-summary"><table>'
                               + "".join(rows) + "</table></div>", metadata={"raw_mimetype": "text/html"})
        nb.cells.insert(0, summary)
        resources.setdefault("inlining", {}).setdefault("css", []).append(SUMMARY_CSS)
        return nb, resources
