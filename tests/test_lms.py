"""The instructor's round trip through Canvas and Moodle: downloads built the way those systems' own
source writes them go through `course collect`, real nbgrader grading of unit 01 and `course export`;
the exported CSVs are compared byte for byte with files written by hand (tests/lms_expected/), read the
way each LMS's importer reads them, and the feedback zips checked by their file names and contents.

The LMS sources these follow: Canvas lib/content_zipper.rb (download names: get_filename,
sanitize_user_name, sanitize_file_name), lib/gradebook_importer.rb (import), app/models/assignment.rb
(re-upload, infer_comment_context_from_filename: the first two all-digit `_` parts are the ids); Moodle
mod/assign/classes/downloader.php (download names: get_student_prefix, load_submissionplugin_filelist,
clean_filename; download_zip passes no time to add_file_from_stored_file), files/classes/local/
archive_writer/zip_writer.php (so ZipStream dates every entry when the zip is made),
mod/assign/feedback/offline/locallib.php download_grades and mod/assign/gradingtable.php (the grading
worksheet: its columns when downloading, col_recordid "Participant " + the participant id,
col_timesubmitted and col_timemarked `userdate` with no format, i.e. strftimedaydatetime
"%A, %d %B %Y, %I:%M %p" without leading zeros, in the downloading user's zone, "-" for none; col_status
with " - ... late"; written by dataformat/csv, Spout: a UTF-8 BOM and fputcsv's quoting),
grade/import/csv/classes/load_data.php (import: map_user_data_with_value, update_grade_item)."""
import csv
import io
import json
import os
import re
import shutil
import stat
import warnings
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime

import nbformat
import pytest

from course_grading import samples
from course_grading.course import ROOT
from course_grading.lms import canvas as canvas_lms
from course_grading.lms.collect import MAX_ENTRY, collect
from course_grading.lms.export import export
from course_grading.pipeline.late import LatePenalty
from course_grading.cli import main

UNIT = "01_perceptron"
EXPECTED = ROOT / "tests" / "lms_expected"
DOWNLOADED = (2027, 2, 8, 9, 30, 0)  # Moodle dates every entry of its zip when it makes it: 3 days late


class ImportAborted(Exception):
    pass


def moodle_import(text, identifier, users):
    """What Moodle's CSV grade import stores (grade/import/csv/classes/load_data.php,
    prepare_import_grade_data and map_user_data_with_value): {user: {column: grade, None = "no grade"}}.
    Values are trimmed; a blank identifier is skipped, so the row's grades go to the previous row's user;
    no user yet aborts the import, as does an identifier no user has (check_user_exists) or a grade that is
    not a number; '' and '-' are "no grade" (update_grade_item)."""
    lines = list(csv.reader(io.StringIO(text)))
    header, stored, student = lines[0], {}, None
    for line in lines[1:]:
        if len(line) <= 1:
            continue
        grades = {}
        for column, value in zip(header, line):
            value = value.strip()
            if column == identifier:
                if value:
                    if value not in users:
                        raise ImportAborted(f"usermappingerror: {value}")
                    student = users[value]
            elif column.startswith("Assignment:"):
                if value not in ("", "-") and not re.fullmatch(r"-?[0-9]*\.?[0-9]+", value):
                    raise ImportAborted(f"badgrade: {value}")  # update_grade_item: unformat_float fails
                grades[column] = None if value in ("", "-") else float(value)
        if student is None:
            raise ImportAborted("usermappingerrorusernotfound")
        stored.setdefault(student, {}).update(grades)
    return stored


def canvas_import(text, assignments, scores):
    """What Canvas's gradebook import changes (lib/gradebook_importer.rb): (new scores, new assignments,
    the Points Possible row's values). The header must be `Student,ID` or `LastName,FirstName,ID`, then
    optional `SIS Login ID` or `SIS User ID,SIS Login ID[,Integration ID][,Root Account]`, then `Section`
    (row_has_student_headers?, update_column_count; else "Invalid header row"); Current/Final Score and
    the like are not assignments (strip_non_assignment_columns); a column that names no assignment, by
    its `(id)` or its title, becomes a new one (parse_assignments); a row whose first cell holds
    "Points Possible" sets each column's points possible where it is not blank (process_pp); students by
    ID; a cell is a change unless it equals the stored score or both are blank or `-`, so a blank against
    an existing score removes it (no_change_to_value?)."""
    rows = [[cell if cell != "" else None for cell in row] for row in csv.reader(io.StringIO(text))]
    header = [cell or "" for cell in rows[0]]
    names = header[:2] == ["LastName", "FirstName"]
    if not ((len(header) > 3 and "Student" in header[0] and "ID" in header[1]) or
            (len(header) > 4 and "LastName" in header[0] and "FirstName" in header[1] and "ID" in header[2])):
        raise ImportAborted("Invalid header row")
    count = 4 if names else 3
    if re.search(r"SIS\s+Login\s+ID", header[count - 1]):
        count += 1
    elif re.search(r"SIS\s+User\s+ID", header[count - 1]) and re.search(r"SIS\s+Login\s+ID", header[count]):
        extra = 1 if re.search(r"Integration\s+ID", header[count + 1]) else 0
        count += 2 + extra + (1 if re.search(r"Root\s+Account", header[count + 1 + extra]) else 0)
    if "Section" not in header[count - 1]:
        raise ImportAborted("Invalid header row")
    non_assignment = re.compile("Current Score|Current Points|Current Grade|Final Score|Final Points|"
                                "Final Grade|Override Score|Override Grade|Override Status")
    columns = [(i, c) for i, c in enumerate(header) if i >= count and not non_assignment.search(c)]
    known = {re.sub(r".*\((\d+)\)$", r"\1", a) for a in assignments} | set(assignments)
    new = [c for _, c in columns if re.sub(r".*\((\d+)\)$", r"\1", c) not in known and c not in known]
    scores, points = dict(scores), {}
    for row in rows[1:]:
        if row[0] and "Points Possible" in row[0]:
            points.update({c: float(row[i]) for i, c in columns if row[i] is not None})
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c, re.I) for c in row if c is not None):
            continue
        user = row[2 if names else 1]
        for i, column in columns:
            grade, current = (row[i] or "").strip(), scores.get((user, column))
            no_score = grade in ("", "-")
            if no_score and current is None:
                continue
            scores[user, column] = None if no_score else float(grade)
    return scores, new, points


