"""The first cell of every notebook calls `setup()`: seeds, quiet plots, the device to use."""
import random
import warnings

import numpy as np


def pick_device():
    """'cuda' when a GPU is usable, else 'cpu' (as a torch.device)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup(seed=0, quiet=True):
    """Seed numpy/random/torch, set the plot style and return the device notebooks should use."""
    import matplotlib
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    matplotlib.rcParams.update({"figure.figsize": (6, 4), "figure.dpi": 90, "axes.grid": True})
    if quiet:  # nbgrader zeroes any graded cell that writes to stderr
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    device = pick_device()
    if device.type == "cpu":  # the course's small networks and matrices run several times faster on one thread
        torch.set_num_threads(1)
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
    print(f"torch {torch.__version__}, device: {device}")
    return device
