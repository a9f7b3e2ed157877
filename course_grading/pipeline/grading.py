"""`course grade`: autograde a class in parallel through nbgrader, resumably, then feedback and CSVs.

SUBMISSIONS is laid out as nbgrader's submitted/ folder: SUBMISSIONS/<student>/<unit>/<unit>.ipynb.
Each (student, unit) is one Dask task (course_grading.pipeline.cluster), on a LocalCluster or an existing
scheduler; this process is the only writer of OUT and the gradebook. OUT becomes an nbgrader course
directory (source/, submitted/, autograded/, feedback/, the gradebook) plus grades.csv,
cell_grades.csv and ledger.json, which records what has been graded from which submission bytes so
that a rerun grades only what is missing or changed.
"""
import csv
import hashlib
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import SAWarning

from course_grading.pipeline import cluster, intake, sandbox, summary
from course_grading import samples
from course_grading.pipeline.cluster import GradingRefused
from course_grading.pipeline.late import duedates
from course_grading.course import ROOT, nbgrader_api, units as course_units


@dataclass
class ClassReport:
    out: Path
    students: list
    units: list
    scores: dict = field(default_factory=dict)      # (student, unit) -> (score, max_score)
    problems: dict = field(default_factory=dict)    # (student, unit) -> [text]
    penalties: dict = field(default_factory=dict)   # (student, unit) -> late penalty taken off the score
    graded: list = field(default_factory=list)      # (student, unit) graded in this run
    todo: list = field(default_factory=list)        # (student, unit) this run had to grade
    rejected: dict = field(default_factory=dict)    # folder name -> why it was not graded
    db_url: str = ""
    sandboxed: bool = True
    seconds: float = 0.0

    @property
    def grades_csv(self):
        return self.out / "grades.csv"

    @property
    def cells_csv(self):
        return self.out / "cell_grades.csv"

    @property
    def feedback_dir(self):
        return self.out / "feedback"


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


def write_atomically(path, text):
    """Write `path` through a temporary file renamed over it: a reader never finds it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json_atomically(path, data):
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True))


class SandboxUnavailable(GradingRefused):
    """Untrusted notebooks would run with the instructor's powers: refuse unless told otherwise."""


class GradingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the message says what was graded and saved, and that the same command resumes."""


def _judge_settings(sandboxed, cell_timeout=None):
    settings = {"sandboxed": sandboxed}
    return settings if cell_timeout is None else {**settings, "timeout": cell_timeout}


def prepare(out, root, units, db_url):
    """Set up OUT as a course directory with every assignment in its gradebook."""
    out.mkdir(parents=True, exist_ok=True)
    api = nbgrader_api(out, db_url=db_url)
    gradebook = api.gradebook
    try:
        known = {a.name for a in gradebook.assignments}
    finally:
        gradebook.close()
    for unit in units:
        src = Path(root) / "source" / unit
        dst = out / "source" / unit
        if dst.exists() and not samples.read(dst / f"{unit}.ipynb") == samples.read(src / f"{unit}.ipynb"):
            shutil.rmtree(dst)
        if not dst.exists() or unit not in known:
            shutil.copytree(src, dst, dirs_exist_ok=True)
            with cluster.ctrl_c_deferred():  # nbgrader's API would take Ctrl-C for a failure
                result = api.generate_assignment(unit, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"could not set up {unit} in the gradebook:\n{result.get('error', '')}")
    gradebook = api.gradebook
    try:  # nbgrader_config.py's due dates, for AssignLatePenalties
        for unit, due in duedates(root).items():
            if unit in units:
                gradebook.update_or_create_assignment(unit, duedate=due)
    finally:
        gradebook.close()


def register_students(students, db_url, identities=None):
    """Create the students with their names and LMS ids where `course collect` recorded them
    ({student: {first_name: ...}})."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        for student in sorted(students):
            gradebook.update_or_create_student(student, **(identities or {}).get(student, {}))


