"""Fast in-process proof of a unit's grading, for authors: `python -m course_grading.tools.quickcheck 01`.

It executes the notebook's cells in this process (no kernel, no nbgrader) for the solution, the
stub and every bank variant, and reports which test cells fail and why. The real proof runs
nbgrader (tests/test_grading.py); this one takes seconds, so authors can iterate on checks.
"""
import ast
import contextlib
import io
import os
import sys
import time

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT


def run_cells(nb):
    """Execute code cells in order like a kernel would; {test grade_id: error text or ''}."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.display import display

    transform = TransformerManager().transform_cell
    namespace = {"__name__": "__main__", "display": display, "get_ipython": lambda: None}
    results = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        err, out = io.StringIO(), io.StringIO()
        error = ""
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                # named like IPython's cells, so messages locate student code as in a kernel
                name = f"<ipython-input-{samples.grade_id(cell)}>"
                exec(compile(transform(cell.source), name, "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - like a kernel, go on after any error
            error = f"{type(exc).__name__}: {exc}"
        if not error and err.getvalue().strip():
            error = "wrote to stderr: " + err.getvalue().strip()[:300]
        if samples.is_test(cell):
            if error:
                error += _diagnosis(cell.source, namespace)
            results[samples.grade_id(cell)] = error
    import matplotlib.pyplot as plt
    plt.close("all")
    return results


def _diagnosis(source, namespace):
    """What the grader adds to a test cell that a visible check stopped: its hidden checks' advice."""
    from course_grading.pipeline import judge, remote

    text = ""
    for node in judge._hidden_check_calls(source):
        name, check = node.args[0].value, node.args[0].value.split(".")[-1]
        try:
            objects = [eval(compile(ast.Expression(arg), "<diagnosis>", "eval"), namespace)
                       for arg in node.args[1:]]
        except Exception:  # noqa: BLE001 - the cell's names are undefined: the grader's kernel fails alike
            text += "\n" + judge.SKIPPED.format(check=check)
            continue
        verdict = remote.run_local(name, objects)
        text += "\n" + (judge.DIAGNOSIS_PASSED.format(check=check) if verdict["passed"] else
                        judge.DIAGNOSIS.format(check=check, message=verdict["message"]))
    return text


def check_unit(unit):
    """Print one line per case; return the number of cases that did not behave as required."""
    unit = next(p.name for p in (ROOT / "source").iterdir() if p.name.startswith(unit))
    source = samples.read(samples.source_notebook(ROOT, unit))
    solved = samples.solved(source)
    problems = 0

    def report(name, results, breaks, says=""):
        nonlocal problems
        failing = {k for k, v in results.items() if v}
        ok = failing == set(breaks) and all(says in results[k] for k in breaks)
        problems += not ok
        print(f"{'ok ' if ok else 'BAD'} {name:55s} fails {sorted(failing) or '-'}")
        if not ok:
            for k in sorted(failing | set(breaks)):
                print(f"      {k}: {results.get(k, 'missing')[:400]}")

    start = time.perf_counter()
    everything = samples.test_cells(source)
    report("solution", run_cells(solved), ())
    stubbed = samples.solved(source)
    for cell, original in zip(stubbed.cells, source.cells):
        if samples.is_solution(cell):
            cell.source = samples.stub(original.source)
    report("release stub", run_cells(stubbed), everything)
    for variant in variants(unit):
        report(f"[{'alt' if not variant.breaks else 'bug'}] {variant.name}",
               run_cells(samples.with_variant(solved, variant)), variant.breaks, variant.says)
    print(f"{unit}: {problems} problem(s), {time.perf_counter() - start:.1f} s")
    return problems


if __name__ == "__main__":
    sys.exit(sum(check_unit(unit) for unit in sys.argv[1:]) > 0)
