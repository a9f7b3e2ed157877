"""`course collect`: an LMS download (a zip, or a folder in nbgrader's exchange layout) into the layout
`course grade` reads, SUBMISSIONS/<student>/<unit>/<unit>.ipynb, with nbgrader's timestamp.txt (the
submission time) and lms.json (who it is in the LMS, for `course export`) beside each notebook.

File names are read by nbgrader collector plugins (canvas.py, moodle.py, ExchangeCollector here); the
unit comes from the notebook's nbgrader grade ids and cell ids, whatever the file is called. The
submission time is the LMS's: Canvas's LATE marker, Moodle's grading worksheet (never a zip entry's
date, which is when the zip was made), the exchange folder's name. Zips are
read here and not with nbgrader's extractor, which unpacks nested archives and sets no limits: entries
that escape the folder, links, nested zips and entries that unpack too large are refused one by one.
Everything that is not placed is named with the reason in SUBMISSIONS/collect_report.csv, written
atomically, its cells safe to open in a spreadsheet.
"""
import csv
import io
import json
import os
import re
import stat
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import nbformat
from dateutil import tz
from nbgrader.plugins import FileNameCollectorPlugin
from nbgrader.utils import parse_utc
from traitlets import Unicode

from course_grading import samples
from course_grading.course import ROOT, units as course_units
from course_grading.lms import canvas, moodle
from course_grading.pipeline import late
from course_grading.lms.common import (LmsError, Person, cell, collector_match, read_roster, shown,
                                       valid_id, write_csv)

MAX_ENTRY = 64 << 20      # bytes one file may unpack to
MAX_TOTAL = 1 << 30       # bytes a whole download may unpack to
MAX_RATIO = 100           # unpacked / packed size of one entry beyond which it is a zip bomb...
RATIO_FROM = 64 << 10     # ...for entries larger than this
MAX_ENTRIES = 20000
MAX_CELLS = 5000          # cells of a notebook read to recognise its unit
NAMES_SHOWN = 3           # file names one reason lists
ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
REPORT = "collect_report.csv"
FIELDS = ["source", "file", "student_id", "unit", "placed", "reason"]


class ExchangeCollector(FileNameCollectorPlugin):
    """nbgrader's exchange inbound layout: `student+assignment+timestamp[+random]/notebook.ipynb`."""

    named_regexp = Unicode(r"(?P<student_id>[^+/]+)\+(?P<assignment>[^+/]+)\+(?P<timestamp>[^+/]+)"
                           r"(?:\+[^/]*)?/(?P<file_id>[^/]+)").tag(config=True)

    def collect(self, submitted_file):
        return collector_match(self.named_regexp, submitted_file)


@dataclass
class Entry:
    name: str
    data: bytes = b""
    problem: str = ""


@dataclass
class Candidate:
    person: Person
    unit: str
    entry: Entry
    info: dict
    version: tuple = None  # the LMS's order of versions of one file; None where it marks none
    family: str = ""       # versions of one file share it
    timestamp: datetime = None
    note: str = ""


def _mb(size):
    return f"{size / (1 << 20):.0f} MB"


def _unsafe(info):
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        return "path escapes the folder (not unpacked)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link (not unpacked)"
    if info.flag_bits & 1:
        return "an encrypted entry (not unpacked)"
    if info.file_size > MAX_ENTRY:
        return f"zip bomb: unpacks to {_mb(info.file_size)}, more than {_mb(MAX_ENTRY)} (not unpacked)"
    if info.file_size > RATIO_FROM and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return (f"zip bomb: {info.compress_size} bytes unpack to {info.file_size} bytes, "
                f"more than {MAX_RATIO} times (not unpacked)")
    return ""


