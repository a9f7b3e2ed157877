"""The helpers every notebook shares: visible-check messages, time limits, data, device, graphs."""
import subprocess
import sys
import time

import numpy as np
import pytest

from course_utils import data, graphs
from course_utils.checks import (CheckFailed, checking, expect_close, expect_equal, expect_numpy_only,
                                 expect_scalar, expect_tuple, student_error, uses_torch)
from course_utils.judge import describe


def test_expect_close_names_shape_error_and_place():
    with pytest.raises(CheckFailed, match=r"dW: shape \(3, 2\), expected \(2, 3\)"):
        expect_close(np.zeros((3, 2)), np.zeros((2, 3)), "dW")
    with pytest.raises(CheckFailed, match=r"Largest error 0\.5 at index \(1, 0\)"):
        expect_close([[1.0, 2.0], [3.5, 4.0]], [[1.0, 2.0], [3.0, 4.0]], "dx")
    with pytest.raises(CheckFailed, match=r"contains nan at index \(1,\)"):
        expect_close([1.0, np.nan], [1.0, 2.0], "out")
    expect_close([1.0, 2.0 + 1e-12], [1.0, 2.0], "out")


def test_expect_helpers_reject_wrong_types():
    with pytest.raises(CheckFailed, match="forget a `return`"):
        expect_close(None, [1.0], "loss")
    with pytest.raises(CheckFailed, match="must return a tuple \\(w, b\\); got a ndarray"):
        expect_tuple(np.zeros(2), ("w", "b"), "perceptron_train")
    with pytest.raises(CheckFailed, match="expected numbers"):
        expect_equal(["a", "b"], [0, 1], "labels")
    with pytest.raises(CheckFailed, match="single number"):
        expect_scalar(np.zeros(3), "loss")
    assert expect_scalar(np.array([2.5]), "loss") == 2.5


def test_checking_turns_student_errors_into_messages():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        with checking("f(x)"):
            raise NotImplementedError()
    with pytest.raises(CheckFailed) as caught:
        with checking("f(x)"):
            raise NotImplementedError()
    assert caught.value.__suppress_context__, "one short message, not a chained traceback"
    with pytest.raises(CheckFailed, match="f\\(x\\) raised ZeroDivisionError"):
        with checking("f(x)"):
            1 / 0


def test_not_implemented_names_the_function_that_raised():
    namespace = {}
    exec(compile("def gain():\n    raise NotImplementedError()\n\ndef init():\n    return gain()\n",
                 "<ipython-input-1>", "exec"), namespace)
    with pytest.raises(CheckFailed, match=r"init\(\): not implemented yet \(gain still raises"):
        with checking("init()"):
            namespace["init"]()
    try:
        namespace["init"]()
    except NotImplementedError as error:
        described = describe(error)     # the same, across the judge's wire
    assert described["function"] == "gain"
    with pytest.raises(CheckFailed, match=r"init\(\): not implemented yet \(gain still raises"):
        with checking("init()"):
            raise student_error(described)


def test_checking_stops_infinite_loops_quickly():
    start = time.perf_counter()
    with pytest.raises(CheckFailed, match="did not finish within 1 s"):
        with checking("loop()", seconds=1):
            while True:
                pass
    assert time.perf_counter() - start < 3


def test_checking_silences_warnings(recwarn):
    with checking("overflow"):
        np.exp(np.array([1000.0]))
        import warnings
        warnings.warn("noisy")
    assert len(recwarn) == 0


def test_uses_torch_sees_module_and_function_references():
    import torch

    namespace = {"torch": torch, "np": np, "sigmoid": torch.sigmoid}
    exec("def a(x):\n    return torch.exp(x)\n"
         "def b(x):\n    return sigmoid(x)\n"
         "def c(x):\n    return np.exp(x)\n"
         "class V:\n    def go(self):\n        return torch.zeros(1)\n", namespace)
    assert uses_torch(namespace["a"]) == ["torch"]
    assert uses_torch(namespace["b"]) == ["sigmoid"]
    assert uses_torch(namespace["c"]) == []
    assert uses_torch(namespace["V"]) == ["torch"]
    with pytest.raises(CheckFailed, match="numpy only"):
        expect_numpy_only(namespace["a"], "a")


@pytest.mark.parametrize("make", [data.separable_blobs, data.xor, data.moons, data.spirals, data.housing])
def test_generators_are_seeded(make):
    X1, y1 = make(seed=3)[:2]
    X2, y2 = make(seed=3)[:2]
    assert X1.shape[0] == y1.shape[0] > 0 and X1.ndim == 2
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_separable_blobs_are_separable_and_xor_is_not():
    from sklearn.svm import LinearSVC

    X, y = data.separable_blobs(200)
    assert LinearSVC(C=100).fit(X, y).score(X, y) == 1.0
    X, y = data.xor(200)
    assert LinearSVC(C=100).fit(X, y).score(X, y) < 0.8


def test_bundled_sets_need_no_download_and_equal_scikit_learns_loaders():
    from sklearn.datasets import load_breast_cancer, load_digits

    X, y = data.digits()
    reference = load_digits()
    assert X.shape == (1797, 64) and np.array_equal(X, reference.data) and np.array_equal(y, reference.target)
    X, y, names = data.breast_cancer()
    reference = load_breast_cancer()
    assert np.array_equal(X, reference.data) and np.array_equal(y, reference.target)
    assert names == list(reference.feature_names)
    X, y, names = data.breast_cancer(features=[0, 1])
    assert X.shape[1] == 2 and names == ["mean radius", "mean texture"]


def test_bundled_sets_load_without_importing_scikit_learn():
    code = "from course_utils import data; data.digits(); data.breast_cancer(); import sys; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "False"


def test_standardize_and_split():
    X = np.random.default_rng(0).normal(5, 3, size=(100, 3))
    train, test = data.standardize(X[:80], X[80:])
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-9)
    X[:80, 1] = 7.0                                   # constant in the training split: centred, not blown up
    train, test = data.standardize(X[:80], X[80:])
    np.testing.assert_array_equal(train[:, 1], 0)
    np.testing.assert_allclose(test[:, 1], X[80:, 1] - 7.0)
    Xtr, Xte, ytr, yte = data.train_test_split(X, np.arange(100), 0.25)
    assert len(Xtr) == 75 and len(Xte) == 25 and set(ytr) | set(yte) == set(range(100))


def test_graphs_explain_a_missing_graphviz(monkeypatch, capsys):
    monkeypatch.setattr(graphs.shutil, "which", lambda name: None)
    monkeypatch.setattr(graphs, "_advised", False)
    assert graphs.show(object()) is None
    assert "apt-get install graphviz" in capsys.readouterr().out
    assert graphs.show(object()) is None
    assert "graph not drawn" in capsys.readouterr().out


def test_setup_returns_a_device():
    from course_utils import setup

    assert setup().type in ("cpu", "cuda")
    assert setup(torch=False) == "cpu"


def test_setup_shows_warnings_on_stdout_not_stderr():
    """Students see torch's shape warning (and their own); a graded cell never writes to stderr."""
    code = ("from course_utils import setup; import torch, warnings; setup()\n"
            "torch.nn.functional.mse_loss(torch.zeros(4, 1), torch.zeros(4))\n"
            "warnings.warn('my own', DeprecationWarning)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "UserWarning: Using a target size" in done.stdout
    assert "DeprecationWarning: my own" in done.stdout
    assert done.stderr == ""


def test_a_numpy_only_setup_does_not_import_torch():
    code = "from course_utils import setup; setup(torch=False); import sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "False"
