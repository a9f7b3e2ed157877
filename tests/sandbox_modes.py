"""Grading as root and as an ordinary user, for the sandbox tests: the suite runs as root, so in "user" mode
a root grader starts bubblewrap as the sandbox user (COURSE_SANDBOX_USERNS=1), which then makes the sandbox
in a user namespace as on a laptop. That user must reach the Python it runs: a subprocess grades in a mount
namespace of its own where the root-only folders above it (e.g. /root, for a pyenv Python) are traversable.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_grading.pipeline import sandbox

MODES = [pytest.param("root", marks=pytest.mark.skipif(os.geteuid() != 0, reason="the tests run as a user")),
         "user"]
GRADE = """import json, sys
from course_grading.pipeline.grading import grade_class
args = json.loads(sys.argv[1])
report = grade_class(args.pop("submissions"), args.pop("out"), progress=False, **args)
print(json.dumps({"scores": [[s, u, list(v)] for (s, u), v in report.scores.items()],
                  "grades_csv": str(report.grades_csv)}))
"""


def grade(mode, submissions, out, **kwargs):
    """grade_class in `mode`: the report's scores and grades_csv."""
    from course_grading.pipeline.grading import grade_class

    if mode == "root" or os.geteuid() != 0:
        return grade_class(submissions, out, progress=False, **kwargs)
    args = json.dumps({"submissions": str(submissions), "out": str(out), **kwargs})
    with tempfile.TemporaryDirectory(prefix="cg-stash-") as stash:
        done = subprocess.run(as_user([sys.executable, "-c", GRADE, args], stash), capture_output=True,
                              text=True, env={**os.environ, sandbox.USERNS: "1"}, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return SimpleNamespace(scores={(s, u): tuple(v) for s, u, v in result["scores"]},
                           grades_csv=Path(result["grades_csv"]))


def as_user(argv, stash):
    """`argv` run in a private mount namespace where a world-traversable tmpfs covers each folder above the
    sandbox's read-only paths that others cannot enter, its entries bound back (from mounts in `stash`);
    the caller sets COURSE_SANDBOX_USERNS=1."""
    closed = sorted({str(p) for path in sandbox.readonly_paths() for p in path.parents
                     if not os.stat(p).st_mode & 0o001})
    lines = []
    for number, folder in enumerate(closed):
        stash_here = Path(stash) / str(number)
        stash_here.mkdir()
        hidden, folder = shlex.quote(str(stash_here)), shlex.quote(folder)
        lines += [f"mount --bind {folder} {hidden}", f"mount -t tmpfs -o mode=0711 none {folder}",
                  f'for e in {hidden}/* {hidden}/.[!.]*; do [ -e "$e" ] || continue; '
                  f'n={folder}/"${{e##*/}}"; if [ -d "$e" ]; then mkdir "$n"; else touch "$n"; fi; '
                  'mount --bind "$e" "$n"; done']
    script = " && ".join(lines + ['exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]
