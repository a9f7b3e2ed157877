"""Hidden checks of unit 02 (gradient descent): MSE gradients, GD modes, logistic regression.

References: torch autograd in float64 for every gradient (relative error below 1e-7) plus float64
centred differences; for `gradient_descent` a private reference loop kept in this module.

Isolation: `gradient_descent` is meant to call the student's `mse_gradients`. While its hidden
checks run, that name in the notebook is pointed at a private reference, so a bug in exercise 1
costs exercise 1's points only; code that computes the gradient inline is graded as it stands.
"""
import contextlib
import warnings

import numpy as np
import torch

from course_grading.checks.harness import (CheckFailed, expect_close, hidden_check, numerical_gradient_ref,
                                    student_call)
from course_grading.checks.proxy import global_replaced
from course_utils.checks import as_array, expect_scalar, expect_tuple

__all__ = ["check_mse_gradients", "check_gradient_descent", "check_gradient_descent_batches",
           "check_logistic_regression_gradients", "check_logistic_regression_stability"]

_RTOL = 1e-7  # against torch float64


@contextlib.contextmanager
def _quiet():
    """Our own arithmetic on a student's (possibly inf/NaN) output must not write to stderr."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _data(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(1000 + seed)
    X = rng.normal(size=(n, d)) * scale + shift
    y = rng.normal(size=n) * 2.0 + 0.5
    w = rng.normal(size=d)
    b = float(rng.normal())
    return X, y, w, b


def _torch_grads(X, y, w, b, kind):
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(float(b), dtype=torch.float64, requires_grad=True)
    z = Xt @ wt + bt
    if kind == "mse":
        loss = torch.nn.functional.mse_loss(z, yt)
    else:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt)
    loss.backward()
    return loss.item(), wt.grad.detach().numpy().copy(), bt.grad.item()


def _mse_loss(X, y, w, b):
    return float(np.mean((X @ w + b - y) ** 2))


def _logistic_loss(X, y, w, b):
    z = X @ w + b
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _unpack(result, what):
    loss, dw, db = expect_tuple(result, ("loss", "dw", "db"), what)
    return loss, dw, db


def _ratio_hint(actual, expected, name, n, d):
    """Words for the classic scalings of a gradient (half, N times, sign flipped, ...)."""
    actual = np.asarray(actual, dtype=float).reshape(-1)
    expected = np.asarray(expected, dtype=float).reshape(-1)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)) or not np.any(expected):
        return ""
    ratio = float(actual @ expected / (expected @ expected))
    if not np.allclose(actual, ratio * expected, rtol=1e-6, atol=1e-9):
        return ""
    known = [(0.5, f"{name} is exactly half the expected value: the derivative of a square brings "
                   "a factor 2."),
             (-1.0, f"{name} has the wrong sign: differentiate the mean of (prediction - y)**2."),
             (float(n), f"{name} is N times too large (N = {n} samples): average over the samples, "
                        "do not sum."),
             (2.0 * n, f"{name} is 2N times too large: average over the N = {n} samples, do not sum."),
             (n / d, f"{name} is scaled by N/D = {n}/{d}: divide by the number of samples N = X.shape[0], "
                     "not the number of features.")]
    for value, words in known:
        if value != 1.0 and abs(ratio - value) < 1e-6 * max(1.0, abs(value)):
            return words
    return ""


def _compare(actual, expected, what, n, d, name, numeric=None):
    """torch reference (relative 1e-7), then float64 centred differences (rtol 1e-6, atol 1e-8)."""
    hint = _ratio_hint(actual, expected, name, n, d)
    expect_close(actual, expected, what, rtol=_RTOL, atol=1e-12, hint=hint)
    if numeric is not None:
        expect_close(actual, numeric, what + " (against centred differences)", rtol=1e-6, atol=1e-8,
                     hint=hint)


def _gradient_cases():
    # (seed, N, D, shift, scale): a batch of one, a single feature, more features than samples, a larger one
    return [(0, 1, 1, 0.0, 1.0), (1, 5, 3, 0.0, 1.0), (2, 3, 7, 1.0, 0.5), (3, 40, 4, -2.0, 3.0),
            (4, 2, 2, 0.0, 1.0)]


def _check_gradients(fn, kind, reference_loss, y_of):
    for seed, n, d, shift, scale in _gradient_cases():
        X, y, w, b = _data(seed, n, d, shift, scale)
        y = y_of(y, seed)
        if kind == "logistic":
            w, b = 0.8 * w / max(1.0, scale), 0.5 * b
        copies = X.copy(), y.copy(), w.copy()
        what = f"{fn.__name__} on X of shape {X.shape}"
        result = student_call(fn, X, y, w, b, what=what)
        loss, dw, db = _unpack(result, what)
        ref_loss, ref_dw, ref_db = _torch_grads(X, y, w, b, kind)
        with _quiet():
            loss_value = expect_scalar(loss, f"loss ({what})")
            hint = _ratio_hint([loss_value], [ref_loss], "loss", n, d)
            if kind == "logistic" and not hint and abs(loss_value - n * ref_loss) < 1e-7 * n * ref_loss:
                hint = "loss is N times too large: take the mean over the samples, not the sum."
            expect_close(loss_value, ref_loss, f"loss ({what})", rtol=_RTOL, atol=1e-12, hint=hint)
            numeric_w = numerical_gradient_ref(lambda v: reference_loss(X, y, v, b), w.copy())
            numeric_b = numerical_gradient_ref(lambda v: reference_loss(X, y, w, float(v[0])),
                                               np.array([b]))[0]
            dw_hint = ""
            if kind == "logistic":
                z = X @ w + b
                p = 1.0 / (1.0 + np.exp(-z))
                squashed = X.T @ ((p - y) * p * (1.0 - p)) / n
                arr = as_array(dw, f"dw ({what})")
                if arr.shape == squashed.shape and np.allclose(arr, squashed, rtol=1e-6, atol=1e-12):
                    dw_hint = ("dw carries an extra factor sigmoid'(z) = p(1-p), as if the loss were squared "
                               "error: with cross-entropy that factor cancels against the derivative of "
                               "the logs.")
            try:
                _compare(dw, ref_dw, f"dw ({what})", n, d, "dw", numeric_w)
            except CheckFailed as error:
                raise CheckFailed(f"{error}\n{dw_hint}".rstrip()) from None
            db_value = expect_scalar(db, f"db ({what})")
            _compare(db_value, ref_db, f"db ({what})", n, d, "db", numeric_b)
        for name, before, after in zip("Xyw", copies, (X, y, w)):
            if not np.array_equal(before, after):
                raise CheckFailed(f"{fn.__name__} changed its input {name} in place; "
                                  "leave the inputs unchanged.")


@hidden_check(numpy_only=True)
def check_mse_gradients(mse_gradients):
    _check_gradients(mse_gradients, "mse", _mse_loss, lambda y, seed: y)


# ---------------------------------------------------------------------------------------------------
# gradient_descent
#
# How strict: the exercise pins the random stream (one `np.random.default_rng(seed)` per call, one
# `rng.permutation(N)` per epoch, consecutive slices of `batch_size`, last one smaller), so a correct
# solution reproduces the reference exactly (to rounding) and we may ask for that. Because exact
# equality alone says little when it fails, properties that any correct GD has are checked first
# (return types and lengths, untouched inputs, losses[-1] being the loss of the returned parameters,
# batch_size=N equal to full batch whatever the shuffle, seed dependence, descent on an easy problem),
# and a mismatch is explained by comparing with the classic mistakes. Full batch must not depend on
# whether a permutation is drawn: it does not, as the update sums over every sample either way.
# ---------------------------------------------------------------------------------------------------

def _ref_mse_gradients(X, y, w, b):
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    residual = X @ w + b - y
    return float(np.mean(residual ** 2)), 2.0 * X.T @ residual / len(y), 2.0 * float(np.mean(residual))


def _reference_gd(X, y, lr, epochs, batch_size=None, seed=0, bug=None):
    """The reference loop; `bug` names a classic mistake to reproduce for diagnosis."""
    n, d = X.shape
    w, b = np.zeros(d), 0.0
    rng = np.random.default_rng(seed)
    size = n if batch_size is None else batch_size
    losses = []
    for _ in range(epochs):
        if bug == "rng per epoch":
            rng = np.random.default_rng(seed)
        if batch_size is None or bug == "no shuffle":
            order = np.arange(n)
        else:
            order = rng.permutation(n)
        stop = n - size + 1 if bug == "drop last" else n
        if bug == "before":
            losses.append(_mse_loss(X, y, w, b))
        for start in range(0, stop, size):
            batch = order[start:start + size]
            _, dw, db = _ref_mse_gradients(X[batch], y[batch], w, b)
            sign = 1.0 if bug == "ascent" else -1.0
            w, b = w + sign * lr * dw, b + sign * lr * db
        if bug != "before":
            losses.append(_mse_loss(X, y, w, b))
    return w, b, np.array(losses)


_DIAGNOSES = {
    "before": "losses[e] looks like the loss measured BEFORE epoch e's updates; record it after them.",
    "ascent": "the parameters climb the loss: step against the gradient (w - lr * dw, b - lr * db).",
    "rng per epoch": ("every epoch visits the samples in the same order: draw a new order = "
                      "rng.permutation(N) in every epoch, from the one generator "
                      "rng = np.random.default_rng(seed) made before the epoch loop."),
    "no shuffle": ("the samples are visited in their stored order: shuffle each epoch with "
                   "rng.permutation(N)."),
    "drop last": ("the last, smaller mini-batch is skipped: when N is not a multiple of batch_size it "
                  "must still be used."),
}


def _reference_mse_in(fn):
    """Point the name `mse_gradients` in the student's namespace at the reference while checking."""
    return global_replaced(fn, "mse_gradients", _ref_mse_gradients)


