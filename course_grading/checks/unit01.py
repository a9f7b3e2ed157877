"""Hidden checks for unit 01 (the perceptron).

The reference algorithm is private to this module. Test data are built so that every correct
implementation makes the same decisions: most inputs are multiples of 1/8 with learning rates that
are powers of two (all arithmetic is exact, so scores of exactly 0 happen and are tested), and the
Gaussian cases are re-drawn until no score of the reference run lies within 1e-9 of the threshold.
"""
import numpy as np

from course_grading.checks.harness import CheckFailed, hidden_check, student_call
from course_grading.checks.proxy import global_replaced
from course_utils import data as _data
from course_utils.checks import as_array

__all__ = ["check_perceptron_predict", "check_perceptron_train"]


# ---------------------------------------------------------------------------------------------
# private references
# ---------------------------------------------------------------------------------------------
def _predict_ref(X, w, b):
    return (np.asarray(X, float) @ np.asarray(w, float) + float(b) > 0).astype(int)


def _train_ref(X, y, epochs, lr, strict=True, sign=1.0, bias=True, use_lr=True, online=True):
    """Rosenblatt's rule; the keyword switches reproduce classic mistakes (for diagnostics only).

    Returns (w, b, smallest nonzero |score| met on the way).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.zeros(X.shape[1])
    b = 0.0
    step = lr if use_lr else 1.0
    closest = np.inf
    for _ in range(epochs):
        w_start, b_start = w.copy(), b
        for xi, yi in zip(X, y):
            z = xi @ (w if online else w_start) + (b if online else b_start)
            if z != 0:
                closest = min(closest, abs(z))
            yhat = float(z > 0) if strict else float(z >= 0)
            err = sign * (yi - yhat)
            w = w + step * err * xi
            if bias:
                b = b + step * err
    return w, b, closest


_DIAGNOSES = (
    (dict(strict=False), "Your w and b match training in which a score of exactly 0 counts as class 1. "
                         "At the start w = 0 and b = 0, so every score is exactly 0: that is class 0 "
                         "(the rule is strictly greater than 0)."),
    (dict(sign=-1.0), "Your w and b match training with the error's sign reversed: the error is the "
                      "target minus the prediction, so a missed positive sample pulls w towards it."),
    (dict(bias=False), "Your w matches, but b never changes: the bias must be updated with every "
                       "weight update (by lr times the error)."),
    (dict(use_lr=False), "Your w and b are what lr = 1 gives: the learning rate must multiply every "
                         "update of w and b."),
    (dict(online=False), "Your w and b match updates computed with the weights from the start of "
                         "each epoch (batch mode). The perceptron updates w and b right after each "
                         "sample, and the next sample's prediction uses the updated values."),
)


def _diagnose(X, y, epochs, lr, w, b):
    """A sentence naming the classic mistake the student's (w, b) reproduces, or a checklist."""
    def same(params):
        rw, rb = params[0], params[1]
        return np.allclose(w, rw, rtol=1e-9, atol=1e-12) and np.isclose(b, rb, rtol=1e-9, atol=1e-12)

    for options, sentence in _DIAGNOSES:
        if options.get("use_lr") is False and lr == 1.0:
            continue
        if same(_train_ref(X, y, epochs, lr, **options)):
            return sentence
    for other in sorted({1, epochs - 1, epochs + 1} - {epochs}):
        if other >= 0 and same(_train_ref(X, y, other, lr)):
            return (f"Your w and b are what {other} epoch(s) give instead of {epochs}: make exactly "
                    f"`epochs` passes over the data.")
    return ("Expected, in words: start from w = 0 and b = 0; make `epochs` passes over the samples in "
            "the order given; predict each sample with the current w and b (class 1 only when the "
            "score is strictly greater than 0); change w and b only when the prediction is wrong, by "
            "lr times the error (target minus prediction) times the sample, and by lr times the "
            "error for b.")


# ---------------------------------------------------------------------------------------------
# helpers for messages
# ---------------------------------------------------------------------------------------------
def _fmt(x):
    return np.array2string(np.asarray(x), precision=6, threshold=12, edgeitems=3)


