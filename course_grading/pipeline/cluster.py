"""Grading on Dask: the coordinator's client (a LocalCluster, or an existing scheduler by address), the
check that every worker runs this course version, the task a worker runs, and how its result is saved.

A task is one (student, unit): it carries the submission's bytes, so workers share no filesystem with
the coordinator. The worker autogrades it with nbgrader, sandboxed and judged, in a throwaway course
directory and gradebook, and returns what nbgrader scored there (per cell, with the submission's time),
the autograded folder, the feedback files and the incidents. The coordinator, the only writer of OUT,
checks that the result is of the submission and course version it sent, and writes the scores into the
real gradebook (SQLite or PostgreSQL) through nbgrader's Gradebook API, a batch per transaction, with
nbgrader's AssignLatePenalties step: the rows a local `nbgrader autograde` would write (tested).
"""
import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from course_grading.pipeline import sandbox, warm
from course_grading.course import ROOT, nbgrader_api


class GradingRefused(RuntimeError):
    """`course grade` cannot start; the message says why in one sentence."""


def course_digest(root=ROOT):
    """sha256 over course_grading, course_utils's code, source/ and nbgrader_config.py: the course version."""
    root = Path(root)
    files = [root / "nbgrader_config.py", *(root / "course_utils").rglob("*.py"),
             *(root / "course_grading").rglob("*.py"), *(root / "source").rglob("*")]
    h = hashlib.sha256()
    for path in sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts
                       and ".ipynb_checkpoints" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _sandbox_here():
    """(why not, which bubblewrap) on this machine, asked once per process."""
    return sandbox.available(), sandbox.bwrap()[1]


def worker_info():
    """What the coordinator asks every worker before grading."""
    why_not, which = _sandbox_here()
    return {"digest": course_digest(), "sandbox": f"cannot sandbox: {why_not}" if why_not else which}


def _log_stderr_to(path):
    """LocalCluster workers: kernel chatter and worker logs go to OUT/autograde.log, not the terminal."""
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 2)
    os.close(log)


def dask_setup(worker):
    """Preloaded by LocalCluster workers (a restarted one too): they log to OUT/autograde.log, and ignore
    Ctrl-C, which reaches the terminal's whole process group: the coordinator alone answers it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _log_stderr_to(os.environ["COURSE_GRADE_LOG"])


_CTRL_C = {"deferred": 0, "pending": False}


def _on_ctrl_c(signum, frame):
    if _CTRL_C["deferred"]:
        _CTRL_C["pending"] = True
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_handled():
    """Within this block Ctrl-C raises KeyboardInterrupt at once, except inside `ctrl_c_deferred()`.
    (nbgrader's API turns a KeyboardInterrupt into a failed result, so grading would go on.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _CTRL_C.update(deferred=0, pending=False)


@contextlib.contextmanager
def ctrl_c_deferred():
    """Ctrl-C inside this block (cluster start and stop, saving a result) takes effect as it ends: a result
    is saved whole or not at all, and no worker is left half-started."""
    _CTRL_C["deferred"] += 1
    try:
        yield
    finally:
        _CTRL_C["deferred"] -= 1
        if not _CTRL_C["deferred"] and _CTRL_C["pending"]:
            _CTRL_C["pending"] = False
            raise KeyboardInterrupt


def reached(stage):
    """Tests stop `course grade` at a stage they name in $COURSE_GRADE_CTRL_C_AT ("cluster start",
    "saving 3": the third result), with SIGINT to the process group, as a terminal's Ctrl-C."""
    if os.environ.get("COURSE_GRADE_CTRL_C_AT") == stage:
        os.killpg(os.getpgrp(), signal.SIGINT)


@contextlib.contextmanager
def _stderr_to(path):
    """This process's stderr goes to `path` meanwhile (processes started now inherit it)."""
    saved = os.dup(2)
    _log_stderr_to(path)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def connect(scheduler, jobs, log):
    """A Dask client: on the scheduler at `scheduler` (an address, or a Client the caller made and keeps,
    e.g. Dask Gateway's), else on a LocalCluster of `jobs` one-thread workers (started and closed whole
    even when Ctrl-C comes meanwhile)."""
    import dask
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, ValueError, TimeoutError) as error:
            raise GradingRefused(f"cannot reach the Dask scheduler at {scheduler} ({type(error).__name__}); "
                                 "is `dask scheduler` running there and reachable from here?") from None
        try:  # closed, not left as a context: the caller may leave in another thread than it entered
            yield client
        finally:
            client.close()
        return
    stack = contextlib.ExitStack()
    client = None
    try:
        with ctrl_c_deferred(), _stderr_to(log):  # workers log there from their first line
            # Dask's scratch folders (scheduler, nannies, workers) go where they are removed with the cluster
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="course-dask-"))
            stack.enter_context(dask.config.set({"temporary-directory": scratch}))
            # no memory limit per worker: the sandbox limits each kernel, the judge needs torch
            cluster = stack.enter_context(LocalCluster(
                n_workers=max(1, jobs), threads_per_worker=1, memory_limit=0, silence_logs=logging.ERROR,
                preload=[__name__], env={"COURSE_GRADE_LOG": str(log)}))
            reached("cluster start")
            client = Client(cluster)
            stack.callback(client.close)
        yield client
    finally:
        with ctrl_c_deferred():
            if client is not None:
                with contextlib.suppress(Exception):
                    client.run(_stop_grading)
            stack.close()


