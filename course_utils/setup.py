"""The first cell of every notebook calls `setup()`: seeds, plot style, warnings on stdout, the device."""
import random
import sys
import warnings

import numpy as np


def pick_device():
    """'cuda' when a GPU is usable, else 'cpu' (as a torch.device)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def show_warning_on_stdout(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning writing to stdout: nbgrader zeroes a graded cell that writes to stderr."""
    (file or sys.stdout).write(warnings.formatwarning(message, category, filename, lineno, line))


def setup(seed=0, quiet=True, torch=True):
    """Seed numpy/random (and torch), set the plot style and return the device notebooks should use.

    quiet=True shows warnings on stdout instead of stderr (all of them, so students still see them).
    A numpy-only notebook passes torch=False: torch is then not imported (it takes seconds) and the
    device is 'cpu'.
    """
    import matplotlib
    from threadpoolctl import threadpool_limits

    random.seed(seed)
    np.random.seed(seed)
    matplotlib.rcParams.update({"figure.figsize": (6, 4), "figure.dpi": 90, "axes.grid": True})
    if quiet:
        warnings.showwarning = show_warning_on_stdout
    if not torch:
        threadpool_limits(1, user_api="blas")
        print(f"numpy {np.__version__}, device: cpu")
        return "cpu"
    import torch

    torch.manual_seed(seed)
    device = pick_device()
    if device.type == "cpu":  # the course's small networks and matrices run several times faster on one thread
        torch.set_num_threads(1)
        threadpool_limits(1, user_api="blas")
    print(f"torch {torch.__version__}, device: {device}")
    return device
