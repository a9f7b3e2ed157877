"""`course collect`: an LMS download (a zip, or a folder in nbgrader's exchange layout) into the layout
`course grade` reads, SUBMISSIONS/<student>/<unit>/<unit>.ipynb, with nbgrader's timestamp.txt (the
submission time) and lms.json (who it is in the LMS, for `course export`) beside each notebook.

File names are read by nbgrader collector plugins (canvas.py, moodle.py, ExchangeCollector here); the
unit comes from the notebook's nbgrader grade ids and cell ids, whatever the file is called. Zips are
read here and not with nbgrader's extractor, which unpacks nested archives and sets no limits: entries
that escape the folder, links, nested zips and entries that unpack too large are refused one by one.
Everything that is not placed is named with the reason in SUBMISSIONS/collect_report.csv.
"""
import csv
import json
import os
import re
import stat
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
from course_grading.lms.common import LmsError, Person, collector_match, read_roster, valid_id

MAX_ENTRY = 64 << 20      # bytes one file may unpack to
MAX_TOTAL = 1 << 30       # bytes a whole download may unpack to
MAX_RATIO = 100           # unpacked / packed size of one entry beyond which it is a zip bomb
MAX_ENTRIES = 20000
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
    modified: datetime = None  # a zip's: naive, in the time zone of the server that wrote it
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
    if info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return (f"zip bomb: {info.compress_size} bytes unpack to {_mb(info.file_size)}, "
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
            entry = Entry(info.filename, modified=datetime(*info.date_time), problem=_unsafe(info))
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
            modified = datetime.fromtimestamp(file.stat().st_mtime, tz.UTC)
            entries.append(Entry(name, file.read_bytes(), modified))
    return entries


def fingerprints(root, units):
    """{unit: (grade ids, cell ids)} of the released notebooks."""
    prints = {}
    for unit in units:
        nb = samples.read(Path(root) / "release" / unit / f"{unit}.ipynb")
        prints[unit] = _ids(nb)
    return prints


def _ids(nb):
    return {samples.grade_id(c) for c in nb.cells} - {None}, {c.get("id") for c in nb.cells} - {None}


def recognise(nb, prints):
    """The unit whose grade ids and cell ids the notebook shares most (None if it shares none, or a tie)."""
    grade_ids, cell_ids = _ids(nb)
    overlap = sorted(((len(g & grade_ids) + len(c & cell_ids), unit) for unit, (g, c) in prints.items()),
                     reverse=True)
    if not overlap or overlap[0][0] == 0 or (len(overlap) > 1 and overlap[1][0] == overlap[0][0]):
        return None
    return overlap[0][1]


def _notebook(data):
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        return nb if isinstance(nb.get("cells"), list) else None
    except Exception:  # not JSON, not UTF-8, not a notebook: grading names it; here it only has no unit
        return None


def _named_unit(name, units):
    words = re.sub(r"[^a-z0-9]+", " ", name.lower())
    found = [u for u in units if re.sub(r"[^a-z0-9]+", " ", u) in words]
    return found[0] if len(found) == 1 else None


def _canvas(entry, people):
    info = canvas.CanvasCollector().collect(entry.name)
    if not info:
        return None, "file name is not in Canvas's form lastnamefirstname_[LATE_]userid_attachmentid_name"
    person = next((p for p in people if p.lms_user_id == info["student_id"]), None)
    if person is None:
        return None, f"unknown student: Canvas user id {info['student_id']} is not in the roster"
    stem, number = re.fullmatch(r"(.*?)(?:-(\d+))?(\.[^.]*)?", info["file_id"]).group(1, 2)
    data = {"lms": "canvas", "name": info["name"], "lms_user_id": info["student_id"],
            "attachment_id": info["attachment_id"], "file": info["file_id"], "late": bool(info["late"])}
    return Candidate(person, "", entry, data, (int(info["attachment_id"]), int(number or 0)), stem), ""


def _moodle(entry, people, zone):
    info = moodle.MoodleCollector().collect(entry.name)
    if not info:
        return None, "file name is not in Moodle's form Full Name_participantid_assignsubmission_file_name"
    named = [p for p in people if moodle.same_name(p.full_name, info["full_name"])]
    if len(named) != 1:
        return None, (f"unknown student: no one called {info['full_name']} in the roster" if not named else
                      f"{len(named)} students called {info['full_name']} in the roster: cannot tell which")
    data = {"lms": "moodle", "full_name": info["full_name"], "participant_id": info["participant_id"],
            "lms_user_id": named[0].lms_user_id, "file": info["file_id"]}
    when = entry.modified if entry.modified.tzinfo else entry.modified.replace(tzinfo=zone)
    when = when.astimezone(tz.UTC).replace(tzinfo=None)
    return Candidate(named[0], "", entry, data, family=info["file_id"], timestamp=when), ""


def _exchange(entry, people):
    info = ExchangeCollector().collect(entry.name)
    if not info:
        return None, "not in nbgrader's exchange layout student+assignment+timestamp/notebook.ipynb"
    student = info["student_id"]
    person = next((p for p in people or () if p.student_id == student), None)
    if people is not None and person is None:
        return None, f"unknown student: {student} is not in the roster"
    if not valid_id(student):
        return None, "folder name is not a valid student id (letters, digits and _.@+- only)"
    try:
        when = parse_utc(info["timestamp"])
    except (ValueError, OverflowError):
        return None, f"unreadable submission time {info['timestamp']!r} in the folder name"
    data = {"lms": "folder", "lms_user_id": person.lms_user_id if person else "", "file": info["file_id"],
            "assignment": info["assignment"]}
    person = person or Person(student, "", "", "", "")
    return Candidate(person, "", entry, data, (when,), info["file_id"], when), ""


def _identify(entry, lms, people, zone, units, prints, only_unit):
    """(Candidate, '') or (None | partial Candidate, why it cannot be placed)."""
    if entry.problem:
        return None, entry.problem
    if lms == "canvas":
        candidate, why = _canvas(entry, people)
    elif lms == "moodle":
        candidate, why = _moodle(entry, people, zone)
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
    candidate.unit = found or meant or _named_unit(name, units)
    if not candidate.unit:
        return candidate, "not a readable notebook, and its name names no unit"
    if nb is None:
        candidate.note = "not a readable notebook: placed for grading to report"
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
        return latest, {id(c): f"an older version (the latest, {latest.entry.name}, is placed)"
                        for c in group if c is not latest}
    names = ", ".join(c.entry.name for c in group)
    why = f"{len(group)} notebooks for {group[0].unit} from this student ({names}): none placed, keep one"
    return None, {id(c): why for c in group}


def collect(source, lms, dest, roster=None, unit=None, timezone="UTC", root=ROOT):
    """Collect `source` (a zip, or a folder for lms='folder') into `dest`; return the report rows."""
    source, dest = Path(source), Path(dest)
    units = course_units(root)
    only_unit = None
    if unit:
        matches = course_units(root, [unit])
        if len(matches) != 1:
            raise LmsError(f"--unit {unit}: not one unit of the course ({', '.join(units)})")
        only_unit = matches[0]
    zone = tz.gettz(timezone)
    if zone is None:
        raise LmsError(f"--timezone {timezone}: unknown time zone")
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
        candidate, why = _identify(entry, lms, people, zone, units, prints, only_unit)
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


def _write_report(dest, source, rows):
    """SUBMISSIONS/collect_report.csv: this source's rows replace its earlier ones; other sources' stay."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / REPORT
    kept = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            kept = [r for r in csv.DictReader(f) if r.get("source") != source]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(kept + sorted(rows, key=lambda r: (r["placed"], r["student_id"], r["unit"],
                                                            r["file"])))