def _unchanged(after, before, name, what):
    if not np.array_equal(np.asarray(after), before):
        changed = np.argwhere(np.asarray(after) != before)
        where = tuple(int(i) for i in changed[0]) if changed.size else ()
        raise CheckFailed(f"{what}: your function modified its input {name} (first change at index "
                          f"{where}: {before[where]} became {np.asarray(after)[where]}). Work on copies "
                          f"or new arrays; never change the caller's data in place.")


def _dyadic(rng, shape, scale=8, high=24):
    """Random multiples of 1/scale in [-high/scale, high/scale]: every sum stays exact."""
    return rng.integers(-high, high + 1, size=shape) / scale


# ---------------------------------------------------------------------------------------------
# perceptron_predict
# ---------------------------------------------------------------------------------------------
def _predict_cases():
    rng = np.random.default_rng(101)
    cases = [
        ("a single sample with a single feature", np.array([[1.5]]), np.array([2.0]), -1.0),
        ("a single sample with 3 features", np.array([[0.5, -1.0, 2.0]]), np.array([1.0, 1.0, -0.25]), 0.25),
    ]
    # one feature, points on both sides and exactly on the boundary x = 0.75
    X = np.array([[-2.0], [0.75], [0.5], [1.0], [0.75], [3.0]])
    cases.append(("6 samples, 1 feature, two of them exactly on the boundary", X, np.array([4.0]), -3.0))
    for seed, (n, d) in enumerate([(7, 3), (50, 5), (4, 9)]):
        r = np.random.default_rng(seed)
        X, w, b = r.normal(size=(n, d)), r.normal(size=d), float(r.normal())
        z = X @ w + b
        X[np.abs(z) < 1e-6] += 0.1  # keep random points well away from the threshold
        cases.append((f"random X of shape {X.shape}", X, w, b))
    # a grid where many points lie exactly on the line (scores are exact)
    X = _dyadic(rng, (200, 2), scale=4, high=8)
    cases.append(("200 grid points, many exactly on the boundary", X, np.array([0.5, -0.25]), 0.25))
    cases.append(("w = 0 and b = 0 (every score is exactly 0)", _dyadic(rng, (5, 3)), np.zeros(3), 0.0))
    cases.append(("w = 0 and b = 0.5 (every score is 0.5)", _dyadic(rng, (5, 3)), np.zeros(3), 0.5))
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    cases.append(("tiny positive scores (2**-30)", X, np.array([2.0 ** -30, 2.0 ** -30]), 0.0))
    cases.append(("b given as a numpy float64", _dyadic(rng, (6, 2)), np.array([1.0, 0.5]),
                  np.float64(-0.125)))
    cases.append(("b given as a Python int", _dyadic(rng, (6, 2)), np.array([-1.0, 0.25]), 1))
    return cases


def _check_labels(out, X, w, b, what):
    expected = _predict_ref(X, w, b)
    out = as_array(out, what)
    n = X.shape[0]
    if out.shape != (n,):
        raise CheckFailed(f"{what}: returned shape {out.shape}, expected ({n},): one label per row of X, "
                          f"as a 1-D array.")
    if out.dtype.kind == "f" and np.isnan(out).any():
        i = int(np.argwhere(np.isnan(out))[0, 0])
        raise CheckFailed(f"{what}: contains nan at index {i}; every label must be 0 or 1.")
    if not np.isin(out, (0, 1)).all():
        i = int(np.argwhere(~np.isin(out, (0, 1)))[0, 0])
        extra = " The perceptron's classes are 0 and 1 here, not -1 and +1." if (out == -1).any() else ""
        raise CheckFailed(f"{what}: contains {out[i]} at index {i}; every label must be 0 or 1.{extra}")
    if out.dtype.kind not in "iu":
        raise CheckFailed(f"{what}: returned dtype {out.dtype}; the labels must be integers 0 and 1 "
                          f"(convert with .astype(int)).")
    wrong = out != expected
    if wrong.any():
        i = int(np.argwhere(wrong)[0, 0])
        z = float(np.asarray(X[i], float) @ np.asarray(w, float) + float(b))
        if float(b) != 0 and np.array_equal(out, (np.asarray(X, float) @ np.asarray(w, float) > 0)):
            why = (f"the score X[i] @ w + b there is {z:.6g}. Your labels are those of X @ w > 0: the bias b "
                   f"is missing from the score.")
        elif z == 0:
            why = ("the score X[i] @ w + b is exactly 0 there: a point on the boundary belongs to class 0 "
                   "(1 only where the score is strictly greater than 0).")
        else:
            why = f"the score X[i] @ w + b there is {z:.6g}, so the label must be {expected[i]}."
        raise CheckFailed(f"{what}: {int(wrong.sum())} of {n} labels are wrong; first at index {i} "
                          f"(got {out[i]}, expected {expected[i]}): {why}\n"
                          f"  got      {_fmt(out)}\n  expected {_fmt(expected)}")