@contextlib.contextmanager
def connecting(scheduler, jobs, log, early):
    """`connect` for a caller that may not need a client: yields a function that returns the client (or
    raises why there is none). With `early` the cluster starts at once, in a thread, while the caller goes
    on (a first run sets its gradebook up meanwhile); else at the first call. Closed on leaving."""
    stack = contextlib.ExitStack()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="course-cluster")
    started = None

    def start():
        nonlocal started
        started = started or pool.submit(stack.enter_context, connect(scheduler, jobs, log))
        return started

    if early:
        start()
    try:
        yield lambda: start().result()
    finally:
        with ctrl_c_deferred():
            pool.shutdown(wait=True)  # a cluster still starting is started whole, then closed
            stack.close()
        if started and isinstance(started.exception(), KeyboardInterrupt):  # Ctrl-C while it started
            raise KeyboardInterrupt


async def _stop_grading(dask_worker):
    """On each LocalCluster worker before the cluster closes: end its sandboxes (a notebook still being
    graded, after Ctrl-C, fails at once) and wait for its task, so that the worker ends by itself, its
    folders removed, before the nanny would kill it."""
    warm.close_all()
    deadline = time.monotonic() + 30
    while dask_worker.state.executing_count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def dashboard(client):
    """The dashboard's address, or how to get one."""
    try:
        return client.dashboard_link
    except (KeyError, AttributeError):
        return "not served (install bokeh>=3.1 where the scheduler runs)"


def check_workers(client, version):
    """{worker address: its sandbox}; refuses when there is no worker or one runs another course version."""
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError:
        raise GradingRefused("the Dask scheduler has had no workers for 60 s: start some "
                             "(dask worker ADDRESS)") from None
    infos = client.run(worker_info)
    other = sorted(address for address, info in infos.items() if info["digest"] != version)
    if other:
        raise GradingRefused(f"worker(s) {', '.join(other)} run a different version of the course than "
                             f"this one (digest {infos[other[0]]['digest'][:12]}, here {version[:12]}): "
                             "install the same commit of the course on every worker")
    return {address: info["sandbox"] for address, info in infos.items()}


def task(out, student, unit, version, judge):
    """The payload of one grading task: the repaired submission's files and the settings."""
    folder = Path(out) / "submitted" / student / unit
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}
    return {"student": student, "unit": unit, "files": files, "version": version, "judge": judge}