def intake_class(submissions, out, units, report):
    """Copy repaired submissions into OUT/submitted; return {(student, unit): digest} of gradable ones."""
    gradable = {}
    for student in report.students:
        for unit in units:
            folder = submissions / student / unit
            target = out / "submitted" / student / unit
            if folder.is_symlink() or not folder.is_dir():
                report.problems[student, unit] = ["a symbolic link, not a folder (not graded)"
                                                  if folder.is_symlink() else "not submitted"]
                shutil.rmtree(target, ignore_errors=True)
                continue
            nb, reason = intake.read_submission(folder / f"{unit}.ipynb")
            if nb is None:
                report.problems[student, unit] = [reason]
                shutil.rmtree(target, ignore_errors=True)
                continue
            release = samples.read(out / "release" / unit / f"{unit}.ipynb")
            nb, problems = intake.repair(nb, release)
            report.problems[student, unit] = problems
            target.mkdir(parents=True, exist_ok=True)
            for extra in folder.iterdir():  # data files a student handed in beside the notebook
                if extra.is_symlink():
                    problems.append(f"symbolic link {ascii(extra.name)[1:-1]} ignored (review by hand)")
                elif extra.is_file() and extra.name != f"{unit}.ipynb":
                    shutil.copyfile(extra, target / extra.name)
            text = json.dumps(nb, sort_keys=True)
            stamp = folder / "timestamp.txt"  # nbgrader's submission time: a changed one is graded again
            if not stamp.is_file() or stamp.is_symlink():
                (target / "timestamp.txt").unlink(missing_ok=True)
            times = [(target / "timestamp.txt").read_bytes()] if (target / "timestamp.txt").exists() else []
            source = (out / "source" / unit / f"{unit}.ipynb").read_bytes()
            gradable[student, unit] = _digest(text, source, *times)
            if not (target / f"{unit}.ipynb").exists() or samples.read(target / f"{unit}.ipynb") != nb:
                samples.write(nb, target / f"{unit}.ipynb")
    return gradable


def student_folders(submissions):
    """({valid student id: folder}, {rejected name: why}) of a submissions folder."""
    students, rejected = {}, {}
    for path in sorted(Path(submissions).iterdir()):
        if path.name in (".git", ".ipynb_checkpoints", ".DS_Store"):
            continue
        if path.is_symlink():
            rejected[path.name] = "a symbolic link, not a folder (not graded)"
        elif not path.is_dir():
            continue
        elif not intake.STUDENT_ID.fullmatch(path.name):
            rejected[path.name] = ("folder name is not a valid student id (letters, digits and _.@+- only, "
                                   "at most 64; not graded)")
        else:
            students[path.name] = path
    return students, rejected


def grade_class(submissions, out, jobs=2, db_url=None, root=ROOT, only=(), progress=True, unsandboxed=False,
                cell_timeout=None, scheduler=None):
    """Grade every student folder in `submissions` into `out`; return a ClassReport.

    The notebooks are graded by the Dask scheduler at `scheduler`'s workers, else by a LocalCluster of
    `jobs` workers. Kernels run sandboxed (course_grading.pipeline.sandbox); where no sandbox can be made here,
    grading is refused unless `unsandboxed` is given, and every row then says it was graded
    unsandboxed (a remote worker that cannot sandbox fails its tasks, with the reason in the problems
    column). `cell_timeout` overrides nbgrader_config.py's per-cell limit (seconds).
    """
    start = time.perf_counter()
    why_not = "" if scheduler else sandbox.available()
    if why_not and not unsandboxed:
        raise SandboxUnavailable(f"cannot sandbox the students' kernels: {why_not}. Grading untrusted "
                                 "notebooks without a sandbox gives their code your powers; pass --unsandboxed "
                                 "only for trusted submissions.")
    sandboxed = not why_not and not unsandboxed
    if progress and not scheduler:
        print(f"sandbox: {sandbox.bwrap()[1] if sandboxed else 'none (--unsandboxed)'}", flush=True)
        for note in sandbox.unenforced_budgets() if sandboxed else ():
            print(f"notice: {note}", flush=True)
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    units = course_units(root, only)
    folders, rejected = student_folders(submissions)
    db_url = db_url or os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{out / 'gradebook.db'}"
    report = ClassReport(out=out, students=sorted(folders), units=units, rejected=rejected, sandboxed=sandboxed,
                         db_url=db_url)
    try:
        with cluster.ctrl_c_handled():
            judge = _judge_settings(sandboxed, cell_timeout)
            _grade(submissions, report, root, jobs, scheduler, progress, judge)
    except KeyboardInterrupt:
        left = len(report.todo) - len(report.graded)
        raise GradingInterrupted(
            f"interrupted: {len(report.graded)} notebook(s) graded and saved in {out} by this run"
            + (f", {left} left" if report.todo else "") + "; the same command grades the rest") from None
    report.seconds = time.perf_counter() - start
    return report


