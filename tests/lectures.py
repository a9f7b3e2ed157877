"""Run a lecture notebook's code in this process once and hand its variables to claim tests.

Claim tests assert what a lecture shows (XOR defeats the perceptron, Kaiming keeps activations
alive, ...) on the lecture's own code and seeds, so an edit that breaks the story fails a test.
"""
import contextlib
import functools
import io
import os

from course_grading import samples
from course_grading.course import ROOT


@functools.lru_cache(maxsize=None)
def lecture(unit):
    """The global namespace after running notebooks/<unit>.ipynb top to bottom (unit '05' or a name)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.display import display
    import matplotlib.pyplot as plt

    path = next((ROOT / "notebooks").glob(f"{unit[:2]}_*.ipynb"))
    transform = TransformerManager().transform_cell
    namespace = {"__name__": "__main__", "display": display, "get_ipython": lambda: None}
    for number, cell in enumerate(samples.read(path).cells):
        if cell.cell_type == "code":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(transform(cell.source), f"<{path.name} cell {number}>", "exec"), namespace)
            plt.close("all")
    return namespace
