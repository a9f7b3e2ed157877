"""`course report OUT`: what the class got wrong, as one static page and a CSV, after every grading run.

Read from what `course grade` wrote into OUT: grades.csv (final scores per unit, late work and what was not
graded, in its problems column), cell_grades.csv (each cell's score, reason and mistake key) and the
autograded notebooks (each mistake's whole message). Written: OUT/report.html (score histograms and the
share of full, partial and zero marks per exercise, drawn by matplotlib and embedded, so the page reads
offline; the most common mistakes per exercise with links to feedback files; late work; what could not be
graded; students at risk over the units graded so far) and OUT/mistakes.csv.
"""
import base64
import csv
import io
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Float, Integer
from traitlets.config import Configurable

from course_grading.course import ROOT
from course_grading.pipeline import summary
from course_grading.pipeline.grading import write_atomically

HTML, MISTAKES = "report.html", "mistakes.csv"
MARKS = (("full", "#55a868"), ("partial", "#dd8452"), ("zero", "#c44e52"))
STATUS = ("not graded", "needs review", "graded, repaired")
FIXED_COLUMNS = ("student_id", "raw_total", "late_penalty", "total", "max_total", "problems")


class ReportError(RuntimeError):
    """The report cannot be made; the message says why in one sentence."""


class CourseReport(Configurable):
    """Settings of the class report (nbgrader_config.py: c.CourseReport.at_risk_below = 50)."""

    at_risk_below = Float(50.0, help="a student below this percent of the points of the units graded so "
                          "far is at risk").tag(config=True)
    at_risk_missing = Integer(2, help="a student with this many units graded so far not graded (missing, "
                              "unreadable) is at risk").tag(config=True)
    mistakes_shown = Integer(5, help="mistakes listed per exercise").tag(config=True)
    examples = Integer(3, help="students' feedback files linked per mistake").tag(config=True)


@dataclass
class Mistake:
    unit: str
    cell: str
    key: str
    message: str          # the first line, as the first of its students saw it
    detail: str = ""      # that student's whole message
    students: list = field(default_factory=list)


def _read_csv(path):
    if not path.is_file():
        raise ReportError(f"{path} does not exist: run `course grade` with --out {path.parent} first")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _problems_by_unit(text, units):
    """{unit: [problem]} of a grades.csv problems cell, and its text about no unit (a rejected folder's)."""
    if not units:
        return {}, text
    parts = re.split(r"(?:^|; )(" + "|".join(map(re.escape, units)) + r"): ", text or "")
    found = defaultdict(list)
    for unit, problem in zip(parts[1::2], parts[2::2]):
        found[unit].append(problem)
    return found, parts[0]


def _figure(draw, width=5.0, height=2.6):
    """A matplotlib figure drawn by `draw(axes)`, as a PNG data URL."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    draw(figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _histogram(percents, title, threshold=None):
    def draw(axes):
        axes.hist(percents, bins=range(0, 101, 10), color="#4c72b0", edgecolor="white")
        if threshold is not None:
            axes.axvline(threshold, color="#c44e52", linestyle="--", label=f"at risk below {threshold:g}%")
            axes.legend(loc="upper left", frameon=False)
        axes.set(xlim=(0, 100), xlabel="score (% of the points)", ylabel="students", title=title)
        axes.yaxis.get_major_locator().set_params(integer=True)
    return _figure(draw)


def _shares(exercises):
    """Stacked bars: each exercise's shares of full, partial and zero marks {name: (full, partial, zero)}."""
    def draw(axes):
        names = list(exercises)[::-1]
        left = [0.0] * len(names)
        for index, (label, color) in enumerate(MARKS):
            values = [100 * exercises[name][index] / max(1, sum(exercises[name])) for name in names]
            axes.barh(names, values, left=left, color=color, label=label)
            left = [a + b for a, b in zip(left, values)]
        axes.set(xlim=(0, 100), xlabel="% of the students graded")
        axes.legend(loc="lower right", ncols=3, fontsize="small", frameon=False, bbox_to_anchor=(1, 1))
    return _figure(draw, height=0.9 + 0.32 * len(exercises))