def read_zip(path):
    """Every file entry of a zip, read within the limits above, or with the reason it was not read."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise LmsError(f"{path} is not a readable zip file ({error})") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_ENTRIES:
            raise LmsError(f"{path} holds {len(infos)} files, more than {MAX_ENTRIES}: not one class's work")
        total, entries = 0, []
        for info in infos:
            entry = Entry(info.filename, problem=_unsafe(info))  # its date is the zip's, never used
            if not entry.problem and total + info.file_size > MAX_TOTAL:
                entry.problem = f"zip bomb: the download unpacks to more than {_mb(MAX_TOTAL)} (not unpacked)"
            if not entry.problem:
                try:
                    with archive.open(info) as f:
                        entry.data = f.read(MAX_ENTRY + 1)
                    total += len(entry.data)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as error:
                    entry.problem = f"a corrupt zip entry ({error})"
            entries.append(entry)
        return entries


def read_folder(path):
    """Every file under a folder (links and oversized files named, not read)."""
    entries, root = [], Path(path)
    files = sorted(Path(folder, name) for folder, dirs, names in os.walk(root) for name in names + [
        d for d in dirs if Path(folder, d).is_symlink()])  # os.walk follows no links
    for file in files:
        name = file.relative_to(root).as_posix()
        if file.is_symlink():
            entries.append(Entry(name, problem="a symbolic link (not read)"))
        elif not file.is_file():
            entries.append(Entry(name, problem="not a plain file (not read)"))
        elif file.stat().st_size > MAX_ENTRY:
            entries.append(Entry(name, problem=f"larger than {_mb(MAX_ENTRY)} (not read)"))
        elif file.name != "timestamp.txt":  # nbgrader's own: the time is in the folder's name too
            entries.append(Entry(name, file.read_bytes()))
    return entries


def fingerprints(root, units):
    """{unit: (grade ids, cell ids)} of the released notebooks."""
    prints = {}
    for unit in units:
        nb = samples.read(Path(root) / "release" / unit / f"{unit}.ipynb")
        prints[unit] = _ids(nb)
    return prints


def _ids(nb):
    def ids(values):
        return {v for v in values if isinstance(v, str)}
    return ids(samples.grade_id(c) for c in nb.cells), ids(c.get("id") for c in nb.cells)


def recognise(nb, prints):
    """The unit whose grade ids and cell ids the notebook shares most (None if it shares none, or a tie)."""
    grade_ids, cell_ids = _ids(nb)
    overlap = sorted(((len(g & grade_ids) + len(c & cell_ids), unit) for unit, (g, c) in prints.items()),
                     reverse=True)
    if not overlap or overlap[0][0] == 0 or (len(overlap) > 1 and overlap[1][0] == overlap[0][0]):
        return None
    return overlap[0][1]


def _notebook(data):
    """The notebook's cells, enough to recognise its unit (None if unreadable). Read as JSON, not validated
    by nbformat: grading validates it; here a million cells of one id must not print a million warnings."""
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return None

    def well_formed(c):
        return isinstance(c, dict) and isinstance(c.get("metadata", {}), dict) and \
            isinstance(c.get("metadata", {}).get("nbgrader", {}), dict)
    return nbformat.from_dict({"cells": [c for c in cells[:MAX_CELLS] if well_formed(c)]})


def _named_unit(name, units):
    words = re.sub(r"[^a-z0-9]+", " ", name.lower())
    found = [u for u in units if re.sub(r"[^a-z0-9]+", " ", u) in words]
    return found[0] if len(found) == 1 else None


def _canvas(entry, people):
    info, why = canvas.parse(PurePosixPath(entry.name.replace("\\", "/")).name, people)
    if not info:
        return None, why
    person = next(p for p in people if p.lms_user_id == info["student_id"])
    stem, number = re.fullmatch(r"(.*?)(?:-(\d+))?(\.[^.]*)?", info["file_id"]).group(1, 2)
    data = {"lms": "canvas", "name": info["name"], "lms_user_id": info["student_id"],
            "attachment_id": info["attachment_id"], "file": info["file_id"], "late": bool(info["late"])}
    return Candidate(person, "", entry, data, (int(info["attachment_id"]), int(number or 0)), stem), ""


def _moodle(entry, people, worksheet):
    """The student by the worksheet's email for the participant id where it has one, else by full name;
    the time from the worksheet, or none (with the reason: no late penalty)."""
    info = moodle.MoodleCollector().collect(entry.name)
    if not info:
        return None, "file name is not in Moodle's form Full Name_participantid_assignsubmission_file_name"
    when, email, _, no_time = (worksheet or {}).get(info["participant_id"], (None, "", "", ""))
    by_email = [p for p in people if email and p.email.casefold() == email.casefold()]
    named = by_email or [p for p in people if moodle.same_name(p, info["full_name"])]
    if not named and info["full_name"] == moodle.BLIND:
        return None, ("blind marking: Moodle's file name names no student (pass a grading worksheet "
                      "downloaded by someone who may see the names, or reveal the identities)")
    if len(named) != 1:
        return None, (f"unknown student: no one called {info['full_name']} in the roster" if not named else
                      f"{len(named)} students called {info['full_name']} in the roster: cannot tell which "
                      "(pass the grading worksheet, --worksheet, to tell them by email)")
    data = {"lms": "moodle", "full_name": info["full_name"], "participant_id": info["participant_id"],
            "lms_user_id": named[0].lms_user_id, "file": info["file_id"]}
    if worksheet is None:
        note = ("no submission time (Moodle's zip is dated when it was downloaded): late penalty not applied;"
                " pass the grading worksheet with --worksheet")
    elif when is None:
        note = (no_time or f"participant {info['participant_id']} is not in the grading worksheet") + \
            ": late penalty not applied"
    else:
        note = ""
    return Candidate(named[0], "", entry, data, family=info["file_id"], timestamp=when, note=note), ""


def _exchange(entry, people):
    info = ExchangeCollector().collect(entry.name)
    if not info:
        return None, "not in nbgrader's exchange layout student+assignment+timestamp/notebook.ipynb"
    student = info["student_id"]
    person = next((p for p in people or () if p.student_id == student), None)
    if people is not None and person is None:
        return None, f"unknown student: {student} is not in the roster"
    if student != student.strip() or not valid_id(student):
        return None, "folder name is not a valid student id (letters, digits and _.@+- only, no spaces)"
    try:
        when = parse_utc(info["timestamp"])
    except (ValueError, OverflowError):
        return None, f"unreadable submission time {info['timestamp']!r} in the folder name"
    data = {"lms": "folder", "lms_user_id": person.lms_user_id if person else "", "file": info["file_id"],
            "assignment": info["assignment"]}
    person = person or Person(student, "", "", "", "")
    return Candidate(person, "", entry, data, (when,), info["file_id"], when), ""


def _identify(entry, lms, people, worksheet, units, prints, only_unit):
    """(Candidate, '') or (None | partial Candidate, why it cannot be placed)."""
    if entry.problem:
        return None, entry.problem
    if lms == "canvas":
        candidate, why = _canvas(entry, people)
    elif lms == "moodle":
        candidate, why = _moodle(entry, people, worksheet)
    else:
        candidate, why = _exchange(entry, people)
    if why:
        return None, why
    name = PurePosixPath(entry.name).name
    if name.lower().endswith(ARCHIVES) or entry.data[:4] == b"PK\x03\x04":
        return candidate, "a zip inside the zip (not unpacked: hand in the notebook itself)"
    if not name.lower().endswith(".ipynb"):
        suffix = PurePosixPath(name).suffix or "no extension"
        return candidate, f"not a notebook ({suffix}): only .ipynb is graded"
    if len(entry.data) > MAX_ENTRY:
        return candidate, f"larger than {_mb(MAX_ENTRY)}"
    assignment = candidate.info.get("assignment")
    meant = only_unit or (assignment if assignment in units else None)
    nb = _notebook(entry.data)
    found = recognise(nb, prints) if nb is not None else None
    if nb is not None and found is None:
        return candidate, "not a notebook of one unit of this course (by its grade ids and cell ids)"
    if found and meant and found != meant:
        return candidate, f"a notebook of {found}, handed in for {meant}"
    candidate.unit = found or meant or _named_unit(name, units) or ""
    if not candidate.unit:
        return candidate, "not a readable notebook, and its name names no unit"
    if nb is None:
        candidate.note = "; ".join(n for n in ("not a readable notebook: placed for grading to report",
                                               candidate.note) if n)
    return candidate, ""


def _timestamp(candidate, duedates):
    """The submission time for nbgrader: the LMS's time, or for Canvas's LATE marker (which has no time)
    one second after the due date, so that it costs one day's penalty."""
    if candidate.info.get("late"):
        due = duedates.get(candidate.unit)
        if due is None:
            candidate.note = "marked LATE, but the unit has no due date in nbgrader_config.py: no penalty"
            return None
        candidate.note = "marked LATE by Canvas (no time given): taken as one second after the due date"
        return due + timedelta(seconds=1)
    return candidate.timestamp


