"""`course export OUT --to canvas|moodle --roster ROSTER.csv`: the grades and feedback of `course grade`'s
folder OUT in the form each LMS imports as it is, changing only what was graded.

Scores are the final ones of OUT/grades.csv (after late penalties); column names, ids and Canvas's
Points Possible come from the roster (the LMS's own gradebook export), the file names of the feedback zip
from the lms.json that `course collect` wrote beside each submission. Both importers treat what a file
holds as the new grade: a blank Canvas cell against an existing score removes it
(lib/gradebook_importer.rb), a blank or `-` Moodle cell is "no grade" and an empty identifier keeps the
previous row's student (grade/import/csv/classes/load_data.php), and a Canvas column that names no
assignment becomes a new one. So only the units handed in (or --units) are written, a student with nothing
graded gets no row, every Moodle row carries its email, and no column is new unless asked. Canvas's
importer also wants its header's student columns to end in `Section` and makes every non-blank cell of the
Points Possible row the assignment's points possible, so `Section` is always written and that row repeats
the roster's values (blank where the roster has none).
"""
import csv
import io
import json
import os
import zipfile
from pathlib import Path

from course_grading.course import ROOT, units as course_units
from course_grading.lms import canvas, moodle
from course_grading.lms.common import LmsError, read_roster, shown, unit_columns, write_csv

LMS = {"canvas": canvas, "moodle": moodle}
NEEDED = {"canvas": (("ID",), ("Student", "LastName")), "moodle": (("Email address",),)}