def _grade(submissions, report, root, jobs, scheduler, progress, judge):
    out, db_url = report.out, report.db_url
    out.mkdir(parents=True, exist_ok=True)
    first_run = not (out / "ledger.json").exists()  # its cluster starts while the gradebook is set up
    with cluster.connecting(scheduler, jobs, out / "autograde.log", early=first_run) as client:
        ledger = _grade_todo(submissions, report, root, client, scheduler, progress, judge)
    for key, entry in ledger.items():
        student, unit = key.split("/")
        for note in ("error", "warning"):
            if entry.get(note):
                report.problems.setdefault((student, unit), []).append(f"autograde: {entry[note]}")
        incidents = out / "incidents" / student / f"{unit}.json"
        if incidents.exists():
            recorded = json.loads(incidents.read_text())
            report.problems.setdefault((student, unit), []).extend(recorded["incidents"])
            if not recorded.get("sandboxed", True):
                report.problems[student, unit].append("graded unsandboxed")
    collect_scores(report, db_url)
    with cluster.ctrl_c_deferred():  # never half-written
        write_csvs(report, db_url)


def _grade_todo(submissions, report, root, client, scheduler, progress, judge):
    """Set OUT up, take the class in, and grade what the ledger lacks on `client()` (of `scheduler`, or
    a LocalCluster); return the ledger."""
    out, units, db_url = report.out, report.units, report.db_url
    prepare(out, root, units, db_url)
    gradable = intake_class(submissions, out, units, report)
    register_students({student for student, _ in gradable}, db_url, intake.identities(submissions))

    ledger_path = out / "ledger.json"
    ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    todo = [key for key, digest in gradable.items()
            if ledger.get("/".join(key), {}).get("digest") != digest]
    stale = [k for k in ledger  # graded once, not gradable now (units left out of this run stay as they are)
             if k.split("/")[1] in units and tuple(k.split("/")) not in gradable]
    if stale:
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(db_url) as gradebook:
            for key in stale:
                student, unit = key.split("/")
                try:
                    gradebook.remove_submission(unit, student)
                except MissingEntry:
                    pass
                del ledger[key]
    _write_json_atomically(ledger_path, ledger)

    report.todo = todo
    if todo:
        for student, unit in todo:
            (out / "incidents" / student / f"{unit}.json").unlink(missing_ok=True)
        _grade_on_dask(todo, gradable, ledger, report, client(), remote=bool(scheduler), progress=progress,
                       judge=judge, version=cluster.course_digest(root))
    return ledger