@hidden_check(numpy_only=True)
def check_perceptron_predict(perceptron_predict):
    for description, X, w, b in _predict_cases():
        what = f"perceptron_predict on {description} (X of shape {X.shape})"
        X_in, w_in = X.copy(), w.copy()
        out = student_call(perceptron_predict, X_in, w_in, b, what=what)
        _unchanged(X_in, X, "X", what)
        _unchanged(w_in, w, "w", what)
        _check_labels(out, X, w, b, what)


# ---------------------------------------------------------------------------------------------
# perceptron_train
# ---------------------------------------------------------------------------------------------
def _gaussian_case(make, epochs, lr):
    """Draw from make(seed) until the reference never scores within 1e-9 of the threshold."""
    for seed in range(100):
        X, y = make(seed)
        if _train_ref(X, y, epochs, lr)[2] > 1e-9:
            return X, y
    raise RuntimeError("no well-conditioned data set found")  # pragma: no cover


def _train_cases():
    """(description, X, y, kwargs); kwargs None means: call with the defaults."""
    rng = np.random.default_rng(7)
    cases = []
    X = _dyadic(rng, (5, 3))
    cases.append(("epochs=0 (nothing is trained, so w must be 3 zeros and b must be 0)",
                  X, np.array([1, 0, 1, 1, 0]), dict(epochs=0, lr=1.0)))
    cases.append(("a single sample with label 0 (at w = 0, b = 0 its score is exactly 0, so it is "
                  "predicted 0, already right, and nothing may change)",
                  np.array([[1.5, -2.0]]), np.array([0]), dict(epochs=3, lr=1.0)))
    cases.append(("a single sample with label 1 and one feature (one update, then it is right)",
                  np.array([[-0.75]]), np.array([1]), dict(epochs=2, lr=1.0)))
    X = _dyadic(rng, (8, 2))
    y = (X @ np.array([1.0, -1.0]) + 0.125 > 0).astype(int)
    cases.append(("8 separable samples with the default epochs and lr", X, y, None))
    X = _dyadic(rng, (10, 3))
    cases.append(("10 samples, 3 features, random labels", X, rng.integers(0, 2, 10),
                  dict(epochs=4, lr=0.5)))
    X = _dyadic(rng, (3, 7))
    cases.append(("3 samples with 7 features", X, np.array([1, 0, 1]), dict(epochs=3, lr=0.25)))
    X = _dyadic(rng, (25, 1))
    cases.append(("25 samples with 1 feature, random labels", X, rng.integers(0, 2, 25),
                  dict(epochs=5, lr=1.0)))
    X = _dyadic(rng, (6, 2))
    cases.append(("6 samples all labelled 1", X, np.ones(6, dtype=int), dict(epochs=4, lr=1.0)))
    X = rng.integers(-3, 4, size=(12, 3))
    cases.append(("integer-valued X (dtype int64)", X, rng.integers(0, 2, 12), dict(epochs=5, lr=1.0)))
    X, y = _gaussian_case(lambda s: _data.separable_blobs(40, seed=s), 6, 0.3)
    cases.append(("40 separable Gaussian samples, lr=0.3", X, y, dict(epochs=6, lr=0.3)))
    X, y = _gaussian_case(lambda s: _data.xor(30, seed=s), 7, 1.0)
    cases.append(("30 XOR samples (not separable)", X, y, dict(epochs=7, lr=1.0)))
    X = _dyadic(rng, (60, 6))
    cases.append(("60 samples, 6 features, random labels", X, rng.integers(0, 2, 60),
                  dict(epochs=3, lr=0.125)))
    return cases


