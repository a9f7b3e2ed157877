"""The instructor pipeline: build, publish, intake of bad submissions, resumable parallel grading,
equality with plain sequential nbgrader, and the CLI."""
import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.tools.bench import plain_nbgrader_autograde
from course_grading.tools.build import generate_release, release_differences
from course_grading.course import ROOT, units
from course_grading.pipeline.grading import grade_class
from course_grading.tools.publish import publish
from course_grading.tools.verify import clean_notebook_problems, leak_problems

UNIT = units()[0]


def solved():
    return samples.student_notebook(ROOT, UNIT)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_release_is_in_sync_and_build_is_idempotent():
    assert release_differences() == []


def test_committed_notebooks_are_clean():
    assert clean_notebook_problems() == []


def test_student_edition_leaks_nothing_and_a_planted_leak_is_caught(tmp_path):
    files = publish(tmp_path / "edition")
    assert Path("README.md") in files and Path("course_utils/checks.py") in files
    assert not any(str(f).startswith("course_grading") or str(f).startswith("source") for f in files)
    assert leak_problems(tmp_path / "edition") == []

    leaked = tmp_path / "edition" / "release" / UNIT / f"{UNIT}.ipynb"
    leaked.write_bytes(samples.source_notebook(ROOT, UNIT).read_bytes())
    found = leak_problems(tmp_path / "edition")
    assert any("BEGIN SOLUTION" in p for p in found) and any("HIDDEN TESTS" in p for p in found)
    assert any("solution line" in p for p in found) and any("check_" in p for p in found)


def malformed_class():
    """One student per kind of damage a real class hands in (all with correct answers)."""
    release = samples.student_notebook(ROOT, UNIT, solved=False)
    first_test = next(i for i, c in enumerate(release.cells) if samples.is_test(c))

    def changed(edit):
        nb = solved()
        edit(nb)
        return nb

    def unmark(nb):
        nb.cells[first_test].metadata = {}

    def duplicate(nb):
        nb.cells.append(copy.deepcopy(nb.cells[first_test]))

    def stub_with_tests_edited():
        nb = copy.deepcopy(release)
        for cell in nb.cells:
            if samples.is_test(cell):
                cell.source = "assert True"
        return nb

    return {
        "ok": {UNIT: solved()},
        "bad_json": {UNIT: '{"cells": [ {"cell_type": "code",'},
        "not_a_notebook": {UNIT: json.dumps({"hello": "world"})},
        "binary_garbage": {UNIT: "\x00\x01\x02 not json"},
        "missing_notebook": {UNIT: None},
        "no_kernelspec": {UNIT: changed(lambda nb: nb.metadata.pop("kernelspec"))},
        "deleted_test": {UNIT: changed(lambda nb: nb.cells.pop(first_test))},
        "unmarked_test": {UNIT: changed(unmark)},
        "duplicated_test": {UNIT: changed(duplicate)},
        "edited_tests_stub": {UNIT: stub_with_tests_edited()},
    }


def test_bad_submissions_are_reported_and_never_stop_the_class(tmp_path):
    samples.write_class(tmp_path / "subs", malformed_class())
    (tmp_path / "subs" / "empty_student").mkdir()
    report = grade_class(tmp_path / "subs", tmp_path / "out", jobs=2, progress=False)
    full = report.scores["ok", UNIT][1]
    score = {s: report.scores[s, UNIT][0] for s in report.students}
    problems = {s: "; ".join(report.problems.get((s, UNIT), [])) for s in report.students}

    assert score["ok"] == full and problems["ok"] == ""
    for student in ("bad_json", "binary_garbage"):
        assert score[student] == 0 and "malformed" in problems[student]
    assert score["not_a_notebook"] == 0 and "malformed" in problems["not_a_notebook"]
    assert score["missing_notebook"] == 0 and "missing notebook" in problems["missing_notebook"]
    assert score["empty_student"] == 0 and "not submitted" in problems["empty_student"]
    assert score["no_kernelspec"] == full and "kernelspec" in problems["no_kernelspec"]
    for student in ("deleted_test", "unmarked_test"):  # restored, so the correct answers still count
        assert score[student] == full and "restored" in problems[student]
    assert score["duplicated_test"] == full and "twice" in problems["duplicated_test"]
    assert score["edited_tests_stub"] == 0 and "edited" in problems["edited_tests_stub"]

    rows = {r["student_id"]: r for r in read_csv(report.grades_csv)}
    assert set(rows) == set(report.students)
    assert "malformed" in rows["not_a_notebook"]["problems"]