def _grade_on_dask(todo, gradable, ledger, report, client, remote, progress, judge, version):
    """One task per (student, unit); results are saved here as they come, each batch of finished ones in
    one gradebook transaction, the ledger written after it."""
    from distributed import as_completed
    from nbgrader.api import Gradebook
    from tqdm.auto import tqdm

    out = report.out
    late = cluster.late_penalties(out, report.db_url)
    with Gradebook(report.db_url) as gradebook:
        sandboxes = cluster.check_workers(client, version)
        if progress:
            print(f"dask dashboard: {cluster.dashboard(client)}", flush=True)
            if remote:
                print("\n".join(f"worker {address}: {which}" for address, which in sorted(sandboxes.items())),
                      flush=True)
        futures = {}
        for student, unit in todo:
            work = cluster.task(out, student, unit, version, judge)
            futures[client.submit(cluster.grade_submission, work, pure=False)] = \
                (student, unit, cluster.files_digest(work["files"]))
        try:
            with tqdm(total=len(futures), desc="autograde", unit="notebook", disable=not progress) as bar:
                for batch in as_completed(futures).batches():
                    with cluster.ctrl_c_deferred():  # the gradebook and the ledger agree
                        save_results(gradebook, late, [(futures[f], _outcome(f)) for f in batch], gradable,
                                     ledger, report, version)
                    bar.update(len(batch))
        except BaseException:
            with cluster.ctrl_c_deferred():
                client.cancel(list(futures))
            raise


def _outcome(future):
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - the task failed on its worker: report, go on
        return {"success": False, "error": f"{type(error).__name__}: {cluster.last_line(str(error))}"}


def save_results(gradebook, late, results, gradable, ledger, report, version):
    """Workers' outcomes [((student, unit, digest of the files sent), outcome)] into the gradebook (one
    transaction), OUT and the ledger."""
    from nbgrader.api import InvalidEntry

    entries, scored = {}, []
    for (student, unit, sent), outcome in results:
        if outcome["success"] and (outcome["graded"], outcome["version"]) != (sent, version):
            outcome = {**outcome, "success": False, "error": "the worker graded another submission or "
                                                             "course version than it was sent"}
        if outcome["success"]:
            try:
                with warnings.catch_warnings():  # nbgrader's SQLAlchemy notes, as plain autograde prints them
                    warnings.simplefilter("ignore", SAWarning)
                    cluster.record(gradebook, student, unit, outcome["scores"])
                scored.append((student, unit))
            except (ValueError, InvalidEntry) as error:
                outcome = {**outcome, "success": False, "error": f"not recorded: {error}"}
        cluster.write_files(report.out, student, unit, outcome)
        entry = {"seconds": round(outcome.get("seconds", 0), 2)}
        if outcome["success"]:
            entry["digest"] = gradable[student, unit]
            if outcome.get("warning"):
                entry["warning"] = outcome["warning"]
        else:
            entry["error"] = outcome["error"]
        entries["/".join((student, unit))] = entry
        cluster.reached(f"saving {len(report.graded) + len(entries)}")
    gradebook.db.flush()
    gradebook.db.expire_all()  # the notebooks' scores, read again for the late penalties
    for student, unit in scored:
        cluster.penalize(gradebook, late, student, unit)
    gradebook.db.commit()
    ledger.update(entries)
    _write_json_atomically(report.out / "ledger.json", ledger)
    report.graded += [tuple(key.split("/")) for key in entries]