def _run_gd(fn, X, y, lr, epochs, batch_size, seed):
    bs = "None" if batch_size is None else batch_size
    what = (f"gradient_descent(X of shape {X.shape}, y, lr={lr}, epochs={epochs}, batch_size={bs}, "
            f"seed={seed})")
    copies = X.copy(), y.copy()
    result = student_call(fn, X, y, lr, epochs, batch_size=batch_size, seed=seed, what=what)
    w, b, losses = expect_tuple(result, ("w", "b", "losses"), what)
    with _quiet():
        w = as_array(w, f"w from {what}").astype(float)
        losses = as_array(losses, f"losses from {what}").astype(float)
        b_array = as_array(b, f"b from {what}")
    if w.shape != (X.shape[1],):
        raise CheckFailed(f"w from {what}: shape {w.shape}, expected ({X.shape[1]},), "
                          "one weight per feature.")
    if b_array.size != 1:
        raise CheckFailed(f"b from {what}: expected a single number, got shape {b_array.shape}.")
    if losses.shape != (epochs,):
        raise CheckFailed(f"losses from {what}: shape {losses.shape}, expected ({epochs},): "
                          "one loss per epoch.")
    for name, value in (("w", w), ("b", b_array), ("losses", losses)):
        if not np.all(np.isfinite(value)):
            raise CheckFailed(f"{name} from {what} contains nan or inf "
                              f"({np.asarray(value).reshape(-1)[:4]}); "
                              "with this small learning rate every value should be finite.")
    for name, before, after in zip("Xy", copies, (X, y)):
        if not np.array_equal(before, after):
            raise CheckFailed(f"{what} changed its input {name} in place; leave the inputs unchanged.")
    return w, float(b_array.reshape(())), losses, what