def notebook(solved=True, unit=UNIT):
    return nbformat.writes(samples.student_notebook(ROOT, unit, solved=solved)).encode()


def write_zip(path, files):
    """{name: bytes | (bytes, date_time) | ZipInfo-ready (bytes, date_time, unix mode)} as a zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in files.items():
            data, when, mode = (value + (None,) * 3)[:3] if isinstance(value, tuple) else (value, None, None)
            info = zipfile.ZipInfo(name, date_time=when or (2027, 2, 1, 12, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (mode or 0o100644) << 16
            archive.writestr(info, data)
    return path


def report_rows(submissions):
    with open(submissions / "collect_report.csv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def course(*args):
    """`course ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def zipped(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    """A Canvas "Download Submissions" zip of unit 01, collected, graded and exported."""
    from course_grading.pipeline.grading import grade_class

    tmp = tmp_path_factory.mktemp("canvas")
    download = write_zip(tmp / "submissions.zip", {
        "lovelaceada_1001_50001_01_perceptron.ipynb": notebook(),
        "babbagecharles_LATE_1002_50002_01_perceptron.ipynb": notebook(),
        "hoppergrace_1003_50003_01_perceptron.ipynb": notebook(solved=False),   # her first try...
        "hoppergrace_1003_50010_01_perceptron-1.ipynb": notebook(),             # ...and the re-submission
        "hoppergrace_1003_50009_work.zip": write_zip(tmp / "inner.zip", {"a.ipynb": notebook()}).read_bytes(),
        "turingalan_1004_50004_Copy of 01_perceptron (1).ipynb": notebook(),
        "turingalan_1004_50005_notes.pdf": b"%PDF-1.4\n",
        "knuthdonald_1005_50006_01_perceptron.py": b"def perceptron_predict(w, b, X): pass\n",
        "lovelaceada_1001_50007_02_gradient_descent.ipynb": notebook(unit="02_gradient_descent"),
        "nobodyx_9999_50008_01_perceptron.ipynb": notebook(),
        "curiemarie_1006_50012_01_perceptron.ipynb": notebook(),
        "curiemarie_1006_50013_perceptron_final.ipynb": notebook(solved=False),
        "../../escape_1001_50014_01_perceptron.ipynb": notebook(),
        "lovelaceada_1001_50015_big.ipynb": bytes(MAX_ENTRY + 1),  # a zip bomb: too large...
        "lovelaceada_1001_50016_dense.ipynb": bytes(4 << 20),  # ...or packed too tightly
        "lovelaceada_1001_50017_link.ipynb": (b"/etc/passwd", None, stat.S_IFLNK | 0o777),
    })
    roster = EXPECTED / "canvas_roster.csv"
    collected = course("collect", str(download), "--from", "canvas", "--roster", str(roster),
                       "--to", str(tmp / "subs"), "--unit", "01")
    assert collected[0] == 0, collected[2]
    report = grade_class(tmp / "subs", tmp / "out", jobs=2, progress=False, only=(UNIT,))
    exported = course("export", str(tmp / "out"), "--to", "canvas", "--roster", str(roster))
    assert exported[0] == 0, exported[2]
    return tmp, report, collected[1]


@pytest.fixture(scope="module")
def moodle(tmp_path_factory):
    """A Moodle "Download all submissions" zip of unit 01 as downloader.php writes it: folders of Moodle 4.1
    and later (`..._file/`), of earlier versions (`..._file_/`) and flat names, full names through
    clean_filename (O'Brien arrives as OBrien), every entry dated when the zip was made, three days after
    the due date; and the grading worksheet with the real submission times, in Europe/Paris."""
    from course_grading.pipeline.grading import grade_class

    tmp = tmp_path_factory.mktemp("moodle")
    download = write_zip(tmp / "moodle.zip", {name: (data, DOWNLOADED) for name, data in {
        "Ada Lovelace_501_assignsubmission_file/01_perceptron.ipynb": notebook(),
        "Charles Babbage_502_assignsubmission_file_/01_perceptron.ipynb": notebook(),
        "Grace Hopper_503_assignsubmission_file_01_perceptron (1).ipynb": notebook(),
        "Alan Turing_504_assignsubmission_file/answers.pdf": b"%PDF-1.4\n",
        "Seán OBrien_505_assignsubmission_file/01_perceptron.ipynb": notebook(),
        "Nobody Here_599_assignsubmission_file/01_perceptron.ipynb": notebook(),
        "Ada Lovelace_501_assignsubmission_file/../../../../tmp/x.ipynb": notebook(),
    }.items()})
    roster = EXPECTED / "moodle_roster.csv"
    rows = collect(download, "moodle", tmp / "subs", roster=roster, timezone="Europe/Paris",
                   worksheets=[EXPECTED / "moodle_worksheet.csv"])
    report = grade_class(tmp / "subs", tmp / "out", jobs=2, progress=False, only=(UNIT,))
    export(tmp / "out", "moodle", roster)
    return tmp, report, rows


def test_canvas_collect_places_each_notebook_and_names_every_other_file(canvas):
    tmp, _, printed = canvas
    rows = report_rows(tmp / "subs")
    placed = {(r["student_id"], r["file"]) for r in rows.values() if r["placed"] == "yes"}
    assert placed == {("ada", "lovelaceada_1001_50001_01_perceptron.ipynb"),
                      ("charles", "babbagecharles_LATE_1002_50002_01_perceptron.ipynb"),
                      ("grace", "hoppergrace_1003_50010_01_perceptron-1.ipynb"),
                      ("alan", "turingalan_1004_50004_Copy of 01_perceptron (1).ipynb")}
    why = {name: r["reason"] for name, r in rows.items() if r["placed"] == "no"}
    assert why["hoppergrace_1003_50003_01_perceptron.ipynb"].startswith(  # both are in her last submission
        "handed in together with hoppergrace_1003_50010_01_perceptron-1.ipynb")
    assert why["hoppergrace_1003_50009_work.zip"].startswith("a zip inside the zip")
    assert why["turingalan_1004_50005_notes.pdf"].startswith("not a notebook (.pdf)")
    assert why["knuthdonald_1005_50006_01_perceptron.py"].startswith("not a notebook (.py)")
    assert why["lovelaceada_1001_50007_02_gradient_descent.ipynb"] == \
        "a notebook of 02_gradient_descent, handed in for 01_perceptron"
    assert why["nobodyx_9999_50008_01_perceptron.ipynb"].startswith("unknown student")
    assert why["curiemarie_1006_50012_01_perceptron.ipynb"].startswith("2 notebooks for 01_perceptron")
    assert why["curiemarie_1006_50013_perceptron_final.ipynb"].startswith("2 notebooks for 01_perceptron")
    assert why["../../escape_1001_50014_01_perceptron.ipynb"].startswith("path escapes the folder")
    assert why["lovelaceada_1001_50015_big.ipynb"].startswith("zip bomb")
    assert why["lovelaceada_1001_50016_dense.ipynb"].startswith("zip bomb")
    assert why["lovelaceada_1001_50017_link.ipynb"].startswith("a symbolic link")
    assert len(rows) == 16 and all(name in printed for name in why if name.isascii())
    assert not list(tmp.rglob("escape*")) and not (tmp / "subs" / "marie").exists()
    assert sorted(p.name for p in (tmp / "subs").iterdir()) == ["ada", "alan", "charles",
                                                                "collect_report.csv", "grace"]
    assert (tmp / "subs" / "grace" / UNIT / f"{UNIT}.ipynb").read_bytes() == notebook()
    assert (tmp / "subs" / "charles" / UNIT / "timestamp.txt").read_text() == "2027-02-05 23:59:01 UTC\n"
    assert not (tmp / "subs" / "ada" / UNIT / "timestamp.txt").exists()


def test_canvas_late_marker_costs_one_day_in_grades_csv(canvas):
    tmp, report, _ = canvas
    with open(report.grades_csv, newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert [rows["charles"][k] for k in (UNIT, "raw_total", "late_penalty", "total")] == ["9", "10", "1", "9"]
    assert "late by 0:00:01" in rows["charles"]["problems"]
    assert [rows["ada"][k] for k in (UNIT, "raw_total", "late_penalty", "total")] == ["10", "10", "0", "10"]


def test_canvas_identity_goes_into_the_gradebook(canvas):
    from nbgrader.api import Gradebook

    _, report, _ = canvas
    with Gradebook(report.db_url) as gradebook:
        ada = gradebook.find_student("ada")
        assert (ada.first_name, ada.last_name, ada.lms_user_id) == ("Ada", "Lovelace", "1001")
        assert gradebook.find_assignment(UNIT).duedate == datetime(2027, 2, 5, 23, 59)


def test_canvas_export_is_the_gradebook_import_and_the_reupload_zip(canvas):
    tmp, _, _ = canvas
    text = (tmp / "out" / "canvas_grades.csv").read_text()
    assert text == (EXPECTED / "canvas_grades.csv").read_text()
    # Donald (a .py) and Marie (two notebooks) have nothing graded: no row, so Canvas keeps their scores
    column = "01 Perceptron (7001)"
    before = {("1005", column): 7.0, ("1006", column): 6.0, ("1001", column): 3.0}
    after, new, points = canvas_import(text, [column], before)
    assert new == [] and points == {column: 10}
    assert after[("1005", column)] == 7.0 and after[("1006", column)] == 6.0
    assert after[("1001", column)] == 10.0 and None not in after.values()
    files = zipped(tmp / "out" / "canvas_feedback.zip")
    assert sorted(files) == (EXPECTED / "canvas_feedback.txt").read_text().split("\n")[:-1]
    submitted = {("1001", "50001"): "ada", ("1002", "50002"): "charles", ("1003", "50010"): "grace",
                 ("1004", "50004"): "alan"}  # (user id, attachment id) of each placed download
    for name, data in files.items():
        # Canvas's re-upload takes the first two all-digit parts of the name as user id and attachment id
        student = submitted[tuple(p for p in name.split("_") if p.isdigit())[:2]]
        assert data == (tmp / "out" / "feedback" / student / UNIT / f"{UNIT}.html").read_bytes()
    again = course("export", str(tmp / "out"), "--to", "canvas", "--roster",
                   str(EXPECTED / "canvas_roster.csv"))
    assert again[0] == 0 and zipped(tmp / "out" / "canvas_feedback.zip") == files


def test_an_excused_student_is_graded_again_without_the_penalty(canvas):
    from course_grading.pipeline.grading import grade_class

    tmp, _, _ = canvas
    (tmp / "subs" / "charles" / UNIT / "timestamp.txt").write_text("2027-02-05 23:00:00 UTC\n")
    again = grade_class(tmp / "subs", tmp / "out", jobs=1, progress=False, only=(UNIT,))
    assert again.graded == [("charles", UNIT)]
    assert again.scores["charles", UNIT] == (10, 10) and again.penalties["charles", UNIT] == 0


def test_moodle_times_come_from_the_worksheet_not_from_the_zip(moodle):
    tmp, report, rows = moodle
    why = {r["file"]: r["reason"] for r in rows if r["placed"] == "no"}
    placed = sorted(r["student_id"] for r in rows if r["placed"] == "yes")
    assert placed == ["S01", "S03", "charles@example.edu", "sean@example.edu"]
    assert why["Alan Turing_504_assignsubmission_file/answers.pdf"].startswith("not a notebook (.pdf)")
    assert why["Nobody Here_599_assignsubmission_file/01_perceptron.ipynb"].startswith("unknown student")
    assert why["Ada Lovelace_501_assignsubmission_file/../../../../tmp/x.ipynb"].startswith("path escapes")
    times = {s: (tmp / "subs" / s / UNIT / "timestamp.txt").read_text() for s in placed}
    assert times == {"S01": "2027-02-05 20:00:00 UTC\n", "S03": "2027-02-05 22:30:00 UTC\n",
                     "charles@example.edu": "2027-02-07 10:00:00 UTC\n",  # 11:00 in Paris
                     "sean@example.edu": "2027-02-05 09:00:00 UTC\n"}
    with open(report.grades_csv, newline="") as f:
        grades = {r["student_id"]: r for r in csv.DictReader(f)}
    assert [grades["charles@example.edu"][k] for k in ("raw_total", "late_penalty", "total")] == ["10", "2",
                                                                                                  "8"]
    assert [grades[s]["late_penalty"] for s in ("S01", "S03", "sean@example.edu")] == ["0", "0", "0"]


def test_moodle_without_the_worksheet_gives_no_time_and_says_so(tmp_path):
    """Without the worksheet the zip's dates (the download's) are never taken: no time, no penalty, a
    note. Names as downloader.php writes them: either name order, clean_filename's characters gone."""
    download = write_zip(tmp_path / "m.zip", {
        "OBrien Seán_700_assignsubmission_file/01_perceptron.ipynb": (notebook(), DOWNLOADED),
        "Lovelace Ada_701_assignsubmission_file/01_perceptron.ipynb": (notebook(), DOWNLOADED)})
    code, printed, _ = course("collect", download, "--from", "moodle", "--roster",
                              EXPECTED / "moodle_roster.csv", "--to", tmp_path / "subs")
    assert code == 0 and "note: 2 notebook(s) placed without a submission time" in printed
    rows = report_rows(tmp_path / "subs")
    rows = {r["student_id"]: r for r in rows.values()}
    assert {s: r["placed"] for s, r in rows.items()} == {"sean@example.edu": "yes", "S01": "yes"}
    assert "late penalty not applied" in rows["S01"]["reason"] and "--worksheet" in rows["S01"]["reason"]
    assert not list((tmp_path / "subs").rglob("timestamp.txt"))
    sheet = tmp_path / "sheet.csv"
    sheet.write_text((EXPECTED / "moodle_worksheet.csv").read_text().replace("Participant 501",
                                                                             "Participant 701"))
    rows = {r["student_id"]: r for r in collect(download, "moodle", tmp_path / "again", worksheets=[sheet],
                                                roster=EXPECTED / "moodle_roster.csv")}
    assert rows["S01"]["reason"] == ""
    assert rows["sean@example.edu"]["reason"] == \
        "participant 700 is not in the grading worksheet: late penalty not applied"
    blind = write_zip(tmp_path / "blind.zip", {  # blind marking: "Participant" for every name
        "Participant_702_assignsubmission_file/01_perceptron.ipynb": (notebook(), DOWNLOADED)})
    (row,) = collect(blind, "moodle", tmp_path / "blind", roster=EXPECTED / "moodle_roster.csv")
    assert row["reason"].startswith("blind marking: Moodle's file name names no student")
    sheet.write_text((EXPECTED / "moodle_worksheet.csv").read_text().replace("Participant 503",
                                                                             "Participant 702"))
    (row,) = collect(blind, "moodle", tmp_path / "unblind", roster=EXPECTED / "moodle_roster.csv",
                     worksheets=[sheet])
    assert (row["student_id"], row["placed"]) == ("S03", "yes")
    text = write_zip(tmp_path / "text.zip", {  # the online text plugin's file, in its own folder
        "Ada Lovelace_701_assignsubmission_onlinetext/onlinetext.html": (b"<p>see my notebook</p>",
                                                                         DOWNLOADED)})
    (row,) = collect(text, "moodle", tmp_path / "text", roster=EXPECTED / "moodle_roster.csv")
    assert (row["student_id"], row["reason"]) == ("S01", "not a notebook (.html): only .ipynb is graded")


def test_moodle_export_gives_every_grade_to_its_own_student(moodle):
    tmp, _, _ = moodle
    text = (tmp / "out" / "moodle_grades.csv").read_text()
    assert text == (EXPECTED / "moodle_grades.csv").read_text()
    users = {"ada@example.edu": "S01", "charles@example.edu": "charles", "grace@example.edu": "S03",
             "alan@example.edu": "S04", "sean@example.edu": "sean"}
    column = "Assignment: 01 Perceptron (Real)"
    assert moodle_import(text, "Email address", users) == {
        "S01": {column: 10}, "charles": {column: 8}, "S03": {column: 10}, "sean": {column: 10}}
    # the export as it was (identifier mapped to ID number, empty for Charles): Moodle gave Ada his 8
    old = "First name,Last name,ID number,Email address,Assignment: 01 Perceptron (Real)\n" \
          "Ada,Lovelace,S01,ada@example.edu,10\nCharles,Babbage,,charles@example.edu,8\n"
    assert moodle_import(old, "ID number", {"S01": "S01"}) == {"S01": {column: 8}}

    files = zipped(tmp / "out" / "moodle_feedback.zip")
    assert sorted(files) == (EXPECTED / "moodle_feedback.txt").read_text().split("\n")[:-1]
    for name, data in files.items():
        # mod/assign/feedback/file/importziplib.php is_valid_filename_for_import: explode("_", name, 5) =
        # full name, participant id, plugin type, plugin, file name
        full_name, participant, subtype, plugin, filename = name.split("_", 4)
        assert participant.isdigit() and (subtype, plugin) == ("assignfeedback", "file") and "/" not in name
        student = {"501": "S01", "502": "charles@example.edu", "503": "S03",
                   "505": "sean@example.edu"}[participant]
        assert data == (tmp / "out" / "feedback" / student / UNIT / f"{UNIT}.html").read_bytes()


def copy_of_graded(canvas, tmp_path, grades_extra=None):
    """A copy of the Canvas fixture's OUT folder (grades.csv with an extra unit column if asked)."""
    out = tmp_path / "out"
    shutil.copytree(canvas[0] / "out", out)
    if grades_extra:
        with open(out / "grades.csv", newline="") as f:
            rows = list(csv.reader(f))
        rows[0].insert(2, grades_extra)
        for row in rows[1:]:
            row.insert(2, "0")
        with open(out / "grades.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return out


def roster_with(tmp_path, text):
    path = tmp_path / "roster.csv"
    path.write_text(text)
    return path


CANVAS_HEAD = "Student,ID,SIS User ID,SIS Login ID,Section,"


def test_canvas_export_scales_to_points_possible_and_writes_only_units_handed_in(canvas, tmp_path):
    """The roster's Points Possible (100) is what Canvas keeps; 02 is in grades.csv but nobody handed it
    in: no column, where Canvas would have taken blanks or 0 for everyone. Marie handed in a malformed
    notebook (0 points, a problem in grades.csv, nothing in OUT/submitted): she gets her 0."""
    out = copy_of_graded(canvas, tmp_path, grades_extra="02_gradient_descent")
    with open(out / "grades.csv", "a", newline="") as f:
        csv.writer(f).writerow(["marie", "0", "0", "0", "0", "0", "10",
                                "01_perceptron: malformed notebook (not valid JSON); 02_gradient_descent: "
                                "not submitted"])
    roster = roster_with(tmp_path, CANVAS_HEAD + "Quiz 01 Perceptron (7002),01 Perceptron (7001),"
                         "02 Gradient Descent (7003)\n    Points Possible,,,,,5.00,100.00,10.00\n"
                         '"Lovelace, Ada",1001,S01,ada,Section A,,,\n'
                         '"Turing, Alan",1004,S04,alan,Section A,,,\n'
                         '"Knuth, Donald",1005,S05,donald,Section A,4,80,\n'
                         '"Curie, Marie",1006,S06,marie,Section A,,,\n')
    code, printed, err = course("export", out, "--to", "canvas", "--roster", roster)
    assert code == 0, err
    assert (out / "canvas_grades.csv").read_text() == (
        CANVAS_HEAD + "01 Perceptron (7001)\n    Points Possible,,,,,100\n"
        '"Lovelace, Ada",1001,S01,ada,Section A,100\n"Turing, Alan",1004,S04,alan,Section A,100\n'
        '"Curie, Marie",1006,S06,marie,Section A,0\n')
    assert "note: 01_perceptron: scaled to the roster's Points Possible, 100 (graded out of 10)" in printed
    assert "note: 02_gradient_descent: nobody's submission is in" in printed
    assert "1 rostered student(s) with nothing graded get no row" in printed and "(donald;" in printed
    code, printed, err = course("export", out, "--to", "canvas", "--roster", roster, "--missing-as-zero")
    assert code == 0 and '"Knuth, Donald",1005,S05,donald,Section A,0\n' in \
        (out / "canvas_grades.csv").read_text()
    code, _, err = course("export", out, "--to", "canvas", "--roster", roster, "--units", "02", "03")
    assert code == 2 and "not graded" in err
    code, _, err = course("export", out, "--to", "canvas", "--roster", roster, "--db", "nosuch://x")
    assert code == 2 and "cannot read the gradebook" in err


def test_canvas_export_passes_canvas_header_check_and_keeps_its_points(canvas, tmp_path):
    """gradebook_importer.rb refuses a header whose last student column is not `Section`
    (update_column_count) and sets an assignment's points possible from any non-blank cell of the Points
    Possible row (process_pp): a roster without Section or without that row still gives a file Canvas
    takes, with the assignment's points left as they are."""
    out = copy_of_graded(canvas, tmp_path)
    roster = roster_with(tmp_path, "Student,ID,SIS User ID,SIS Login ID,01 Perceptron (7001)\n"
                         '"Lovelace, Ada",1001,S01,ada,\n')
    code, _, err = course("export", out, "--to", "canvas", "--roster", roster)
    assert code == 0, err
    text = (out / "canvas_grades.csv").read_text()
    assert text == ("Student,ID,SIS User ID,SIS Login ID,Section,01 Perceptron (7001)\n"
                    "    Points Possible,,,,,\n" '"Lovelace, Ada",1001,S01,ada,,10\n')
    assert canvas_import(text, ["01 Perceptron (7001)"], {}) == ({("1001", "01 Perceptron (7001)"): 10},
                                                                  [], {})
    with pytest.raises(ImportAborted):  # the check itself: no Section, no import
        canvas_import(text.replace(",Section", ""), ["01 Perceptron (7001)"], {})


def test_canvas_export_makes_no_assignment_unless_asked(canvas, tmp_path):
    out = copy_of_graded(canvas, tmp_path)
    roster = roster_with(tmp_path, "LastName,FirstName,ID,SIS Login ID,Section,Homework 1 (7009)\n"
                         "    Points Possible,,,,,10\nLovelace,Ada,1001,ada,Section A,\n")
    code, _, err = course("export", out, "--to", "canvas", "--roster", roster)
    assert code == 2 and "no unit handed in has a column" in err
    code, printed, err = course("export", out, "--to", "canvas", "--roster", roster, "--new-columns")
    assert code == 0, err
    assert "imports as a new assignment" in printed
    text = (out / "canvas_grades.csv").read_text()
    assert text == ("LastName,FirstName,ID,SIS Login ID,Section,01_perceptron\n    Points Possible,,,,,10\n"
                    "Lovelace,Ada,1001,ada,Section A,10\n")


def test_canvas_ids_are_the_ones_next_to_the_rostered_name(tmp_path):
    """content_zipper.rb keeps a sortable name's trailing `_<digits>` (sanitize_user_name collapses only
    `_<digits>_`): `student_12_1007_...` is user 1007, not user 12; a name that is not the roster's for the
    id is refused. sanitize_file_name keeps Ruby's [[:word:]], combining marks included (a decomposed
    "Seán" keeps its accent, which Python's \\w would drop)."""
    sean = "O'Brien, Sea\u0301n"
    roster = roster_with(tmp_path, CANVAS_HEAD + "01 Perceptron (7001)\n    Points Possible,,,,,10\n"
                         "student_12,1007,S07,s12,Section A,\n\"Twelve, Tom\",12,S12,tom,Section A,\n"
                         f"\"{sean}\",1010,S10,sean,Section A,\n")
    download = write_zip(tmp_path / "d.zip", {
        "obriensea\u0301n_1010_50024_01_perceptron.ipynb": notebook(),
        "student_12_1007_50020_01_perceptron.ipynb": notebook(),
        "somebodyelse_12_50021_01_perceptron.ipynb": notebook(),
        "twelvetom_LATE_12_50022_my_2_1_perceptron.ipynb": notebook(),
        "anon_x7Kq2_50023_01_perceptron.ipynb": notebook()})
    rows = {r["file"]: r for r in collect(download, "canvas", tmp_path / "subs", roster=roster)}
    assert (rows["student_12_1007_50020_01_perceptron.ipynb"]["student_id"],
            rows["student_12_1007_50020_01_perceptron.ipynb"]["placed"]) == ("s12", "yes")
    assert rows["somebodyelse_12_50021_01_perceptron.ipynb"]["reason"].startswith(
        "the name before Canvas user id")
    assert rows["twelvetom_LATE_12_50022_my_2_1_perceptron.ipynb"]["placed"] == "yes"
    assert rows["anon_x7Kq2_50023_01_perceptron.ipynb"]["reason"].startswith("anonymous grading")
    assert rows["obriensea\u0301n_1010_50024_01_perceptron.ipynb"]["student_id"] == "sean"
    info = {"name": "student_12", "lms_user_id": "1007", "attachment_id": "50020"}
    # Canvas's re-upload reads the first two all-digit parts as user id and attachment id
    assert [p for p in f"{canvas_lms.names(info)}_{UNIT}_feedback.html".split("_") if p.isdigit()][:2] == \
        ["1007", "50020"]
    info = {"name": "1234", "lms_user_id": "1007", "attachment_id": "50020"}  # a sortable name of digits
    assert [p for p in f"{canvas_lms.names(info)}_{UNIT}_feedback.html".split("_") if p.isdigit()][:2] == \
        ["1007", "50020"]


def test_collect_survives_what_a_term_brings_and_keeps_its_report(tmp_path, capsys):
    """A corrupt notebook named for no unit beside another file (was a TypeError), a report re-saved by a
    spreadsheet in cp1252 with a column added, 1,500 notebooks from one student (the report stays small),
    names with terminal escapes and spreadsheet formulas, a notebook of 50,000 cells of one id."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "collect_report.csv").write_bytes(
        "source,file,student_id,unit,placed,reason,my notes\n"
        "old.zip,caf\xe9.ipynb,ada,01_perceptron,yes,,ok\n"
        .encode("cp1252"))
    cells = [{"cell_type": "code", "id": "same", "metadata": {}, "source": os.urandom(8).hex(), "outputs": [],
              "execution_count": None} for _ in range(50000)]  # random sources: not packed like a zip bomb
    huge = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    files = {"lovelaceada_1001_1_homework.ipynb": b'{"cells": [',
             "lovelaceada_1001_2_notes.txt": b"hi",
             "=HYPERLINK(1)_1001_3.ipynb": b"x",
             "babbagecharles_1002_4_\x1b[2J.ipynb": b"{",
             "hoppergrace_1003_5_big.ipynb": huge.encode(),
             "lovelaceada_1001_6_dense.ipynb": bytes(512 << 10)}  # under 1 MB, packed over 100 times
    files.update({f"turingalan_1004_{100 + i}_01_perceptron_{i}.ipynb": b'{"cells": [' for i in range(1500)})
    download = write_zip(tmp_path / "d.zip", files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, printed, err = course("collect", download, "--from", "canvas", "--roster",
                                    EXPECTED / "canvas_roster.csv", "--to", subs)
    assert code == 0, err
    assert len(caught) < 10
    report = (subs / "collect_report.csv").read_text()
    assert len(report) < 1_000_000 and len(printed) < 1_000_000
    assert "old.zip,café.ipynb,ada,01_perceptron,yes," in report
    rows = report_rows(subs)
    assert "names no unit" in rows["lovelaceada_1001_1_homework.ipynb"]["reason"]
    assert "'=HYPERLINK(1)_1001_3.ipynb" in rows
    assert "1500 notebooks for 01_perceptron" in rows["turingalan_1004_100_01_perceptron_0.ipynb"]["reason"]
    assert "and 1497 more" in rows["turingalan_1004_100_01_perceptron_0.ipynb"]["reason"]
    assert "\x1b" not in printed and "\x1b" not in report
    assert rows["hoppergrace_1003_5_big.ipynb"]["reason"].startswith("not a notebook of one unit")
    assert rows["lovelaceada_1001_6_dense.ipynb"]["reason"].startswith("zip bomb")


def test_bad_options_get_a_message_not_a_traceback(tmp_path):
    roster = EXPECTED / "canvas_roster.csv"
    download = write_zip(tmp_path / "d.zip", {"lovelaceada_1001_1_01_perceptron.ipynb": notebook()})
    (tmp_path / "file").write_text("")
    for args, message in [(["--timezone", "../../etc/passwd"], "not a time zone name"),
                          (["--timezone", "Mars/Olympus"], "unknown time zone"),
                          (["--to", tmp_path / "file"], "a file, not a folder"),
                          (["--worksheet", roster], "only with --from moodle")]:
        options = {"--to": tmp_path / "subs", **dict(zip(args[::2], args[1::2]))}
        code, _, err = course("collect", download, "--from", "canvas", "--roster", roster,
                              *[x for kv in options.items() for x in kv])
        assert code == 2 and message in err, (args, err)
    code, _, err = course("collect", download, "--from", "moodle", "--roster", EXPECTED / "moodle_roster.csv",
                          "--to", tmp_path / "subs", "--worksheet", roster)
    assert code == 2 and "not a Moodle grading worksheet" in err


def test_exchange_folder_latest_wins_and_wrong_unit_is_named(tmp_path):
    inbound = tmp_path / "inbound"
    for folder, data in {"ada+01_perceptron+2027-02-01 10:00:00.000000 UTC+a1": notebook(solved=False),
                         "ada+01_perceptron+2027-02-03 10:00:00.000000 UTC+b2": notebook(),
                         "bob+02_gradient_descent+2027-02-03 10:00:00.000000 UTC+c3": notebook()}.items():
        (inbound / folder).mkdir(parents=True)
        (inbound / folder / (folder.split("+")[1] + ".ipynb")).write_bytes(data)
    (inbound / "ada+01_perceptron+2027-02-04 10:00:00 UTC+d4").symlink_to(tmp_path)  # links are not followed
    (inbound / " ada+01_perceptron+2027-02-05 10:00:00 UTC+e5").mkdir()  # not student "ada", nor " ada"
    (inbound / " ada+01_perceptron+2027-02-05 10:00:00 UTC+e5" / f"{UNIT}.ipynb").write_bytes(notebook())
    rows = {r["file"].split("+")[3].split("/")[0]: r for r in collect(inbound, "folder", tmp_path / "subs")}
    assert rows["d4"]["reason"] == "a symbolic link (not read)" and len(rows) == 5
    assert rows["e5"]["reason"].startswith("folder name is not a valid student id")
    assert rows["b2"]["placed"] == "yes" and rows["b2"]["student_id"] == "ada"
    assert rows["a1"]["reason"].startswith("an older version")
    assert rows["c3"]["reason"] == \
        "a notebook of 01_perceptron, handed in for 02_gradient_descent"
    assert (tmp_path / "subs" / "ada" / UNIT / f"{UNIT}.ipynb").read_bytes() == notebook()
    assert (tmp_path / "subs" / "ada" / UNIT / "timestamp.txt").read_text() == "2027-02-03 10:00:00 UTC\n"


def test_the_unit_comes_from_the_notebook_not_its_name(tmp_path):
    foreign = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])).encode()
    download = write_zip(tmp_path / "d.zip", {
        "lovelaceada_1001_1_01_perceptron.ipynb": foreign,
        "babbagecharles_1002_2_02_gradient_descent.ipynb": notebook(),  # unit 01 under unit 02's name
        "hoppergrace_1003_3_01_perceptron.ipynb": b'{"cells": [',  # unreadable: placed by its name
        "turingalan_1004_4_homework.ipynb": b'{"cells": [',  # unreadable and unnamed
    })
    rows = {r["student_id"]: r for r in collect(download, "canvas", tmp_path / "subs",
                                                roster=EXPECTED / "canvas_roster.csv")}
    assert rows["ada"]["placed"] == "no" and rows["ada"]["reason"].startswith("not a notebook of one unit")
    assert (rows["charles"]["placed"], rows["charles"]["unit"]) == ("yes", UNIT)
    assert (rows["grace"]["placed"], rows["grace"]["unit"]) == ("yes", UNIT)
    assert rows["grace"]["reason"].startswith("not a readable notebook")
    assert rows["alan"]["placed"] == "no" and "names no unit" in rows["alan"]["reason"]


def test_nothing_is_overwritten_and_a_rerun_replaces_its_report_rows(tmp_path):
    roster = EXPECTED / "canvas_roster.csv"
    first = write_zip(tmp_path / "first.zip", {"lovelaceada_1001_1_01_perceptron.ipynb": notebook(False)})
    rows = collect(first, "canvas", tmp_path / "subs", roster=roster)
    assert collect(first, "canvas", tmp_path / "subs", roster=roster) == rows  # the same again: same rows
    second = write_zip(tmp_path / "second.zip", {"lovelaceada_1001_2_01_perceptron.ipynb": notebook()})
    (row,) = collect(second, "canvas", tmp_path / "subs", roster=roster)
    assert row["placed"] == "no" and "already holds a different notebook" in row["reason"]
    assert (tmp_path / "subs" / "ada" / UNIT / f"{UNIT}.ipynb").read_bytes() == notebook(solved=False)
    assert sorted(report_rows(tmp_path / "subs")) == ["lovelaceada_1001_1_01_perceptron.ipynb",
                                                      "lovelaceada_1001_2_01_perceptron.ipynb"]


def test_bad_downloads_get_a_message_not_a_traceback(tmp_path):
    roster = str(EXPECTED / "canvas_roster.csv")
    (tmp_path / "not.zip").write_bytes(b"this is not a zip")
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("lovelaceada_1001_3_01_perceptron.ipynb", notebook())
    damaged = bytearray(whole.getvalue())
    damaged[60:90] = bytes(30)  # inside the compressed data: the central directory still reads
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    for args, message in [(["not.zip", "--roster", roster], "not a readable zip file"),
                          (["missing.zip", "--roster", roster], "does not exist"),
                          (["not.zip"], "needs --roster"),
                          (["not.zip", "--roster", str(tmp_path / "none.csv")], "cannot read the roster")]:
        result = course("collect", str(tmp_path / args[0]), "--from", "canvas", *args[1:], "--to",
                        str(tmp_path / "subs"))
        assert result[0] == 2 and message in result[2], (args, result)
    result = course("collect", str(tmp_path / "damaged.zip"), "--from", "canvas", "--roster", roster,
                    "--to", str(tmp_path / "subs"))
    assert result[0] == 0 and "a corrupt zip entry" in result[1], result
    result = course("export", str(tmp_path), "--to", "moodle", "--roster",
                    str(EXPECTED / "moodle_roster.csv"))
    assert result[0] == 2 and "no grades.csv" in result[2]


@pytest.mark.parametrize("seconds, penalty", [(1, 1), (86400, 1), (86400 + 1, 2), (30 * 86400, 10)])
def test_late_penalty_is_ten_percent_per_started_day(seconds, penalty):
    assert LatePenalty(percent_per_day=10).late_submission_penalty("s", 10.0, seconds) == penalty


@pytest.mark.parametrize("text, kept", [
    ('{"lms": "canvas", "lms_user_id": "1001", "attachment_id": "5", "name": "lovelaceada"}', True),
    ('{"lms": "canvas", "lms_user_id": "1001", "attachment_id": "5", "name": "../../x"}', False),
    ('{"lms": "moodle", "participant_id": "12/..", "full_name": "Ada Lovelace"}', False),
    ('["not", "a", "dict"]', False), ('{"lms": "canvas"', False)])
def test_export_trusts_only_an_lms_json_that_collect_could_have_written(tmp_path, text, kept):
    from course_grading.lms.export import _lms_info

    (tmp_path / "lms.json").write_text(text)
    assert (_lms_info(tmp_path / "lms.json") is not None) == kept


def test_the_demo_class_goes_in_through_a_moodle_download_too(tmp_path):
    """The demo's Moodle download is made as Moodle makes it: entries dated at the download, three days
    after the due date; the times come from its grading worksheet, so only dan (two days late) is late."""
    from course_grading.tools.demo import moodle_download, sample_class
    from course_grading.pipeline.late import duedates

    students = sample_class(ROOT, (UNIT,))
    downloads, roster = moodle_download(students, tmp_path / "moodle", duedates())
    (download, worksheet), = downloads
    with zipfile.ZipFile(download) as archive:
        assert {i.date_time for i in archive.infolist()} == {(2027, 2, 8, 23, 59, 0)}
    rows = {r["student_id"]: r for r in collect(download, "moodle", tmp_path / "subs", roster=roster,
                                                worksheets=[worksheet])}
    assert {s for s, r in rows.items() if r["placed"] == "yes"} == set(students) - {"jon_missing_notebook"}
    assert rows["jon_missing_notebook"]["reason"].startswith("not a notebook (.pdf)")
    times = {s: (tmp_path / "subs" / s / UNIT / "timestamp.txt").read_text() for s in students
             if rows[s]["placed"] == "yes"}
    assert times.pop("dan_more_bugs") == "2027-02-07 23:59:00 UTC\n"
    assert set(times.values()) == {"2027-02-04 23:59:00 UTC\n"}
    assert "not a readable notebook" in rows["hana_malformed"]["reason"]