def _processes_with(marker):
    """{pid: cmdline} of the processes whose environment holds `marker` (a sandbox's bwrap included)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found[int(pid)] = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            pass
    return found


def _a_kernel_runs(coordinator):
    """Whether a kernel forked by a zygote of this run is running (its parent is the zygote)."""
    parents, zygotes = {}, set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(pid)] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if b"COURSE_ZYGOTE_FD" in Path(f"/proc/{pid}/cmdline").read_bytes():
                zygotes.add(int(pid))
        except OSError:
            pass

    def ours(pid):
        while pid > 1 and pid != coordinator:
            pid = parents.get(pid, 0)
        return pid == coordinator
    return any(pid in zygotes and parents[pid] in zygotes and ours(pid) for pid in parents)


@pytest.mark.parametrize("moment", ["cluster start", "saving 2", "kernels"])
def test_ctrl_c_stops_grading_cleanly_and_the_same_command_grades_the_rest(tmp_path, moment):
    """Ctrl-C (SIGINT to the process group) at a moment the test controls: while the cluster starts, while
    the coordinator saves the second result, while kernels run. One line, status 130, nothing of the run
    left running or behind; the rerun grades exactly what the ledger lacks, and nothing counts twice."""
    students = {f"s{i}": {UNIT: solved()} for i in range(4)}
    wrong = next(v for v in variants(UNIT) if v.breaks)
    students["s_wrong"] = {UNIT: samples.student_notebook(ROOT, UNIT, wrong)}
    samples.write_class(tmp_path / "subs", students)
    marker = f"COURSE_TEST_RUN={tmp_path.name}".encode()
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, COURSE_TEST_RUN=tmp_path.name, TMPDIR=str(tmp_path / "tmp"))
    if moment != "kernels":
        env["COURSE_GRADE_CTRL_C_AT"] = moment
    command = [sys.executable, "-m", "course_grading", "grade", str(tmp_path / "subs"), "--out",
               str(tmp_path / "out"), "--jobs", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    warm_folders = set()
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        for cmdline in _processes_with(marker).values():  # the zygotes' folders, from their bwrap's arguments
            warm_folders |= {Path(*Path(a.decode()).parts[:4]) for a in cmdline
                             if a.startswith(b"/var/tmp/cg-warm-")}
        if moment == "kernels" and _a_kernel_runs(process.pid):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole process group
            moment = "sent"
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    said = [line for line in stderr.splitlines() if line.strip() and not line.startswith("autograde:")]
    assert len(said) == 1 and said[0].startswith("course grade: interrupted: "), stderr  # beside the bar
    assert "the same command grades the rest" in said[0]
    gone = time.time() + 30  # a sandbox ends just after its worker; a loaded machine reaps slowly
    while _processes_with(marker) and time.time() < gone:
        time.sleep(0.2)
    assert _processes_with(marker) == {}, "processes of the run outlived it"
    assert [f for f in warm_folders if f.exists()] == [], "warm kernels' folders left behind"
    assert list((tmp_path / "tmp").iterdir()) == [], "temporary files left behind"

    ledger_path = tmp_path / "out" / "ledger.json"  # a first run sets OUT up while its cluster starts
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    if moment == "cluster start":
        assert ledger == {}
    assert (2 if moment == "saving 2" else 0) <= len(ledger) < len(students)  # the 2nd result's batch saved
    assert all(entry.get("digest") for entry in ledger.values())
    report = grade_class(tmp_path / "subs", tmp_path / "out", jobs=2, progress=False)
    assert sorted(report.graded) == sorted((s, UNIT) for s in students if f"{s}/{UNIT}" not in ledger)
    full = report.scores["s0", UNIT][1]
    assert all(report.scores[s, UNIT][0] == full for s in students if s != "s_wrong")
    assert report.scores["s_wrong", UNIT][0] < full
    keys = [(r["student_id"], r["cell"]) for r in read_csv(report.cells_csv)]
    assert len(keys) == len(set(keys)) == len(students) * len(samples.test_cells(solved()))
    assert _submissions_in(report.db_url) == sorted((s, UNIT) for s in students)  # one each, none twice
    if moment != "saving 2":
        return
    again = grade_class(tmp_path / "subs", tmp_path / "out", jobs=2, progress=False)
    assert again.graded == [] and again.scores == report.scores
    samples.write_class(tmp_path / "subs", {"s1": {UNIT: samples.student_notebook(ROOT, UNIT, wrong)}})
    changed = grade_class(tmp_path / "subs", tmp_path / "out", jobs=2, progress=False)
    assert changed.graded == [("s1", UNIT)] and changed.scores["s1", UNIT][0] < full


def _submissions_in(db_url):
    from nbgrader.api import Gradebook, SubmittedAssignment

    with Gradebook(db_url) as gradebook:
        return sorted((a.student.id, a.assignment.name) for a in gradebook.db.query(SubmittedAssignment))


def gradebook_rows(db_url):
    """Everything autograde writes into a gradebook, by student, unit, notebook and cell (no row ids)."""
    from nbgrader.api import Gradebook, SubmittedAssignment

    from course_grading.pipeline.cluster import SCORED

    rows = {}
    with Gradebook(db_url) as gradebook:
        for submission in gradebook.db.query(SubmittedAssignment):
            key = (submission.student.id, submission.assignment.name)
            assert key not in rows, f"{key} twice"
            rows[key] = {"timestamp": submission.timestamp, "seconds_late": submission.total_seconds_late,
                         "score": submission.score, "needs_manual_grade": submission.needs_manual_grade}
            for notebook in submission.notebooks:
                rows[key][notebook.name] = {"flagged": notebook.flagged, "score": notebook.score,
                                            "late_submission_penalty": notebook.late_submission_penalty}
                for kind, fields in SCORED.items():
                    for item in getattr(notebook, kind):
                        rows[key][notebook.name][kind, item.name] = {f: getattr(item, f) for f in fields}
    return rows


def test_parallel_grades_equal_plain_sequential_nbgrader_also_after_a_resumed_run(tmp_path):
    """Every row autograde writes (scores, comments, flags, times, late penalties), on the solution, the
    stub, two wrong answers, a late submission and one without a time; then again after a resumed run."""
    bank = variants(UNIT)[:2]  # two wrong answers, with the solution and the stub
    students = {"full": {UNIT: solved()}, "stub": {UNIT: samples.student_notebook(ROOT, UNIT, solved=False)},
                "late": {UNIT: samples.student_notebook(ROOT, UNIT, bank[0])}}
    students.update({f"v{i}": {UNIT: samples.student_notebook(ROOT, UNIT, v)} for i, v in enumerate(bank)})
    samples.write_class(tmp_path / "subs", students)
    for student in students:
        if student != "full":  # a submission without timestamp.txt keeps no time, as in nbgrader
            late = student == "late"
            (tmp_path / "subs" / student / UNIT / "timestamp.txt").write_text(
                "2027-03-01 10:00:00.000000 UTC" if late else "2027-01-20 09:30:00.000000 UTC")
    report = grade_class(tmp_path / "subs", tmp_path / "ours", jobs=2, progress=False)
    plain_nbgrader_autograde(tmp_path / "subs", tmp_path / "plain", ROOT, [UNIT])
    plain = gradebook_rows(f"sqlite:///{tmp_path / 'plain' / 'gradebook.db'}")
    assert set(plain) == {(s, UNIT) for s in students}
    assert plain[("late", UNIT)]["seconds_late"] > 0 and plain[("late", UNIT)][UNIT]["late_submission_penalty"]
    assert gradebook_rows(report.db_url) == plain

    ledger_path = tmp_path / "ours" / "ledger.json"  # the gradebook has them, the ledger lost them
    ledger = json.loads(ledger_path.read_text())
    for student in ("full", "late"):
        del ledger[f"{student}/{UNIT}"]
    ledger_path.write_text(json.dumps(ledger))
    resumed = grade_class(tmp_path / "subs", tmp_path / "ours", jobs=2, progress=False)
    assert sorted(resumed.graded) == [("full", UNIT), ("late", UNIT)]
    assert gradebook_rows(report.db_url) == plain
    assert samples.read(tmp_path / "ours" / "autograded" / "late" / UNIT / f"{UNIT}.ipynb").cells


def test_build_rewrites_only_what_changed_and_drops_stale_files(tmp_path):
    """Tests and Formgrader read release/ while it is rebuilt: a file is never missing, only replaced."""
    release = tmp_path / "release"
    generate_release(release, only=[UNIT])
    notebook = release / UNIT / f"{UNIT}.ipynb"
    inode = notebook.stat().st_ino
    generate_release(release, only=[UNIT])
    assert notebook.stat().st_ino == inode  # unchanged, so left alone
    (release / UNIT / "stale.txt").write_text("from an older build")
    notebook.write_text("{}")
    generate_release(release, only=[UNIT])
    assert not (release / UNIT / "stale.txt").exists()
    assert json.loads(notebook.read_text())["cells"]


def test_cli_build_verify_and_publish(tmp_path):
    env = dict(os.environ)
    run = lambda *args: subprocess.run([sys.executable, "-m", "course_grading", *args], cwd=ROOT, env=env,
                                       capture_output=True, text=True, timeout=900)
    built = run("build")
    assert built.returncode == 0, built.stderr
    assert release_differences() == []
    published = run("publish", str(tmp_path / "edition"))
    assert published.returncode == 0 and "student edition" in published.stdout
    verified = run("verify", "--units", UNIT[:2])  # the bank class grades every unit's solution and stub
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "course verified" in verified.stdout


def test_demo_grades_the_sample_class_as_described(tmp_path):
    """The README's main job: every situation of the sample class lands where it should (on the first
    two units and the last, where the sample class puts its situations; the bank class grades every unit)."""
    from course_grading.tools.demo import run_demo

    every = units()
    report, problems = run_demo(tmp_path / "demo", progress=False, only=(every[0], every[1], every[-1]))
    assert report.units == [every[0], every[1], every[-1]]
    assert problems == []
    total = {s: sum(report.scores[s, u][0] for u in report.units) for s in report.students}
    full = sum(report.scores["ada_full_solution", u][1] for u in report.units)
    notes = {s: "; ".join(p for u in report.units for p in report.problems.get((s, u), [])) for s in report.students}
    assert total["ada_full_solution"] == full and total["ben_unchanged_release"] == 0
    for student in ("cara_classic_bugs", "dan_more_bugs", "eve_exception", "finn_infinite_loop"):
        assert 0 < total[student] < full, student
    assert "edited" in notes["gus_edited_tests"] and total["gus_edited_tests"] < full
    assert "malformed" in notes["hana_malformed"]
    assert "restored" in notes["ivy_deleted_test"] and total["ivy_deleted_test"] == full
    assert "not submitted" in notes["jon_missing_notebook"]  # he handed in a PDF: collect names it
    collected = (tmp_path / "demo" / "submissions" / "collect_report.csv").read_text()
    assert "missingnotebookjon" in collected and "not a notebook (.pdf)" in collected
    assert "handed in together with" in collected and "Copy of" in collected
    rows = {r["student_id"]: r for r in read_csv(report.grades_csv)}
    assert float(rows["dan_more_bugs"]["late_penalty"]) > 0 and "late by" in notes["dan_more_bugs"]
    assert float(rows["dan_more_bugs"]["total"]) == float(rows["dan_more_bugs"]["raw_total"]) - float(
        rows["dan_more_bugs"]["late_penalty"])
    assert (tmp_path / "demo" / "grading" / "grades.csv").exists()
    assert (tmp_path / "demo" / "grading" / "canvas_grades.csv").exists()
    assert len(zipfile.ZipFile(tmp_path / "demo" / "grading" / "canvas_feedback.zip").namelist()) > 20
    assert list((tmp_path / "demo" / "grading" / "feedback").glob("*/*/*.html"))


def test_feedback_templates_compile_once_and_render_the_same(monkeypatch):
    import jinja2
    from nbconvert.exporters import HTMLExporter

    from course_grading.pipeline.feedback import CachedHTMLExporter

    compiled = []
    compile_template = jinja2.Environment.compile

    def counting_compile(self, *args, **kwargs):
        compiled.append(args[0][:20])
        return compile_template(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting_compile)
    nb = samples.read(ROOT / "release" / UNIT / f"{UNIT}.ipynb")
    plain = HTMLExporter().from_notebook_node(nb)[0]
    first = CachedHTMLExporter().from_notebook_node(nb)[0]
    after_first = len(compiled)
    second = CachedHTMLExporter().from_notebook_node(nb)[0]
    assert after_first and len(compiled) == after_first, "the second render compiled its templates again"
    assert plain == first == second


def test_new_gradebooks_are_stamped_with_the_revision_alembic_names(tmp_path):
    """course.alembic_head, read with alembic's API in this process, is the revision nbgrader's own
    get_alembic_version asks the `alembic heads` command for; a gradebook made through the course's
    nbgrader API carries it."""
    from nbgrader.api import Gradebook
    from nbgrader.dbutil import _temp_alembic_ini
    from sqlalchemy import text

    from course_grading.course import alembic_head, nbgrader_api

    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        heads = subprocess.check_output([str(Path(sys.executable).parent / "alembic"), "-c", ini, "heads"])
    assert alembic_head() == heads.decode().split()[0]
    with Gradebook(nbgrader_api(tmp_path).coursedir.db_url) as gradebook:
        stamped = gradebook.db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert stamped == alembic_head()


def test_worker_templates_are_made_once_per_course_version_and_kept(tmp_path, monkeypatch):
    """A worker's course template of a unit is kept in the user's private cache and found by later workers
    and runs of the same course version; templates of other versions go when untouched for two weeks."""
    from course_grading.pipeline import cluster

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    version = cluster.course_digest()
    cluster._template.cache_clear()
    try:
        first = cluster._template(UNIT, version)
        home = tmp_path / "nn-course" / "templates"
        assert first.parent.parent == home and home.stat().st_mode & 0o777 == 0o700
        made = (first / "gradebook.db").stat().st_mtime_ns
        cluster._template.cache_clear()  # as a worker of a later run
        assert cluster._template(UNIT, version) == first
        assert (first / "gradebook.db").stat().st_mtime_ns == made, "the template was made again"
        old, recent = home / "0123456789abcdef-nbgrader-0", home / "fedcba9876543210-nbgrader-0"
        old.mkdir()
        recent.mkdir()
        os.utime(old, (0, 0))
        cluster._template(UNIT, "f" * 64)  # another course version: made, and the old one removed
        assert not old.exists() and recent.exists() and first.exists()
    finally:
        cluster._template.cache_clear()
