"""`course bench`: the figures behind the budgets of COURSE_SPEC §6, measured on this machine."""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from sqlalchemy.exc import SAWarning

from course_grading import samples
from course_grading.pipeline import sandbox, warm
from course_grading.course import ROOT, units as course_units
from course_grading.tools.runner import course_notebooks, run_notebooks, time_table


def plain_nbgrader_autograde(submissions, course, root, units):
    """Seconds for plain sequential `nbgrader autograde UNIT` (one command per unit, whole class), the
    units' due dates set in its gradebook as an instructor would in Formgrader."""
    from nbgrader.api import Gradebook

    from course_grading.pipeline.late import duedates

    shutil.copytree(Path(root) / "source", course / "source")
    shutil.copytree(submissions, course / "submitted")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"]
    nbgrader = [sys.executable, "-m", "nbgrader"]
    for unit in units:
        subprocess.run([*nbgrader, "generate_assignment", unit, "--force", *config], cwd=root, env=env,
                       check=True, capture_output=True)
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gradebook:
        for unit, due in duedates(root).items():
            if unit in units:
                gradebook.update_or_create_assignment(unit, duedate=due)
    start = time.perf_counter()
    for unit in units:
        subprocess.run([*nbgrader, "autograde", unit, "--force", *config], cwd=root, env=env,
                       check=True, capture_output=True)
    return time.perf_counter() - start


def dask_scaling(submissions, scratch, root, only=()):
    """`course grade` of the same class on a Dask LocalCluster of 1 and of 2 workers: notebooks per second
    (cluster start and scoring included) and the scaling efficiency, rate with 2 / (2 x rate with 1)."""
    from course_grading.pipeline.grading import grade_class

    rates = {}
    for workers in (1, 2):
        report = grade_class(submissions, Path(scratch) / f"dask-{workers}", jobs=workers, root=root,
                             only=only, progress=False)
        rates[workers] = len(report.graded) / report.seconds
        print(f"LocalCluster, {workers} worker(s):         {rates[workers]:7.3f} notebooks/s")
        if workers == 1:  # a worker's busy time per notebook, and what the run spends besides
            busy = [e["seconds"] for e in json.loads((report.out / "ledger.json").read_text()).values()]
            worker_seconds = sum(busy) / len(busy)
            fixed = max(0.0, report.seconds - sum(busy))
    efficiency = rates[2] / (2 * rates[1])
    print(f"scaling efficiency, 1 -> 2 workers:   {efficiency:7.0%}")
    return {"notebooks_per_second_1_worker": rates[1], "notebooks_per_second_2_workers": rates[2],
            "scaling_efficiency": efficiency, "worker_seconds_per_notebook": worker_seconds,
            "fixed_seconds": fixed}
def recorded_outcomes(out, db_url=None):
    """The results a finished `course grade` folder holds, as its workers returned them:
    [(student, unit, outcome)]."""
    from course_grading.pipeline import cluster

    out = Path(out)
    db_url = db_url or f"sqlite:///{out / 'gradebook.db'}"
    version = cluster.course_digest()
    recorded = []
    for notebook in sorted((out / "autograded").glob("*/*/*.ipynb")):
        student, unit = notebook.parts[-3], notebook.parts[-2]
        files = cluster.task(out, student, unit, version, {})["files"]
        incidents = out / "incidents" / student / f"{unit}.json"
        recorded.append((student, unit, {
            "success": True, "error": "", "scores": cluster.scores_of(db_url, unit, student),
            "autograded": cluster._files(notebook.parent),
            "feedback": cluster._files(out / "feedback" / student / unit),
            "incidents": incidents.read_text() if incidents.exists() else None, "seconds": 0.0,
            "graded": cluster.files_digest(files), "version": version}))
    return recorded


def coordinator_rate(recorded, scratch, root=ROOT, copies=20, batch=8):
    """Notebooks per second the coordinator saves (check, gradebook, late penalty, files, ledger), fed the
    recorded results of `copies` x the class as fast as it takes them, `batch` finished at a time; each
    result is pickled and unpickled as Dask carries it, and its task made as for a worker. (per second
    of wall time, per CPU-second of this process: on a shared machine the second is the fair one)"""
    import pickle

    from nbgrader.api import Gradebook

    from course_grading.pipeline import cluster
    from course_grading.pipeline.grading import (ClassReport, intake_class, prepare, register_students,
                                                 save_results)

    out, submissions = Path(scratch) / "coordinator", Path(scratch) / "coordinator-class"
    units = sorted({unit for _, unit, _ in recorded})
    results = {}
    for copy in range(copies):
        for student, unit, outcome in recorded:
            results[f"{student}c{copy:03d}", unit] = outcome
    for (student, unit), outcome in results.items():
        folder = submissions / student / unit
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{unit}.ipynb").write_bytes(outcome["autograded"][f"{unit}.ipynb"])
    db_url = f"sqlite:///{out / 'gradebook.db'}"
    report = ClassReport(out=out, students=sorted({s for s, _ in results}), units=units, db_url=db_url)
    prepare(out, root, units, db_url)
    gradable = intake_class(submissions, out, units, report)
    register_students({s for s, _ in results}, db_url)
    version = cluster.course_digest(root)
    late = cluster.late_penalties(out, db_url)
    keys, ledger = sorted(results), {}
    start, cpu = time.perf_counter(), time.process_time()
    with Gradebook(db_url) as gradebook:
        for first in range(0, len(keys), batch):
            done = []
            for student, unit in keys[first:first + batch]:
                work = cluster.task(out, student, unit, version, {})
                outcome = pickle.loads(pickle.dumps({**results[student, unit],
                                                     "graded": cluster.files_digest(work["files"])}))
                done.append(((student, unit, outcome["graded"]), outcome))
            save_results(gradebook, late, done, gradable, ledger, report, version)
    return len(keys) / (time.perf_counter() - start), len(keys) / (time.process_time() - cpu)


