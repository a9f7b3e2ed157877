"""Hidden checks of units 02-04 that a visible failure hides from the banks: each exercise judged on its own.

The banks prove what a whole notebook scores; a slip that its visible test catches never reaches the
hidden check there. These run the hidden checks directly, through the same requests as under grading.
"""
import pytest
import torch

from course_grading.pipeline.remote import run_local


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as in a grading kernel (two threads on a loaded machine crawl)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def students(source):
    """The functions that notebook code `source` defines, as if written in a student's notebook."""
    namespace = {"__name__": "__main__"}
    exec(compile("import numpy as np\nimport torch\nfrom torch import nn\n" + source, "<notebook>", "exec"),
         namespace)
    return namespace


_SIGMOID_NAN_FORWARD = """
def sigmoid_forward(x):
    out = np.exp(x) / (1.0 + np.exp(x))   # nan at x = +1000, and the cache holds it
    return out, out
"""

_LINEAR_NO_BIAS = """
def linear_forward(x, W, b):
    return x @ W, (x, W)
"""


@pytest.mark.parametrize("backward, passes", [
    ("dout * cache * (1.0 - cache)", True),      # right: graded with the right output in the cache
    ("dout * cache", False),                     # wrong after any forward
])
def test_a_sigmoid_backward_is_judged_apart_from_a_wrong_forward(backward, passes):
    ns = students(_SIGMOID_NAN_FORWARD + f"\ndef sigmoid_backward(dout, cache):\n    return {backward}\n")
    verdict = run_local("unit03.check_sigmoid_backward", [ns["sigmoid_forward"], ns["sigmoid_backward"]])
    assert verdict["passed"] is passes, verdict["message"]


@pytest.mark.parametrize("db, passes", [
    ("dout.sum(axis=0)", True),               # the reference at the forward's inputs
    ("np.zeros(W.shape[1])", True),           # the derivative of the student's own (bias-less) forward
    ("dout[0]", False),                       # neither
])
def test_a_linear_backward_passes_against_the_reference_or_its_own_forward(db, passes):
    ns = students(_LINEAR_NO_BIAS + f"\ndef linear_backward(dout, cache):\n    x, W = cache\n"
                                    f"    return dout @ W.T, x.T @ dout, {db}\n")
    verdict = run_local("unit03.check_linear_backward", [ns["linear_forward"], ns["linear_backward"]])
    assert verdict["passed"] is passes, verdict["message"]
    if not passes:
        assert "matches neither" in verdict["message"]


def test_one_permutation_for_all_epochs_is_named_by_its_symptom():
    ns = students("""
def gradient_descent(X, y, lr, epochs, batch_size=None, seed=0):
    N, D = X.shape
    w, b, losses = np.zeros(D), 0.0, []
    rng = np.random.default_rng(seed)
    order = rng.permutation(N)          # drawn once, before the epoch loop
    size = N if batch_size is None else batch_size
    for epoch in range(epochs):
        for start in range(0, N, size):
            batch = order[start:start + size]
            r = X[batch] @ w + b - y[batch]
            w, b = w - lr * 2 * X[batch].T @ r / len(batch), b - lr * 2 * r.mean()
        losses.append(np.mean((X @ w + b - y) ** 2))
    return w, b, losses
""")
    verdict = run_local("unit02.check_gradient_descent_batches", [ns["gradient_descent"]])
    assert not verdict["passed"]
    assert "every epoch visits the samples in the same order" in verdict["message"]
    assert "inside" not in verdict["message"]


_DIGITS = """
from torch.utils.data import DataLoader, TensorDataset


def train_digits_classifier(X_train, y_train, device, seed=0):
    torch.manual_seed(seed)
    data = TensorDataset(torch.as_tensor(X_train), torch.as_tensor(y_train, dtype=torch.long))
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), LAST).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(10):
        for xb, yb in DataLoader(data, batch_size=64, shuffle=True):
            optimizer.zero_grad()
            LOSS(model(xb.to(device)), yb.to(device)).backward()
            optimizer.step()
    return model
"""


@pytest.mark.parametrize("last, loss, passes", [
    ("nn.Softmax(dim=1)", "nn.functional.cross_entropy", False),   # the double softmax: probabilities out
    ("nn.LogSoftmax(dim=1)", "nn.functional.nll_loss", True),      # log-probabilities are logits
])
def test_a_softmax_ended_digits_network_loses_and_a_log_softmax_one_keeps(last, loss, passes):
    ns = students(_DIGITS.replace("LAST", last).replace("LOSS", loss))
    verdict = run_local("unit04.check_train_digits_classifier", [ns["train_digits_classifier"]])
    assert verdict["passed"] is passes, verdict["message"]
    if not passes:
        assert "ends with a softmax" in verdict["message"]
        assert "'A classifier for handwritten digits'" in verdict["message"]
