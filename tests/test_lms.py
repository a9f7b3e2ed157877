"""The instructor's round trip through Canvas and Moodle: downloads named the way those systems name
files go through `course collect`, real nbgrader grading of unit 01 and `course export`; the exported
CSVs are compared byte for byte with files written by hand from the LMS documentation
(tests/lms_expected/), the feedback zips by their file names and contents."""
import csv
import io
import stat
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime

import nbformat
import pytest

from course_grading import samples
from course_grading.course import ROOT
from course_grading.lms.collect import MAX_ENTRY, collect
from course_grading.lms.export import export
from course_grading.pipeline.late import LatePenalty
from course_grading.cli import main

UNIT = "01_perceptron"
EXPECTED = ROOT / "tests" / "lms_expected"


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
    """A Moodle "Download all submissions" zip of unit 01 (folders of both Moodle versions, and flat)."""
    from course_grading.pipeline.grading import grade_class

    tmp = tmp_path_factory.mktemp("moodle")
    download = write_zip(tmp / "moodle.zip", {
        "Ada Lovelace_501_assignsubmission_file_/01_perceptron.ipynb": (notebook(), (2027, 2, 5, 20, 0, 0)),
        "Charles Babbage_502_assignsubmission_file/01_perceptron.ipynb": (notebook(), (2027, 2, 7, 10, 0, 0)),
        "Grace Hopper_503_assignsubmission_file_01_perceptron (1).ipynb": notebook(),
        "Alan Turing_504_assignsubmission_file_/answers.pdf": b"%PDF-1.4\n",
        "Nobody Here_599_assignsubmission_file_/01_perceptron.ipynb": notebook(),
        "Ada Lovelace_501_assignsubmission_file_/../../../../tmp/x.ipynb": notebook(),
    })
    roster = EXPECTED / "moodle_roster.csv"
    rows = collect(download, "moodle", tmp / "subs", roster=roster)
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
    assert why["hoppergrace_1003_50003_01_perceptron.ipynb"].startswith("an older version")
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
    assert (tmp / "out" / "canvas_grades.csv").read_bytes() == (EXPECTED / "canvas_grades.csv").read_bytes()
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


def test_moodle_round_trip(moodle):
    tmp, report, rows = moodle
    why = {r["file"]: r["reason"] for r in rows if r["placed"] == "no"}
    placed = sorted(r["student_id"] for r in rows if r["placed"] == "yes")
    assert placed == ["S01", "S03", "charles@example.edu"]
    assert why["Alan Turing_504_assignsubmission_file_/answers.pdf"].startswith("not a notebook (.pdf)")
    assert why["Nobody Here_599_assignsubmission_file_/01_perceptron.ipynb"].startswith("unknown student")
    assert why["Ada Lovelace_501_assignsubmission_file_/../../../../tmp/x.ipynb"].startswith("path escapes")
    late = tmp / "subs" / "charles@example.edu" / UNIT / "timestamp.txt"
    assert late.read_text() == "2027-02-07 10:00:00 UTC\n"  # the zip's time: 1 day 10 h late, two days off
    with open(report.grades_csv, newline="") as f:
        grades = {r["student_id"]: r for r in csv.DictReader(f)}
    assert [grades["charles@example.edu"][k] for k in ("raw_total", "late_penalty", "total")] == ["10", "2",
                                                                                                  "8"]
    assert grades["S01"]["late_penalty"] == "0"  # handed in four hours before the due date

    assert (tmp / "out" / "moodle_grades.csv").read_bytes() == (EXPECTED / "moodle_grades.csv").read_bytes()
    files = zipped(tmp / "out" / "moodle_feedback.zip")
    assert sorted(files) == (EXPECTED / "moodle_feedback.txt").read_text().split("\n")[:-1]
    for name, data in files.items():
        # Moodle's importer: explode('_', name, 5) = full name, participant id, plugin type, plugin, file name
        full_name, participant, subtype, plugin, filename = name.split("_", 4)
        assert participant.isdigit() and (subtype, plugin) == ("assignfeedback", "file") and "/" not in name
        student = {"501": "S01", "502": "charles@example.edu", "503": "S03"}[participant]
        assert data == (tmp / "out" / "feedback" / student / UNIT / f"{UNIT}.html").read_bytes()


def test_exchange_folder_latest_wins_and_wrong_unit_is_named(tmp_path):
    inbound = tmp_path / "inbound"
    for folder, data in {"ada+01_perceptron+2027-02-01 10:00:00.000000 UTC+a1": notebook(solved=False),
                         "ada+01_perceptron+2027-02-03 10:00:00.000000 UTC+b2": notebook(),
                         "bob+02_gradient_descent+2027-02-03 10:00:00.000000 UTC+c3": notebook()}.items():
        (inbound / folder).mkdir(parents=True)
        (inbound / folder / (folder.split("+")[1] + ".ipynb")).write_bytes(data)
    (inbound / "ada+01_perceptron+2027-02-04 10:00:00 UTC+d4").symlink_to(tmp_path)  # links are not followed
    rows = {r["file"].split("+")[3].split("/")[0]: r for r in collect(inbound, "folder", tmp_path / "subs")}
    assert rows["d4"]["reason"] == "a symbolic link (not read)" and len(rows) == 4
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
    from course_grading.tools.demo import moodle_download, sample_class
    from course_grading.pipeline.late import duedates

    students = sample_class(ROOT, (UNIT,))
    download, roster = moodle_download(students, tmp_path / "moodle", duedates())
    rows = {r["student_id"]: r for r in collect(download, "moodle", tmp_path / "subs", roster=roster)}
    assert {s for s, r in rows.items() if r["placed"] == "yes"} == set(students) - {"jon_missing_notebook"}
    assert rows["jon_missing_notebook"]["reason"].startswith("not a notebook (.pdf)")
    late = tmp_path / "subs" / "dan_more_bugs" / UNIT / "timestamp.txt"
    assert late.read_text() == "2027-02-07 23:59:00 UTC\n"
    assert "not a readable notebook" in rows["hana_malformed"]["reason"]