def worker_profile(root, units, copies=3):
    """Where a worker's time goes per notebook, in seconds of wall time (one process; on a quiet machine
    about its CPU time): graded as a Dask worker grades them, `copies` full solutions of each unit after one
    that warms the worker up. {"total", "cells" (the kernel running them and the judge's hidden checks),
    "kernel" (starting, connecting and stopping it), "nbgrader" (autograde around the execution),
    "feedback" (its HTML), "rest" (copying files in and out, reading the scores), "beyond_cells_cpu" (CPU
    seconds of this process outside the cells; the forked kernel's own start adds about 0.1 s)}."""
    import collections
    from unittest import mock

    import nbformat
    from nbgrader.apps import NbGraderAPI

    from course_grading.pipeline import cluster
    from course_grading.pipeline.judge import JudgedExecute

    spent, totals = collections.Counter(), collections.Counter()

    def timed(owner, name, key):
        method = getattr(owner, name)

        def measured(*args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                spent[key + " cpu"] += time.process_time() - cpu
        return mock.patch.object(owner, name, measured)

    version, judge = cluster.course_digest(root), {"sandboxed": not sandbox.available()}
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())  # nbgrader's SQLAlchemy notes, as a worker's log has them
        warnings.simplefilter("ignore", SAWarning)
        for owner, name, key in [(cluster, "grade_submission", "total"), (NbGraderAPI, "autograde", "autograde"),
                                 (JudgedExecute, "preprocess", "judge"), (JudgedExecute, "preprocess_cell", "cells"),
                                 (NbGraderAPI, "generate_feedback", "feedback")]:
            stack.enter_context(timed(owner, name, key))
        for unit in units:
            files = {f"{unit}.ipynb": nbformat.writes(samples.student_notebook(root, unit)).encode()}
            for copy in range(copies + 1):
                outcome = cluster.grade_submission({"student": f"s{copy}", "unit": unit, "files": files,
                                                    "version": version, "judge": judge})
                assert outcome["success"], outcome["error"]
                if copy:  # the first warms the worker up (its template, zygote and imports)
                    totals.update(spent)
                spent.clear()
    each = {key: value / (copies * len(units)) for key, value in totals.items()}
    return {"total": each["total"], "cells": each["cells"], "kernel": each["judge"] - each["cells"],
            "nbgrader": each["autograde"] - each["judge"], "feedback": each["feedback"],
            "rest": each["total"] - each["autograde"] - each["feedback"],
            "beyond_cells_cpu": each["total cpu"] - each["cells cpu"]}


def projections(worker_seconds, coordinator, start_seconds):
    """{(notebooks, workers): seconds} of a cluster of workers of this machine's speed (each busy
    `worker_seconds` per notebook) behind this coordinator, plus the run's fixed start."""
    return {(n, w): start_seconds + n / min(w / worker_seconds, coordinator)
            for n in (3600, 90000) for w in (16, 128)}


def pool_start_seconds():
    """Seconds a grading worker's zygote takes to start in its sandbox, imports included."""
    zygote = warm.Zygote(sandbox.sandbox_uid())
    try:
        with tempfile.TemporaryDirectory() as empty:
            sandbox.prepare_folder(zygote.fresh_folder(), empty, zygote.uid)
            return zygote.start()
    finally:
        zygote.close()


def _pool_rss():
    """Bytes of RSS of this process's zygotes and their kernels (all forks of the template)."""
    parents, pool = {}, []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[pid] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if b"COURSE_ZYGOTE_FD" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pool.append(pid)
        except OSError:
            pass
    total = 0
    for pid in pool:
        ancestor = pid
        while ancestor in parents and ancestor != str(os.getpid()):
            ancestor = parents[ancestor]
        if ancestor == str(os.getpid()):
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