def _expect_matches(result, reference, X, y, lr, epochs, batch_size, seed, bugs):
    """result == reference (to rounding), or a failure that names the classic mistake it matches."""
    w, b, losses, what = result
    ref_w, ref_b, ref_losses = reference
    with _quiet():
        close = (np.allclose(w, ref_w, rtol=1e-8, atol=1e-10) and abs(b - ref_b) <= 1e-10 + 1e-8 * abs(ref_b)
                 and np.allclose(losses, ref_losses, rtol=1e-8, atol=1e-12))
        if close:
            return
        hint = ""
        for bug in bugs:
            bw, bb, bl = _reference_gd(X, y, lr, epochs, batch_size, seed, bug=bug)
            if (np.allclose(w, bw, rtol=1e-8, atol=1e-10) and abs(b - bb) <= 1e-10 + 1e-8 * abs(bb)
                    and np.allclose(losses, bl, rtol=1e-8, atol=1e-12)):
                hint = _DIAGNOSES[bug]
                break
        else:
            if np.isfinite(losses).all() and losses[-1] > _mse_loss(X, y, np.zeros(X.shape[1]), 0.0) * 1.5:
                hint = _DIAGNOSES["ascent"]
            elif b == 0.0 and ref_b != 0.0:
                hint = "b never changes: update the bias with its own gradient as well."
        expect_close(w, ref_w, f"w from {what}", rtol=1e-8, atol=1e-10, hint=hint)
        expect_close(b, ref_b, f"b from {what}", rtol=1e-8, atol=1e-10, hint=hint)
        expect_close(losses, ref_losses, f"losses from {what}", rtol=1e-8, atol=1e-12, hint=hint)