def collect_scores(report, db_url):
    """Scores from the gradebook for every (student, unit) of the report (0 when not graded)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gradebook:
        maxima = {a.name: a.max_score for a in gradebook.assignments}
        for student in report.students:
            for unit in report.units:
                try:
                    submission = gradebook.find_submission(unit, student)
                    penalty = submission.late_submission_penalty or 0.0
                    report.scores[student, unit] = (submission.score - penalty, submission.max_score)
                    report.penalties[student, unit] = penalty
                    if submission.total_seconds_late > 0:
                        report.problems.setdefault((student, unit), []).append(
                            f"late by {timedelta(seconds=round(submission.total_seconds_late))}: "
                            f"{penalty:g} of {submission.score:g} points off")
                    if submission.needs_manual_grade:
                        report.problems.setdefault((student, unit), []).append("needs manual grading")
                except MissingEntry:
                    report.scores[student, unit] = (0.0, maxima.get(unit, 0.0))


def cell_scores(gradebook, student, unit):
    """{grade_id: (score, max_score)} of one graded submission (MissingEntry when there is none)."""
    notebook = gradebook.find_submission_notebook(unit, unit, student)
    return {grade.name: (grade.score or 0.0, grade.max_score) for grade in notebook.grades}


def write_csvs(report, db_url):
    """grades.csv (a row per student: final score per unit, then raw total, late penalty, final total) and
    cell_grades.csv (a row per graded test cell, with the reason it lost points and the kind of mistake)."""
    from nbgrader.api import Gradebook, MissingEntry

    with open(report.grades_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student_id", *report.units, "raw_total", "late_penalty", "total", "max_total",
                         "problems"])
        for student in report.students:
            row = [report.scores[student, unit] for unit in report.units]
            penalty = sum(report.penalties.get((student, unit), 0.0) for unit in report.units)
            notes = "; ".join(f"{unit}: {p}" for unit in report.units for p in report.problems.get((student, unit), []))
            total = sum(s for s, _ in row)
            writer.writerow([student, *(f"{s:g}" for s, _ in row), f"{total + penalty:g}", f"{penalty:g}",
                             f"{total:g}", f"{sum(m for _, m in row):g}", notes])
        maxima = [max((m for (_, u), (_, m) in report.scores.items() if u == unit), default=0) for unit in report.units]
        for name, why in sorted(report.rejected.items()):
            writer.writerow([ascii(name)[1:-1][:80], *("0" for _ in report.units), "0", "0", "0",
                             f"{sum(maxima):g}", why])
    with open(report.cells_csv, "w", newline="") as f, Gradebook(db_url) as gradebook:
        writer = csv.writer(f)
        writer.writerow(["student_id", "unit", "cell", "score", "max_score", "reason", "mistake_key"])
        for student in report.students:
            for unit in report.units:
                try:
                    cells = cell_scores(gradebook, student, unit)
                except MissingEntry:
                    continue
                said = summary.messages(report.out / "autograded" / student / unit / f"{unit}.ipynb")
                for cell, (score, maximum) in sorted(cells.items()):
                    why = summary.reason(said.get(cell, ""), score, maximum)
                    writer.writerow([student, unit, cell, f"{score:g}", f"{maximum:g}", why,
                                     summary.mistake_key(cell, why)])


def _shown_url(url):
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def table(report):
    """The grade table as text, with where the results were written."""
    width = max([10, *map(len, report.students)])
    heads = [u[:2] for u in report.units]
    lines = [f"{'student':{width}}  " + "  ".join(f"{h:>6}" for h in heads) + "   total  problems"]
    for student in report.students:
        scores = [report.scores[student, u] for u in report.units]
        notes = "; ".join(f"{u[:2]}: {p}" for u in report.units for p in report.problems.get((student, u), []))
        lines.append(f"{student:{width}}  " + "  ".join(f"{s:6.1f}" for s, _ in scores)
                     + f"  {sum(s for s, _ in scores):6.1f}/{sum(m for _, m in scores):g}  {notes}")
    lines += [f"{ascii(name)[1:-1][:width]:{width}}  not graded: {why}" for name, why in sorted(report.rejected.items())]
    if not report.sandboxed:
        lines.append("WARNING: graded WITHOUT a sandbox (--unsandboxed): the students' code ran with your powers")
    lines += ["", f"grades:    {report.grades_csv}", f"per cell:  {report.cells_csv}",
              f"feedback:  {report.feedback_dir}/<student>/<unit>/<unit>.html",
              f"gradebook: {_shown_url(report.db_url)}",
              f"graded {len(report.graded)} notebook(s) in this run, {report.seconds:.1f} s"]
    return "\n".join(lines)
