"""The student edition as Colab runs it.

A fresh virtual environment plays the Colab runtime: it sees Colab's stack (torch, numpy,
matplotlib, scikit-learn, pandas, ipywidgets, the kernel; borrowed from this environment through a
.pth file, with the course itself filtered out) and a stand-in `google.colab`, but not the course.
The edition is published to a local git repository whose address is the course's edition_url, so
each release notebook's first cell really installs the helpers from it with pip (offline: no index,
no build isolation), then the notebook runs top to bottom in a kernel of that environment, from a
folder that, like Colab's /content, holds only the notebook.
"""
import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

from course_grading.course import ROOT
from course_grading.tools.publish import publish

COURSE = ("nn_course", "__editable__", "course_utils", "course_grading")
RELEASES = sorted(p.relative_to(ROOT) for p in ROOT.glob("release/*/*.ipynb"))
STAND_IN = '''"""Stand-in for Colab's google.colab: importable, with the one call the course's setup makes."""
from google.colab import output  # noqa: F401
'''
STAND_IN_OUTPUT = '''def enable_custom_widget_manager():
    """Colab's switch to the ipywidgets 8 widget manager (nothing to switch outside Colab)."""
'''
BEFORE_SETUP = '''import importlib.util, sys
assert importlib.util.find_spec("course_utils") is None, "the course is importable before the first cell"
import google.colab
print(sys.executable)'''
AFTER_SETUP = "import course_utils\nprint(course_utils.__file__)"


def colab_stack(folder):
    """A folder of links to this environment's packages, less the course: what the .pth file adds."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(COURSE) and entry.suffix != ".pth":
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("colab")
    edition = scratch / "nn-course-student"
    publish(edition, edition_url=str(edition))
    identity = ["-c", "user.name=Course Staff", "-c", "user.email=staff@example.org"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "edition"]):
        subprocess.run(["git", *command], cwd=edition, check=True)

    venv = scratch / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "colab-stack.pth").write_text(f"{colab_stack(scratch / 'stack')}\n")
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text(STAND_IN)
    (site / "google" / "colab" / "output.py").write_text(STAND_IN_OUTPUT)
    kernels = scratch / "kernels"
    (kernels / "colab").mkdir(parents=True)
    (kernels / "colab" / "kernel.json").write_text(
        f'{{"argv": ["{venv}/bin/python", "-m", "ipykernel_launcher", "-f", "{{connection_file}}"], '
        f'"display_name": "Colab stand-in", "language": "python"}}')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND")}
    env.update(PATH=f"{venv}/bin{os.pathsep}{env.get('PATH', '')}", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_CACHE_DIR=str(scratch / "pip"))
    return {"edition": edition, "site": site, "kernels": kernels, "env": env, "scratch": scratch}


def uninstall(site):
    """What `pip uninstall nn-course` removes, without pip's start-up time."""
    for path in [site / "course_utils", *site.glob("nn_course-*.dist-info")]:
        shutil.rmtree(path, ignore_errors=True)


def run_in_colab(colab, relative):
    """Execute the edition's copy of notebook `relative` the way Colab would; returns the notebook."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    nb = nbformat.read(colab["edition"] / relative, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(AFTER_SETUP, metadata={"probe": "after"}))
    nb.cells.insert(setup, nbformat.v4.new_code_cell(BEFORE_SETUP, metadata={"probe": "before"}))
    content = colab["scratch"] / "content" / relative.stem
    content.mkdir(parents=True, exist_ok=True)
    uninstall(colab["site"])  # each notebook gets a runtime without the course, as a fresh Colab runtime has
    kernels = KernelSpecManager(kernel_dirs=[str(colab["kernels"])])
    km = KernelManager(kernel_name="colab", kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=120, allow_errors=True,
                            resources={"metadata": {"path": str(content)}})
    try:
        client.execute(env=colab["env"])
    finally:  # nbclient leaves a kernel manager it was handed running
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb


def package_files(folder):
    return {p.relative_to(folder) for p in (folder / "course_utils").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def errors(cell):
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def text(cell):
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) + o.get("evalue", "")
                     for o in cell.get("outputs", []))


def bound_names(source):
    """Names a cell binds (assignments, loops, imports, definitions, at any depth)."""
    from IPython.core.inputtransformer2 import TransformerManager

    names = set()
    for node in ast.walk(ast.parse(TransformerManager().transform_cell(source))):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def expected_error(error, unbound):
    """A stub's NotImplementedError, or a later cell missing a name that a stopped cell never bound."""
    missing = re.fullmatch(r"name '(\w+)' is not defined", error.evalue)
    return "NotImplementedError" in error.ename + error.evalue or (
        error.ename == "NameError" and missing is not None and missing.group(1) in unbound)


@pytest.mark.parametrize("relative", RELEASES, ids=[p.stem for p in RELEASES])
def test_release_notebook_runs_top_to_bottom_in_colab(colab, relative):
    started = time.perf_counter()
    nb = run_in_colab(colab, relative)
    seconds = time.perf_counter() - started
    probes = {c.metadata.probe: c for c in nb.cells if "probe" in c.metadata}
    assert not errors(probes["before"]), "before the first cell: " + text(probes["before"])
    installed = text(probes["after"]).strip()
    assert installed.startswith(str(colab["site"] / "course_utils")), f"course_utils came from {installed}"
    assert package_files(colab["edition"]) == package_files(colab["site"]), "course_utils files pip left out"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    first_exercise = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    unbound = set()  # names that cells stopped by a stub never bound
    for number, cell in enumerate(cells):
        where = f"{relative} code cell {number}:\n{cell.source[:200]}\n--> {text(cell)[-800:]}"
        if number < first_exercise:
            assert not errors(cell), f"error before the first exercise: {where}"
        for error in errors(cell):
            assert expected_error(error, unbound), f"not a stub's NotImplementedError: {where}"
        if errors(cell):
            unbound |= bound_names(cell.source)
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert errors(cell), f"a test cell passed on the stubs: {where}"
    print(f"{relative}: {seconds:.1f} s in the Colab stand-in (first-cell install included)")
