"""The first cell of every notebook calls `setup()`: seeds, quiet plots, the device to use."""
import random
import warnings

import numpy as np


def pick_device():
    """'cuda' when a GPU is usable, else 'cpu' (as a torch.device)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup(seed=0, quiet=True, torch=True):
    """Seed numpy/random (and torch), set the plot style and return the device notebooks should use.

    A numpy-only notebook passes torch=False: torch is then not imported (it takes seconds) and the
    device is 'cpu'.
    """
    import matplotlib
    from threadpoolctl import threadpool_limits

    random.seed(seed)
    np.random.seed(seed)
    matplotlib.rcParams.update({"figure.figsize": (6, 4), "figure.dpi": 90, "axes.grid": True})
    if quiet:  # nbgrader zeroes any graded cell that writes to stderr
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
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