def class_report(out, settings):
    """Everything the page shows, as plain data for the template."""
    out = Path(out)
    grades, cells = _read_csv(out / "grades.csv"), _read_csv(out / "cell_grades.csv")
    columns = list(grades[0]) if grades else []
    every_unit = [c for c in columns if c not in FIXED_COLUMNS]
    graded = defaultdict(list)  # (student, unit) -> its cell rows
    for row in cells:
        graded[row["student_id"], row["unit"]].append(row)
    units = [u for u in every_unit if any(unit == u for _, unit in graded)]  # graded so far
    maxima = {u: max(sum(float(r["max_score"]) for r in rows) for (_, unit), rows in graded.items()
                     if unit == u) for u in units}

    students, rejected, late, not_graded = [], [], [], []
    for row in grades:
        student = row["student_id"]
        by_unit, other = _problems_by_unit(row["problems"], every_unit)
        if other and not by_unit and not any((student, u) in graded for u in units):
            rejected.append({"student": student, "why": other})
            continue
        scores = {u: float(row[u] or 0) for u in units}
        missing = [u for u in units if (student, u) not in graded]
        for unit in units:
            for problem in by_unit.get(unit, []):
                if problem.startswith("late by "):
                    late.append({"student": student, "unit": unit, "what": problem})
                    continue
                review = "manual review" in problem or "manual grading" in problem
                status = STATUS[0] if unit in missing else STATUS[1] if review else STATUS[2]
                not_graded.append({"student": student, "unit": unit, "what": problem, "status": status})
        total, possible = sum(scores.values()), sum(maxima.values())
        percent = 100 * total / possible if possible else 0.0
        at_risk = percent < settings.at_risk_below or len(missing) >= settings.at_risk_missing
        students.append({"student": student, "scores": scores, "missing": missing, "percent": percent,
                         "at_risk": at_risk})
    not_graded.sort(key=lambda r: (STATUS.index(r["status"]), r["unit"], r["student"]))

    mistakes = {}
    for row in sorted(cells, key=lambda r: (r["unit"], r["cell"], r["student_id"])):
        if row.get("mistake_key"):
            key = row["unit"], row["cell"], row["mistake_key"]
            mistakes.setdefault(key, Mistake(row["unit"], row["cell"], row["mistake_key"], row["reason"]))
            mistakes[key].students.append(row["student_id"])

    sections = []
    for unit in units:
        rows = [r for (student, u), rs in graded.items() if u == unit for r in rs]
        exercises = []
        for cell in sorted({r["cell"] for r in rows}):
            marks = [(float(r["score"]), float(r["max_score"])) for r in rows if r["cell"] == cell]
            ranked = sorted((m for m in mistakes.values() if (m.unit, m.cell) == (unit, cell)),
                            key=lambda m: (-len(m.students), m.key))
            shown = settings.mistakes_shown
            for mistake in ranked[:shown]:
                first = out / "autograded" / mistake.students[0] / unit / f"{unit}.ipynb"
                mistake.detail = summary.messages(first).get(cell, "")
            exercises.append({"cell": cell, "name": summary.exercise(cell), "graded": len(marks),
                              "full": sum(s >= m for s, m in marks),
                              "partial": sum(0 < s < m for s, m in marks),
                              "zero": sum(s <= 0 < m for s, m in marks),
                              "mistakes": ranked[:shown], "more": len(ranked[shown:])})
        percents = [100 * s["scores"][unit] / maxima[unit] for s in students
                    if unit not in s["missing"] and maxima[unit]]
        sections.append({"unit": unit, "max": maxima[unit], "graded": len(percents),
                         "missing": sum(unit in s["missing"] for s in students),
                         "median": statistics.median(percents) if percents else 0.0,
                         "histogram": _histogram(percents, f"{unit}: {len(percents)} graded"),
                         "shares": _shares({e["name"]: [e[mark] for mark, _ in MARKS] for e in exercises}),
                         "exercises": exercises})
    at_risk = sorted((s for s in students if s["at_risk"]), key=lambda s: (s["percent"], s["student"]))
    overall = _histogram([s["percent"] for s in students], "all units graded so far", settings.at_risk_below)
    return {"units": units, "maxima": maxima, "sections": sections, "students": students, "at_risk": at_risk,
            "late": late, "not_graded": not_graded, "rejected": rejected, "overall": overall,
            "mistakes": sorted(mistakes.values(), key=lambda m: (m.unit, m.cell, -len(m.students), m.key)),
            "settings": settings, "feedback": lambda *where: _feedback_link(out, *where)}


def _feedback_link(out, student, unit, cell):
    relative = f"feedback/{student}/{unit}/{unit}.html"
    return f"{relative}#{cell}" if (Path(out) / relative).is_file() else ""


def write_report(out, root=ROOT, **overrides):
    """Write OUT/report.html and OUT/mistakes.csv; return the page's path. `overrides` are CourseReport
    settings (at_risk_below=..., ...) that win over nbgrader_config.py's."""
    import jinja2
    from traitlets.config.loader import PyFileConfigLoader

    out = Path(out).resolve()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    settings = CourseReport(config=config, **{k: v for k, v in overrides.items() if v is not None})
    data = class_report(out, settings)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["unit", "cell", "mistake_key", "message", "students", "student_ids"])
    for mistake in data["mistakes"]:
        writer.writerow([mistake.unit, mistake.cell, mistake.key, mistake.message, len(mistake.students),
                         " ".join(mistake.students)])
    write_atomically(out / MISTAKES, buffer.getvalue())
    environment = jinja2.Environment(loader=jinja2.PackageLoader("course_grading.tools", "templates"),
                                     autoescape=True, trim_blocks=True, lstrip_blocks=True)
    write_atomically(out / HTML, environment.get_template("report.html.j2").render(**data, out=out))
    return out / HTML