@contextlib.contextmanager
def peak_pool_rss():
    """Samples _pool_rss() five times a second; yields a dict whose "bytes" ends as the peak."""
    peak, done = {"bytes": 0}, threading.Event()

    def sample():
        while not done.wait(0.2):
            peak["bytes"] = max(peak["bytes"], _pool_rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def bench(root=ROOT, students=4, jobs=2, only=()):
    """Print the benchmark; return its figures as a dict."""
    from course_grading.pipeline.grading import grade_class

    units = course_units(root, only)
    pool_start = pool_start_seconds()
    print(f"== notebooks, one at a time ({len(units)} units, warm kernels; a student's cold kernel adds "
          f"the imports, {pool_start:.1f} s)")
    runs = run_notebooks(course_notebooks(root, only))
    print(time_table(runs, root))
    assignment_seconds = sum(r.seconds for r in runs if r.notebook.parent.parent.name == "source")

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        samples.write_class(scratch / "class", {f"s{i:02d}": {u: samples.student_notebook(root, u) for u in units}
                                                for i in range(students)})
        notebooks = students * len(units)
        print(f"== autograde: {students} students x {len(units)} notebooks")
        sequential = plain_nbgrader_autograde(scratch / "class", scratch / "plain", root, units)
        start = time.perf_counter()
        with peak_pool_rss() as peak:
            grade_class(scratch / "class", scratch / "parallel", jobs=jobs, root=root)
        parallel = time.perf_counter() - start
        scaling = dask_scaling(scratch / "class", scratch, root, only)
        recorded = recorded_outcomes(scratch / "parallel")
        coordinator, coordinator_cpu = coordinator_rate(recorded, scratch, root)
    profile = worker_profile(root, units)

    figures = {  # as a student runs them: each notebook in a kernel that imports everything first
        "course_seconds": sum(r.seconds + pool_start for r in runs),
        "slowest_notebook_seconds": max(r.seconds for r in runs) + pool_start,
        "sequential_autograde_seconds_per_notebook": sequential / notebooks,
        "grade_jobs_seconds_per_notebook": parallel / notebooks,
        "grade_speedup": sequential / parallel,
        "grading_over_execution": parallel * jobs / students / assignment_seconds,  # worker time, both warm
        "student_seconds_all_units": parallel / students,
        "pool_start_seconds": pool_start,
        "pool_peak_rss_bytes": peak["bytes"],
    }
    figures.update(scaling)
    print(f"plain sequential nbgrader autograde: {sequential:7.1f} s  ({figures['sequential_autograde_seconds_per_notebook']:.2f} s per notebook)")
    print(f"course grade --jobs {jobs}:             {parallel:7.1f} s  ({figures['grade_jobs_seconds_per_notebook']:.2f} s per notebook, includes feedback)")
    print(f"speed-up of grade --jobs {jobs}:        {figures['grade_speedup']:7.2f} x")
    print(f"warm kernel pool start-up:            {pool_start:7.1f} s per worker (imports included)")
    print(f"warm kernel pool peak memory:         {peak['bytes'] / 2**20:7.0f} MiB (RSS, {jobs} templates + kernels)")
    print(f"grade worker time / bare execution:   {figures['grading_over_execution']:7.2f} x (both warm)")
    print(f"one student's {len(units)} notebooks:          {figures['student_seconds_all_units']:7.1f} s of wall time (jobs {jobs})")
    figures.update(coordinator_notebooks_per_second=coordinator,
                   coordinator_notebooks_per_cpu_second=coordinator_cpu)
    print(f"coordinator alone:                    {coordinator:7.1f} notebooks/s, {coordinator_cpu:.1f} per "
          "CPU-second (recorded results, as fast as it takes them)")
    print(f"a worker, busy per notebook:          {scaling['worker_seconds_per_notebook']:7.2f} s "
          f"(run's fixed cost {scaling['fixed_seconds']:.1f} s)")
    figures.update({f"worker_{part}_seconds_per_notebook": seconds for part, seconds in profile.items()})
    figures["worker_beyond_cells_seconds_per_notebook"] = profile["total"] - profile["cells"]
    print(f"a worker's notebook, in one process:  {profile['total']:7.2f} s: cells {profile['cells']:.2f} (kernel "
          f"and hidden checks), beyond them {profile['total'] - profile['cells']:.2f} = kernel start and stop "
          f"{profile['kernel']:.2f}, nbgrader around {profile['nbgrader']:.2f}, feedback {profile['feedback']:.2f}, "
          f"files and scores {profile['rest']:.2f}; the worker's CPU beyond the cells "
          f"{profile['beyond_cells_cpu']:.2f} s")
    for (notebooks, workers), seconds in projections(scaling["worker_seconds_per_notebook"], coordinator,
                                                     scaling["fixed_seconds"]).items():
        figures[f"projected_seconds_{notebooks}_notebooks_{workers}_workers"] = seconds
        bound = "coordinator" if coordinator < workers / scaling["worker_seconds_per_notebook"] else "workers"
        print(f"projected: {notebooks:6d} notebooks on {workers:3d} workers: {seconds / 60:7.1f} min "
              f"(bound by the {bound})")
    budgets = [("every notebook under 60 s", figures["slowest_notebook_seconds"] < 60),
               ("whole course under 360 s", figures["course_seconds"] < 360),
               ("one student's notebooks under 90 s", figures["student_seconds_all_units"] < 90)]
    for name, ok in budgets:
        print(f"budget: {name:40s} {'ok' if ok else 'OVER'}")
    return figures