def _as_scalar(value, what):
    if isinstance(value, (bool, np.bool_)):
        raise CheckFailed(f"{what}: the bias b is a boolean; it must be a number.")
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001
        array = None
    if array is None or array.dtype == object or array.dtype.kind not in "iuf":
        raise CheckFailed(f"{what}: the bias b must be a single number, got {type(value).__name__}.")
    if array.shape != ():
        raise CheckFailed(f"{what}: the bias b must be a single number (a float), got an array of shape "
                          f"{array.shape}. Start from b = 0.0, not from an array.")
    number = float(array)
    if not np.isfinite(number):
        raise CheckFailed(f"{what}: the bias b is {number}; expected a finite number.")
    return number


@hidden_check(numpy_only=True)
def check_perceptron_train(perceptron_train):
    # a perceptron_train that calls perceptron_predict gets the reference one: a wrong predict costs
    # exercise 1 only
    with global_replaced(perceptron_train, "perceptron_predict", _predict_ref):
        _check_train(perceptron_train)


def _check_train(perceptron_train):
    for description, X, y, kwargs in _train_cases():
        epochs, lr = (10, 1.0) if kwargs is None else (kwargs["epochs"], kwargs["lr"])
        call = ("perceptron_train(X, y)" if kwargs is None
                else f"perceptron_train(X, y, epochs={epochs}, lr={lr})")
        what = f"{call} on {description}, X of shape {X.shape}"
        results = []
        for _ in range(2):  # twice: the result must not depend on chance
            X_in, y_in = X.copy(), y.copy()
            result = student_call(perceptron_train, X_in, y_in, what=what, **(kwargs or {}))
            _unchanged(X_in, X, "X", what)
            _unchanged(y_in, y, "y", what)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                got = type(result).__name__
                if isinstance(result, (tuple, list)):
                    got += f" of length {len(result)}"
                raise CheckFailed(f"{what}: must return a tuple (w, b); got a {got}.")
            w = as_array(result[0], f"{what}: w")
            b = _as_scalar(result[1], what)
            results.append((w, b))
        (w, b), (w2, b2) = results
        d = X.shape[1]
        if w.shape != (d,):
            raise CheckFailed(f"{what}: w has shape {w.shape}, expected ({d},): one weight per feature, "
                              f"as a 1-D array.")
        if w.dtype != np.float64:
            raise CheckFailed(f"{what}: w has dtype {w.dtype}, expected float64. Start from float zeros "
                              f"such as np.zeros(d): integer zeros (or zeros shaped like an integer X) stay "
                              f"integers.")
        if not np.isfinite(w).all():
            i = int(np.argwhere(~np.isfinite(w))[0, 0])
            raise CheckFailed(f"{what}: w contains {w[i]} at index {i}; expected finite weights.")
        if w2.shape != w.shape or not (np.array_equal(w, w2) and b == b2):
            raise CheckFailed(f"{what}: two calls with the same inputs gave different results. Training "
                              f"must be deterministic: visit the samples in the order given, without "
                              f"shuffling or random starting values.")
        w_ref, b_ref, _ = _train_ref(X, y, epochs, lr)
        w_bad = np.abs(w - w_ref) > 1e-12 + 1e-9 * np.abs(w_ref)
        b_bad = abs(b - b_ref) > 1e-12 + 1e-9 * abs(b_ref)
        if w_bad.any() or b_bad:
            lines = [f"{what}: wrong result."]
            if w_bad.any():
                i = int(np.argmax(np.abs(w - w_ref)))
                lines.append(f"  w: largest error {abs(w[i] - w_ref[i]):.3g} at index {i} "
                             f"(got {w[i]:.8g}, expected {w_ref[i]:.8g}).")
                lines.append(f"     got      {_fmt(w)}\n     expected {_fmt(w_ref)}")
            else:
                lines.append("  w is right.")
            lines.append(f"  bias b: got {b:.8g}, expected {b_ref:.8g}." if b_bad else "  bias b is right.")
            lines.append(_diagnose(X, y, epochs, lr, w, b))
            raise CheckFailed("\n".join(lines))