def _grades(out):
    path = out / "grades.csv"
    if not path.exists():
        raise LmsError(f"{out} has no grades.csv: export reads a `course grade` folder")
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        rows = {r.get("student_id"): r for r in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LmsError(f"cannot read {path}: {error}") from None
    if "student_id" not in (reader.fieldnames or ()):
        raise LmsError(f"{path} is not `course grade`'s grades.csv (no student_id column)")
    return reader.fieldnames, rows


def _maxima(db_url, units):
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SQLAlchemyError

    maxima = {}
    try:
        with Gradebook(db_url) as gradebook:
            for unit in units:
                maxima[unit] = gradebook.find_assignment(unit).max_score
    except MissingEntry:
        raise LmsError(f"{unit} is in grades.csv but not in the gradebook {db_url}") from None
    except SQLAlchemyError as error:
        raise LmsError(f"cannot read the gradebook {db_url}: {str(error).splitlines()[0]}") from None
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
    """A zip of {name: bytes}, the same bytes for the same files (fixed dates, sorted names), written
    to a temporary name and renamed."""
    partial = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    os.replace(partial, path)


def _number(text):
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _points_possible(header, roster):
    """{column: points} from the Canvas export's Points Possible row."""
    try:
        text = Path(roster).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return {}
    for row in csv.DictReader(io.StringIO(text)):
        if str(row.get(header[0]) or "").strip() == canvas.POINTS_POSSIBLE.strip():
            return {c: _number(row.get(c)) for c in header}
    return {}


def _points_cell(possible, maximum, existing):
    """The Points Possible row's cell, which Canvas's importer makes the assignment's points possible
    where it is not blank (process_pp): the roster's own value, blank where the roster gives none for an
    existing assignment, the notebook's maximum for a new one."""
    if possible:
        return f"{possible:g}"
    return "" if existing else f"{maximum:g}"


def _handed_in(out, grades, student, unit):
    """Whether grade had the student's notebook of the unit: in OUT/submitted, or named in grades.csv's
    problems otherwise than "not submitted" (a malformed notebook scores 0 and is not in OUT/submitted)."""
    if (out / "submitted" / str(student) / unit).is_dir():
        return True
    problems = (grades.get(student) or {}).get("problems") or ""
    return f"{unit}: " in problems and f"{unit}: not submitted" not in problems


def _exported_units(out, graded, only, root, grades):
    """The units to write: `only` (--units), else those handed in by someone; with notes on the rest."""
    if only:
        chosen = course_units(root, only)
        unknown = [u for u in chosen if u not in graded]
        if not chosen or unknown:
            raise LmsError(f"--units {' '.join(map(str, only))}: not graded in {out} "
                           f"(graded: {', '.join(graded) or 'none'})")
        return chosen, []
    handed_in = {u for u in graded if any(_handed_in(out, grades, s, u) for s in grades)}
    chosen = [u for u in graded if u in handed_in]
    return chosen, [f"{u}: nobody's submission is in {out} (not exported; --units {u[:2]} to write it)"
                    for u in graded if u not in handed_in]


def export(out, lms, roster, db_url=None, root=ROOT, units=(), new_columns=False, missing_as_zero=False):
    """Write OUT/<lms>_grades.csv and OUT/<lms>_feedback.zip; return (their paths, notes)."""
    out = Path(out).resolve()
    module = LMS[lms]
    header, people = read_roster(roster, module.person)
    missing = [" or ".join(names) for names in NEEDED[lms] if not set(names) & set(header)]
    if missing:
        raise LmsError(f"{roster} is not a {lms} gradebook export: it lacks {', '.join(missing)}")
    fixed = [c for c in header if c in module.FIXED or (lms == "canvas" and c in ("LastName", "FirstName"))]
    if lms == "canvas" and "Section" not in fixed:
        fixed.append("Section")  # Canvas's importer refuses a header whose student columns do not end in it
    columns_of_grades, grades = _grades(out)
    graded = [u for u in course_units(root) if u in columns_of_grades]
    units, notes = _exported_units(out, graded, units, root, grades)
    if not units:
        raise LmsError(f"nothing to export: no unit of {out}/grades.csv was handed in")
    found = unit_columns(header, units)
    columns = {}
    for unit in units:
        if found[unit] != unit:
            columns[unit] = found[unit]
        elif new_columns:
            columns[unit] = unit
            notes.append(f"{unit}: no column for it in the roster: written as {unit!r}, which {lms} imports "
                         "as a new assignment")
        else:
            notes.append(f"{unit}: no column for it in the roster (not exported: create the assignment "
                         f"in {lms} and export the roster again, or --new-columns)")
    if not columns:
        raise LmsError(f"nothing to export: no unit handed in has a column in {roster}")
    units = list(columns)
    db_url = db_url or os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{out / 'gradebook.db'}"
    maxima = _maxima(db_url, units)
    points = _points_possible(header, roster) if lms == "canvas" else {}
    scale = {}
    for unit in units:
        possible = points.get(columns[unit])
        scale[unit] = possible / maxima[unit] if possible and maxima[unit] and possible != maxima[unit] else 1
        if scale[unit] != 1:
            notes.append(f"{unit}: scaled to the roster's Points Possible, {possible:g} (graded out of "
                         f"{maxima[unit]:g})")

    rostered = {p.student_id for p in people}
    notes += [f"{shown(s, 80)}: graded but not in the roster (not exported)" for s in grades
              if s not in rostered and (out / "submitted" / str(s)).is_dir()]
    rows, nothing, files = [], [], {}
    for person in people:
        handed_in = [u for u in units if _handed_in(out, grades, person.student_id, u)]
        scores = grades.get(person.student_id, {})
        if not handed_in and not missing_as_zero:
            nothing.append(person.student_id)
            continue
        if lms == "moodle" and not person.email:
            notes.append(f"{person.student_id}: no email address in the roster, which Moodle's import needs "
                         "on every row (not exported)")
            continue
        values = [_number(scores.get(u, 0) if handed_in else 0) for u in units]
        if None in values:
            notes.append(f"{person.student_id}: a score in grades.csv is not a number (not exported)")
            continue
        rows.append([person.row.get(c, "") for c in fixed]
                    + [f"{round(v * scale[u], 2):g}" for v, u in zip(values, units)])
        files.update(_feedback(out, lms, person, handed_in, notes))
    if nothing:
        notes.append(f"{len(nothing)} rostered student(s) with nothing graded get no row, so their grades in "
                     f"{lms} stay as they are ({', '.join(map(shown, nothing[:5]))}"
                     f"{' ...' if len(nothing) > 5 else ''}; --missing-as-zero writes 0)")
    header_row = fixed + [columns[u] for u in units]
    if lms == "canvas":
        rows.insert(0, [canvas.POINTS_POSSIBLE] + [""] * (len(fixed) - 1)
                    + [_points_cell(points.get(columns[u]), maxima[u], columns[u] in header) for u in units])
    csv_path, zip_path = out / f"{lms}_grades.csv", out / f"{lms}_feedback.zip"
    write_csv(csv_path, header_row, rows)
    _zip(zip_path, files)
    return [csv_path, zip_path], notes


def _feedback(out, lms, person, units, notes):
    """{file name in the feedback zip: the feedback HTML} of one student's units."""
    files = {}
    for unit in units:
        info_path = out / "submitted" / person.student_id / unit / "lms.json"
        feedback = out / "feedback" / person.student_id / unit / f"{unit}.html"
        if not info_path.exists():
            continue
        info = _lms_info(info_path)
        if info is None:
            notes.append(f"{person.student_id} {unit}: {info_path.name} is not the one collect wrote")
        elif info.get("lms") != lms:
            notes.append(f"{person.student_id} {unit}: collected from {shown(info.get('lms'), 20)}, "
                         f"not {lms}")
        elif not feedback.exists():
            notes.append(f"{person.student_id} {unit}: no feedback (the notebook was not graded)")
        elif lms == "canvas":
            files[f"{canvas.names(info)}_{unit}_feedback.html"] = feedback.read_bytes()
        else:
            files[moodle.feedback_name(info, unit)] = feedback.read_bytes()
    return files