def _choose(group):
    """(the candidate to place or None, {id(candidate): why not}) for one student's files of one unit."""
    if len(group) == 1:
        return group[0], {}
    if len({c.family for c in group}) == 1 and all(c.version is not None for c in group):
        latest = max(group, key=lambda c: c.version)
        why = (f"handed in together with {latest.entry.name} in one Canvas submission; that one, uploaded "
               "last, is placed" if latest.info["lms"] == "canvas" else
               f"an older version (the latest, {latest.entry.name}, is placed)")
        return latest, {id(c): why for c in group if c is not latest}
    names = ", ".join(c.entry.name for c in group[:NAMES_SHOWN])
    more = f" and {len(group) - NAMES_SHOWN} more" if len(group) > NAMES_SHOWN else ""
    why = f"{len(group)} notebooks for {group[0].unit} from this student ({names}{more}): none placed, " \
        "keep one"
    return None, {id(c): why for c in group}


def _zone(name):
    """The dateutil time zone of an IANA name (a clear error, never a traceback, for anything else)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*", name or "") or len(name) > 64:
        raise LmsError(f"--timezone {shown(name, 64)}: not a time zone name such as Europe/Paris")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zone = tz.gettz(name)
    except (OSError, ValueError):
        zone = None
    if zone is None:
        raise LmsError(f"--timezone {name}: unknown time zone")
    return zone


def collect(source, lms, dest, roster=None, unit=None, timezone="UTC", root=ROOT, worksheets=()):
    """Collect `source` (a zip, or a folder for lms='folder') into `dest`; return the report rows.
    `worksheets`: Moodle grading worksheets, the submission times (in `timezone`)."""
    source, dest = Path(source), Path(dest)
    units = course_units(root)
    only_unit = None
    if unit:
        matches = course_units(root, [unit])
        if len(matches) != 1:
            raise LmsError(f"--unit {unit}: not one unit of the course ({', '.join(units)})")
        only_unit = matches[0]
    zone = _zone(timezone)
    if Path(dest).exists() and not Path(dest).is_dir():
        raise LmsError(f"--to {dest}: a file, not a folder")
    if worksheets and lms != "moodle":
        raise LmsError("--worksheet is Moodle's grading worksheet: only with --from moodle")
    worksheet = None
    for path in worksheets:
        worksheet = {**(worksheet or {}), **moodle.read_worksheet(path, zone)}
    if lms in ("canvas", "moodle") and not roster:
        raise LmsError(f"--from {lms} needs --roster (the {lms} gradebook export)")
    person = {"canvas": canvas.person, "moodle": moodle.person, "folder": _any_person}[lms]
    people = read_roster(roster, person)[1] if roster else None
    if not source.exists():
        raise LmsError(f"{source} does not exist")
    entries = read_folder(source) if source.is_dir() else read_zip(source)
    prints, duedates = fingerprints(root, units), late.duedates(root)

    rows, row_of, chosen = [], {}, {}  # a zip may hold one name twice: rows go by candidate, not by name
    for entry in entries:
        candidate, why = _identify(entry, lms, people, worksheet, units, prints, only_unit)
        rows.append({"source": source.name, "file": entry.name, "placed": "no", "reason": why,
                     "student_id": candidate.person.student_id if candidate else "",
                     "unit": candidate.unit if candidate else ""})
        if not why:
            row_of[id(candidate)] = rows[-1]
            chosen.setdefault((candidate.person.student_id, candidate.unit), []).append(candidate)
    for _, group in sorted(chosen.items()):
        keep, dropped = _choose(group)
        for candidate in group:
            if id(candidate) in dropped:
                row_of[id(candidate)]["reason"] = dropped[id(candidate)]
        if keep is not None:
            row_of[id(keep)].update(_place(keep, dest, duedates))
    _write_report(dest, source.name, rows)
    return rows


def _any_person(row):
    student = (row.get("student_id") or "").strip()
    return Person(student, row.get("first_name", ""), row.get("last_name", ""), row.get("email", ""),
                  row.get("lms_user_id", ""), row) if valid_id(student) else None


def _place(candidate, dest, duedates):
    person, unit = candidate.person, candidate.unit
    folder = dest / person.student_id / unit
    notebook = folder / f"{unit}.ipynb"
    if notebook.exists() and notebook.read_bytes() != candidate.entry.data:
        return {"reason": f"{notebook.relative_to(dest)} already holds a different notebook "
                          "(not overwritten: collect into an empty folder)"}
    when = _timestamp(candidate, duedates)
    folder.mkdir(parents=True, exist_ok=True)
    notebook.write_bytes(candidate.entry.data)
    (folder / "timestamp.txt").unlink(missing_ok=True)
    if when is not None:
        (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S UTC\n"))
    identity = {"student_id": person.student_id, "first_name": person.first_name,
                "last_name": person.last_name, "email": person.email}
    info = json.dumps({**candidate.info, **identity}, indent=1, sort_keys=True)
    (folder / "lms.json").write_text(info + "\n")
    late_note = f"submitted {when:%Y-%m-%d %H:%M:%S} UTC" if when and when > duedates.get(unit, when) else ""
    return {"placed": "yes", "reason": "; ".join(n for n in (candidate.note, late_note) if n)}


def _earlier_rows(path, source):
    """The report's rows of other sources, as an instructor may have left it (re-saved by a spreadsheet
    in its own encoding, columns added or removed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise LmsError(f"cannot read {path}: {error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    rows = csv.DictReader(io.StringIO(text, newline=""))
    return [{k: r.get(k) or "" for k in FIELDS} for r in rows if r.get("source") != source]


def _write_report(dest, source, rows):
    """SUBMISSIONS/collect_report.csv: this source's rows replace its earlier ones; other sources' stay.
    Written atomically; cells escaped for terminals and spreadsheets, reasons bounded in size."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / REPORT
    kept = _earlier_rows(path, source)
    mine = sorted(rows, key=lambda r: (r["placed"], r["student_id"], r["unit"], r["file"]))
    mine = [{**r, "file": shown(r["file"], 1000), "reason": shown(r["reason"], 1000)} for r in mine]
    write_csv(path, FIELDS, ([cell(r[k]) for k in FIELDS] for r in kept + mine))