def _expect_final_loss(result, X, y):
    w, b, losses, what = result
    with _quiet():
        actual = _mse_loss(X, y, w, b)
        if not np.isclose(losses[-1], actual, rtol=1e-8, atol=1e-12):
            hint = _DIAGNOSES["before"] if np.isclose(losses[0], _mse_loss(X, y, 0 * w, 0.0)) else \
                "losses[e] must be the mean squared error on ALL samples after epoch e."
            raise CheckFailed(f"losses[-1] from {what} is {losses[-1]:.8g}, but the loss of the returned "
                              "(w, b) "
                              f"on all the data is {actual:.8g}. {hint}")


def _regression(seed, n, d, noise=0.3):
    rng = np.random.default_rng(2000 + seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.7 + noise * rng.normal(size=n)
    return X, y


@hidden_check(numpy_only=True)
def check_gradient_descent(gradient_descent):
    """Full batch: deterministic, compared with the reference loop."""
    with _reference_mse_in(gradient_descent):
        for seed, (n, d, lr, epochs) in enumerate([(1, 1, 0.1, 5), (6, 3, 0.05, 20), (30, 2, 0.1, 15),
                                                   (7, 9, 0.01, 10), (50, 4, 0.2, 1)]):
            X, y = _regression(seed, n, d)
            result = _run_gd(gradient_descent, X, y, lr, epochs, None, seed)
            _expect_final_loss(result, X, y)
            reference = _reference_gd(X, y, lr, epochs)
            _expect_matches(result, reference, X, y, lr, epochs, None, seed, ("before", "ascent"))
            if epochs > 1 and not result[2][-1] < result[2][0]:
                raise CheckFailed(f"losses from {result[3]} do not decrease on an easy problem.")
        # the seed must not matter for full batch
        X, y = _regression(9, 12, 3)
        first = _run_gd(gradient_descent, X, y, 0.05, 8, None, 0)
        other = _run_gd(gradient_descent, X, y, 0.05, 8, None, 123)
        expect_close(other[0], first[0], f"w from {other[3]} (full batch must not depend on the seed)",
                     rtol=1e-9, atol=1e-12)


@hidden_check(numpy_only=True)
def check_gradient_descent_batches(gradient_descent):
    """On-line and mini-batch: properties first, then the pinned random stream."""
    bugs = ("before", "ascent", "rng per epoch", "no shuffle", "drop last")
    with _reference_mse_in(gradient_descent):
        # batch_size = N: one batch holding every sample, so it equals full batch whatever the shuffle
        X, y = _regression(20, 9, 3)
        full = _run_gd(gradient_descent, X, y, 0.05, 6, None, 0)
        whole = _run_gd(gradient_descent, X, y, 0.05, 6, 9, 4)
        with _quiet():
            expect_close(whole[0], full[0], f"w from {whole[3]} (one batch of all N samples is full batch)",
                         rtol=1e-9, atol=1e-12)
            expect_close(whole[2], full[2],
                         f"losses from {whole[3]} (one batch of all N samples is full batch)",
                         rtol=1e-9, atol=1e-12)
        # (seed, N, D, batch_size, lr, epochs): on-line, a smaller last batch, an exact split, N = 1,
        # a batch larger than N, a last batch of one
        cases = [(21, 10, 2, 1, 0.05, 4), (22, 10, 2, 3, 0.05, 6), (23, 12, 3, 4, 0.05, 5),
                 (24, 1, 2, 1, 0.1, 3), (25, 7, 3, 10, 0.05, 4), (26, 13, 4, 6, 0.02, 7)]
        for seed, n, d, batch_size, lr, epochs in cases:
            X, y = _regression(seed, n, d)
            result = _run_gd(gradient_descent, X, y, lr, epochs, batch_size, seed)
            _expect_final_loss(result, X, y)
            reference = _reference_gd(X, y, lr, epochs, batch_size, seed)
            _expect_matches(result, reference, X, y, lr, epochs, batch_size, seed, bugs)
        # seed dependence and descent on an easy problem (on-line, 40 samples)
        X, y = _regression(30, 40, 2, noise=0.1)
        a = _run_gd(gradient_descent, X, y, 0.02, 5, 1, 0)
        b = _run_gd(gradient_descent, X, y, 0.02, 5, 1, 1)
        if np.allclose(a[0], b[0], rtol=1e-12, atol=1e-14):
            raise CheckFailed(f"{a[3]} and seed=1 give the same w: the order of the samples must depend "
                              "on the "
                              f"seed. {_DIAGNOSES['no shuffle']}")
        if not a[2][-1] < a[2][0] < _mse_loss(X, y, np.zeros(2), 0.0):
            raise CheckFailed(f"losses from {a[3]} do not decrease on an easy problem.")


# ---------------------------------------------------------------------------------------------------
# logistic regression
# ---------------------------------------------------------------------------------------------------

def _labels(y, seed):
    labels = (y > np.median(y)).astype(float)
    if labels.size > 1 and labels.min() == labels.max():
        labels[0] = 1.0 - labels[0]
    return labels.astype(int) if seed == 3 else labels  # one case with integer labels


@hidden_check(numpy_only=True)
def check_logistic_regression_gradients(logistic_regression_gradients):
    _check_gradients(logistic_regression_gradients, "logistic", _logistic_loss, _labels)


def _stability_cases():
    """(z, y): |z| from 30 to 1000, both signs, both labels (confidently right and confidently wrong)."""
    yield np.array([1000.0, -1000.0, 800.0, -800.0, 745.5, -745.5, 40.0, -40.0]), \
        np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    yield np.array([-900.0]), np.array([1.0])
    rng = np.random.default_rng(42)
    yield rng.uniform(30, 1000, 20) * rng.choice([-1.0, 1.0], 20), rng.integers(0, 2, 20).astype(float)


@hidden_check(numpy_only=True)
def check_logistic_regression_stability(logistic_regression_gradients):
    """|z| up to 1000: the loss equals the float64 logaddexp value, the gradients stay right."""
    fn = logistic_regression_gradients
    for z, y in _stability_cases():
        n = len(z)
        w, b = np.array([2.0, -0.5]), 0.5
        X = np.empty((n, 2))
        X[:, 1] = np.linspace(-1.0, 1.0, n)
        X[:, 0] = (z - b - w[1] * X[:, 1]) / w[0]
        what = f"{fn.__name__} with |X @ w + b| up to {np.abs(z).max():.0f} (X of shape {X.shape})"
        loss, dw, db = _unpack(student_call(fn, X, y, w, b, what=what), what)
        ref_loss, ref_dw, ref_db = _logistic_loss(X, y, w, b), *_torch_grads(X, y, w, b, "logistic")[1:]
        with _quiet():
            advice = ("For large |z|, sigmoid(z) rounds to 1 or 0 and log(1 - p) or log(p) becomes -inf; "
                      "clipping p keeps the loss finite but wrong. Compute the loss from z directly, "
                      "e.g. with np.logaddexp(0, z) - y * z.")
            value = as_array(loss, f"loss ({what})")
            if value.size != 1 or not np.all(np.isfinite(value)):
                raise CheckFailed(f"loss ({what}): got {value.reshape(-1)[:3]}, expected a finite number "
                                  f"(about {ref_loss:.4g}). {advice}")
            if float(value.reshape(())) < -1e-9:
                raise CheckFailed(f"loss ({what}): got {float(value.reshape(())):.4g}, but cross-entropy is "
                                  f"never negative (expected about {ref_loss:.4g}).")
            expect_close(float(value.reshape(())), ref_loss, f"loss ({what})", rtol=_RTOL, atol=1e-12,
                         hint=advice)
            advice = "The gradients must stay right for large |z| too; compute the sigmoid without overflow."
            expect_close(dw, ref_dw, f"dw ({what})", rtol=1e-6, atol=1e-8, hint=advice)
            expect_close(expect_scalar(db, f"db ({what})"), ref_db, f"db ({what})", rtol=1e-6, atol=1e-8,
                         hint=advice)
