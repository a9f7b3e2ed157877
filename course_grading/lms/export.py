"""`course export OUT --to canvas|moodle --roster ROSTER.csv`: the grades and feedback of `course grade`'s
folder OUT in the form each LMS imports as it is.

Scores are the final ones of OUT/grades.csv (after late penalties); column names and ids come from the
roster (the LMS's own gradebook export, so the columns are its assignments), and the file names of the
feedback zip from the lms.json that `course collect` wrote beside each submission.
"""
import csv
import json
import os
import zipfile
from pathlib import Path

from course_grading.course import ROOT, units as course_units
from course_grading.lms import canvas, moodle
from course_grading.lms.common import LmsError, read_roster, unit_columns

LMS = {"canvas": canvas, "moodle": moodle}


def _grades(out, root):
    path = out / "grades.csv"
    if not path.exists():
        raise LmsError(f"{out} has no grades.csv: export reads a `course grade` folder")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = {r["student_id"]: r for r in reader}
    return [u for u in course_units(root) if u in reader.fieldnames], rows


def _maxima(db_url, units):
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gradebook:
        maxima = {}
        for unit in units:
            try:
                maxima[unit] = gradebook.find_assignment(unit).max_score
            except MissingEntry:
                raise LmsError(f"{unit} is in grades.csv but not in the gradebook {db_url}") from None
        return maxima


def _lms_info(path):
    """lms.json as collect writes it (LMS ids all digits, names without path characters), else None:
    a student may have handed in a file of that name."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    ids, name = {"canvas": (("lms_user_id", "attachment_id"), "name"),
                 "moodle": (("participant_id",), "full_name")}.get(info.get("lms"), ((), None))
    if not all(str(info.get(k, "")).isdigit() for k in ids):
        return None
    if name and not (isinstance(info.get(name), str) and not set(info[name]) & set("/\\\0")):
        return None
    return info


def _zip(path, files):
    """A zip of {name: bytes}, the same bytes for the same files (fixed dates, sorted names)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def export(out, lms, roster, db_url=None, root=ROOT):
    """Write OUT/<lms>_grades.csv and OUT/<lms>_feedback.zip; return (their paths, notes)."""
    out = Path(out).resolve()
    module = LMS[lms]
    header, people = read_roster(roster, module.person)
    missing = [c for c in module.FIXED if c not in header]
    if missing:
        raise LmsError(f"{roster} is not a {lms} gradebook export: it lacks {', '.join(missing)}")
    units, grades = _grades(out, root)
    db_url = db_url or os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{out / 'gradebook.db'}"
    maxima = _maxima(db_url, units)
    columns = unit_columns(header, units)
    notes = [f"{unit}: no column for it in the roster, written as a new assignment {unit!r}"
             for unit, column in columns.items() if column == unit]
    rostered = {p.student_id for p in people}
    notes += [f"{s}: graded but not in the roster (not exported)" for s in grades if s not in rostered
              and (out / "submitted" / s).is_dir()]

    csv_path, zip_path = out / f"{lms}_grades.csv", out / f"{lms}_feedback.zip"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(module.FIXED + [columns[u] for u in units])
        if lms == "canvas":
            writer.writerow([canvas.POINTS_POSSIBLE] + [""] * (len(module.FIXED) - 1)
                            + [f"{maxima[u]:g}" for u in units])
        for person in people:
            scores = grades.get(person.student_id, {})
            writer.writerow([person.row.get(c, "") for c in module.FIXED]
                            + [f"{float(scores[u]):g}" if scores.get(u) else "" for u in units])

    files = {}
    for person in people:
        for unit in units:
            info_path = out / "submitted" / person.student_id / unit / "lms.json"
            feedback = out / "feedback" / person.student_id / unit / f"{unit}.html"
            if not info_path.exists():
                continue
            info = _lms_info(info_path)
            if info is None:
                notes.append(f"{person.student_id} {unit}: {info_path.name} is not the one collect wrote")
            elif info.get("lms") != lms:
                notes.append(f"{person.student_id} {unit}: collected from {info.get('lms')}, not {lms}")
            elif not feedback.exists():
                notes.append(f"{person.student_id} {unit}: no feedback (the notebook was not graded)")
            elif lms == "canvas":
                files[f"{canvas.names(info)}_{unit}_feedback.html"] = feedback.read_bytes()
            else:
                files[moodle.feedback_name(info, unit)] = feedback.read_bytes()
    _zip(zip_path, files)
    return [csv_path, zip_path], notes
