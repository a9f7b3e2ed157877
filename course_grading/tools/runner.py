"""`course run`: execute notebooks top to bottom and report how long each took.

Where kernels can be sandboxed, each notebook gets a fresh kernel forked from this process's warm zygote
(pipeline/warm.py, as in grading) and runs in a copy of its folder; elsewhere, and where an NVIDIA GPU is
present (the sandbox shows it no device), a kernel is started cold in the notebook's folder. A student's
first run also pays the imports: `course bench` prints that start-up."""
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from course_grading.course import ROOT, units as course_units


@dataclass
class Run:
    notebook: Path
    seconds: float
    error: str = ""


def course_notebooks(root=ROOT, only=(), kinds=("lecture", "assignment")):
    """Lecture notebooks and solved assignments (source/) of the selected units, in course order."""
    root = Path(root)
    found = []
    for unit in course_units(root, only):
        if "lecture" in kinds and (root / "notebooks" / f"{unit}.ipynb").exists():
            found.append(root / "notebooks" / f"{unit}.ipynb")
        if "assignment" in kinds:
            found.append(root / "source" / unit / f"{unit}.ipynb")
    return found


def execute(path, timeout=600, warm=True):
    """Run one notebook in a fresh kernel; a Run with its first error's last line, if any."""
    import nbformat

    from course_grading.pipeline import sandbox

    nb = nbformat.read(str(path), as_version=4)
    start = time.perf_counter()
    try:
        if warm and not sandbox.available() and not any(Path("/dev").glob("nvidia[0-9]*")):
            error = _execute_warm(nb, Path(path).parent, timeout)
        else:
            error = _execute_cold(nb, Path(path).parent, timeout)
    except Exception as exc:  # kernel died, bad notebook
        error = f"{type(exc).__name__}: {exc}"
    return Run(Path(path), time.perf_counter() - start, error)


def _execute_warm(nb, folder, timeout):
    from course_grading.pipeline.judge import JudgedExecute

    executor = JudgedExecute(timeout=timeout)
    executor.preprocess(nb, {"metadata": {"path": str(folder)}})
    errors = (o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error")
    first = next(errors, None)
    if first is not None:
        return f"{first.ename}: {first.evalue}".strip().splitlines()[-1]
    return "; ".join(executor.incidents)


def _execute_cold(nb, folder, timeout):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    try:
        with tempfile.TemporaryDirectory(prefix="cg-run-") as sockets:  # unix sockets: no TCP to the kernel
            config = Config({"KernelManager": {"transport": "ipc", "ip": f"{sockets}/k"}})
            NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config,
                           resources={"metadata": {"path": str(folder)}}).execute()
    except CellExecutionError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return lines[-1] if lines else "cell failed"
    return ""


def run_notebooks(paths, progress=True):
    from tqdm.auto import tqdm

    runs = []
    for path in tqdm(paths, desc="notebooks", unit="nb", disable=not progress):
        runs.append(execute(path))
    return runs


def time_table(runs, root=ROOT, budget=60.0):
    lines = [f"{'notebook':55s} {'seconds':>8}  result"]
    for run in runs:
        name = str(run.notebook.relative_to(root)) if run.notebook.is_relative_to(root) else str(run.notebook)
        verdict = run.error or ("ok" if run.seconds < budget else f"over the {budget:.0f} s budget")
        lines.append(f"{name:55s} {run.seconds:8.1f}  {verdict}")
    lines.append(f"{'total':55s} {sum(r.seconds for r in runs):8.1f}")
    return "\n".join(lines)
