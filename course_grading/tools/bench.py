"""`course bench`: the figures behind the budgets of COURSE_SPEC §6, measured on this machine."""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from course_grading import samples
from course_grading.pipeline import sandbox, warm
from course_grading.course import ROOT, units as course_units
from course_grading.tools.runner import course_notebooks, run_notebooks, time_table


def plain_nbgrader_autograde(submissions, course, root, units):
    """Seconds for plain sequential `nbgrader autograde UNIT` (one command per unit, whole class)."""
    shutil.copytree(Path(root) / "source", course / "source")
    shutil.copytree(submissions, course / "submitted")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"]
    nbgrader = [sys.executable, "-m", "nbgrader"]
    for unit in units:
        subprocess.run([*nbgrader, "generate_assignment", unit, "--force", *config], cwd=root, env=env,
                       check=True, capture_output=True)
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
    efficiency = rates[2] / (2 * rates[1])
    print(f"scaling efficiency, 1 -> 2 workers:   {efficiency:7.0%}")
    return {"notebooks_per_second_1_worker": rates[1], "notebooks_per_second_2_workers": rates[2],
            "scaling_efficiency": efficiency}
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
    budgets = [("every notebook under 60 s", figures["slowest_notebook_seconds"] < 60),
               ("whole course under 360 s", figures["course_seconds"] < 360),
               ("one student's notebooks under 90 s", figures["student_seconds_all_units"] < 90)]
    for name, ok in budgets:
        print(f"budget: {name:40s} {'ok' if ok else 'OVER'}")
    return figures