def _templates_home():
    """This user's folder of course templates: $XDG_CACHE_HOME/nn-course/templates (~/.cache/...), private;
    a folder of this process's where there is no writable home (removed when the process ends)."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nn-course" / "templates"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if home.stat().st_uid == os.getuid() and os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    global _SCRATCH
    _SCRATCH = _SCRATCH or tempfile.TemporaryDirectory(prefix="course-templates-")
    return Path(_SCRATCH.name)


_SCRATCH = None  # templates of this process alone, where the user has no writable home
KEPT_DAYS = 14  # templates of other course versions untouched this long are removed


@functools.lru_cache(maxsize=None)
def _template(unit, version):
    """A course directory holding `unit` generated into its own gradebook: made once per course version,
    nbgrader version and machine user, and kept for later workers and runs (a worker that finds none makes
    it aside and renames it into place, so workers starting together never see half of one)."""
    import nbgrader

    home = _templates_home()
    folder = home / f"{version[:16]}-nbgrader-{nbgrader.__version__}"
    course = folder / unit
    if not course.is_dir():  # renamed into place whole, or not there
        folder.mkdir(exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{unit}-", dir=folder))
        try:
            shutil.copytree(ROOT / "source" / unit, building / "source" / unit)
            result = nbgrader_api(building).generate_assignment(unit, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"this worker could not set up {unit}: {last_line(result.get('error'))}")
            with contextlib.suppress(OSError):  # another worker's may be in place already: theirs stays
                os.rename(building, course)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        _forget_old_templates(home, keep=folder)
    os.utime(folder)  # in use: not removed as old
    return course


def _forget_old_templates(home, keep):
    for other in home.iterdir():
        if other != keep and other.is_dir() and time.time() - other.stat().st_mtime > KEPT_DAYS * 86400:
            shutil.rmtree(other, ignore_errors=True)


def last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def grade_submission(work):
    """Runs on a worker: autograde one submission in a throwaway course directory; return what it made."""
    start = time.perf_counter()
    if work["version"] != course_digest():
        raise RuntimeError("this worker runs a different version of the course (digest "
                           f"{course_digest()[:12]}, coordinator {work['version'][:12]})")
    why_not = work["judge"]["sandboxed"] and _sandbox_here()[0]
    if why_not:
        raise RuntimeError(f"this worker cannot sandbox kernels: {why_not}")
    student, unit = work["student"], work["unit"]
    with tempfile.TemporaryDirectory(prefix="course-task-", dir=_worker_folder()) as scratch:
        course = Path(scratch) / "course"
        shutil.copytree(_template(unit, work["version"]), course)
        folder = course / "submitted" / student / unit
        folder.mkdir(parents=True)
        for name, data in work["files"].items():
            (folder / Path(name).name).write_bytes(data)
        api = nbgrader_api(course, judge={**work["judge"], "incidents_dir": str(course / "incidents")})
        result = api.autograde(unit, student, force=True, create=True)
        outcome = {"success": result["success"],
                   "error": "" if result["success"] else last_line(result.get("error"))}
        if result["success"]:
            outcome["scores"] = scores_of(api.coursedir.db_url, unit, student)
            outcome["autograded"] = _files(course / "autograded" / student / unit)
            feedback = api.generate_feedback(unit, student, force=True)
            if not feedback["success"]:
                outcome["warning"] = "feedback failed: " + last_line(feedback.get("error"))
            outcome["feedback"] = _files(course / "feedback" / student / unit)
        incidents = course / "incidents" / student / f"{unit}.json"
        outcome["incidents"] = incidents.read_text() if incidents.exists() else None
    outcome.update(seconds=time.perf_counter() - start, graded=files_digest(work["files"]), version=course_digest())
    return outcome


def _worker_folder():
    """The Dask worker's own folder (outside a worker, the system's temporary folder): a task's scratch
    there goes even when the nanny kills the worker amid it, with the LocalCluster's scratch folder or when
    Dask purges its workspace."""
    from distributed import get_worker

    try:
        return get_worker().local_directory
    except ValueError:
        return None


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} \
        if folder.is_dir() else {}


# what nbgrader's autograde writes into a gradebook per cell, besides the rows add_submission makes
SCORED = {"grades": ("auto_score", "manual_score", "extra_credit", "needs_manual_grade"),
          "comments": ("auto_comment", "manual_comment")}


def files_digest(files):
    """sha256 of a task's {name: bytes}: the worker says which submission it graded."""
    h = hashlib.sha256()
    for name, data in sorted(files.items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def scores_of(db_url, unit, student):
    """Worker: what autograde scored into its throwaway gradebook for one submission, as plain data
    (late penalties are left to the coordinator, whose gradebook knows due dates and extensions)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(unit, student)
        return {"timestamp": submission.timestamp, "notebooks": {
            notebook.name: {"flagged": notebook.flagged, **{
                kind: {item.name: {f: getattr(item, f) for f in fields} for item in getattr(notebook, kind)}
                for kind, fields in SCORED.items()}}
            for notebook in submission.notebooks}}


def late_penalties(out, db_url):
    """Coordinator: nbgrader's AssignLatePenalties as nbgrader_config.py configures it (its plugin)."""
    from nbgrader.preprocessors import AssignLatePenalties

    late = AssignLatePenalties(config=nbgrader_api(out, db_url=db_url).config)
    late.init_plugin()
    return late


def record(gradebook, student, unit, scores):
    """Coordinator: one worker's scores into the gradebook, as nbgrader's autograde writes them (its
    Autograde step's submission, SaveAutoGrades' cells); committed with the batch, then `penalize`."""
    if scores["timestamp"]:  # as Autograde: without a timestamp file the gradebook keeps its time
        submission = gradebook.update_or_create_submission(unit, student, timestamp=scores["timestamp"])
    else:
        submission = gradebook.update_or_create_submission(unit, student)
    theirs = scores["notebooks"]
    if {nb.name: {kind: {item.name for item in getattr(nb, kind)} for kind in SCORED}
            for nb in submission.notebooks} != {name: {kind: set(nb[kind]) for kind in SCORED}
                                                for name, nb in theirs.items()}:
        raise ValueError("the worker scored other cells than this assignment's")
    for notebook in submission.notebooks:
        notebook.flagged = theirs[notebook.name]["flagged"]
        for kind, fields in SCORED.items():
            for item in getattr(notebook, kind):
                for field in fields:
                    setattr(item, field, theirs[notebook.name][kind][item.name][field])


def penalize(gradebook, late, student, unit):
    """AssignLatePenalties' step for one recorded submission (its scores flushed)."""
    submission = gradebook.find_submission(unit, student)
    for notebook in submission.notebooks:
        notebook.late_submission_penalty = None
        if submission.total_seconds_late > 0:
            penalty = late.plugin_inst.late_submission_penalty(student, notebook.score,
                                                               submission.total_seconds_late)
            if penalty is not None:
                notebook.late_submission_penalty = late._check_late_penalty(notebook, penalty)


def write_files(out, student, unit, outcome):
    """Coordinator: the incidents, and the autograded folder and feedback of a graded notebook, into OUT
    (a failed task leaves those of an earlier grading, which the gradebook still holds)."""
    out = Path(out)
    incidents = out / "incidents" / student / f"{unit}.json"
    if outcome.get("incidents"):
        incidents.parent.mkdir(parents=True, exist_ok=True)
        incidents.write_text(outcome["incidents"])
    for kind in ("autograded", "feedback") if outcome["success"] else ():
        folder = out / kind / student / unit
        shutil.rmtree(folder, ignore_errors=True)
        for name, data in outcome.get(kind, {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
