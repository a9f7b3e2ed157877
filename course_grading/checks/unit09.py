"""Hidden checks for unit 09 (double descent). Instructor-only.

References are numpy.linalg in float64: the pseudo-inverse and least squares for the minimum-norm
solution (plus its two defining properties: the residual is orthogonal to the column space, w to
the null space), the SVD filter s / (s^2 + lam) for ridge (any correct form of ridge agrees with it
to rounding), and a private reference loop for the double-descent curve, whose random stream the
exercise pins (one default_rng(seed) per call, N_DRAWS draws of W of shape (d, p) per count).
Test matrices have prescribed singular values (well spread, most never below 1e-3 of the largest; a
few down to 5e-5, as ReLU features near p = N have), so a pseudo-inverse with a cut-off of 1e-4 or
more loses information while correct methods agree to ~1e-8 (rtol 1e-6 on those few).

Isolation: while the curve is checked, the names `random_relu_features` and `min_norm_solution` in
the student's namespace point at the references here, so a bug in exercises 1-2 costs points there
only. Student objects are only called, so these checks run unchanged on proxies of a sandboxed kernel.
"""
import contextlib
import warnings

import numpy as np

from course_grading.checks.harness import CheckFailed, expect_close, hidden_check, student_call
from course_grading.checks.proxy import global_replaced
from course_utils.checks import as_array, expect_tuple

__all__ = ["check_random_relu_features", "check_min_norm_overdetermined", "check_min_norm_underdetermined",
           "check_ridge_solution", "check_double_descent_curve"]

_DRAWS = 5  # N_DRAWS of the assignment


@contextlib.contextmanager
def _quiet():
    """Our own arithmetic on a student's (possibly inf/NaN) output must not write to stderr."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _unchanged(before, after, name, what):
    if not np.array_equal(before, after):
        raise CheckFailed(f"{what} changed its input {name} in place; leave the inputs unchanged.")


def _matrix(rng, n, p, singular_values=None, rank=None):
    """An (n, p) matrix U diag(s) V^T with the given singular values (default: spread over 1..1e-3)."""
    r = min(n, p) if rank is None else rank
    s = np.geomspace(3.0, 3e-3, r) if singular_values is None else np.asarray(singular_values, float)
    U = np.linalg.qr(rng.standard_normal((n, n)))[0][:, :r]
    V = np.linalg.qr(rng.standard_normal((p, p)))[0][:, :r]
    return (U * s) @ V.T


def _vector(value, length, name, what):
    """`value` as a float vector of `length` entries, or a CheckFailed that says what came instead."""
    array = as_array(value, f"{name} from {what}")
    if array.shape != (length,):
        raise CheckFailed(f"{name} from {what}: shape {array.shape}, expected ({length},).")
    array = array.astype(float)
    if not np.all(np.isfinite(array)):
        raise CheckFailed(f"{name} from {what} contains NaN or inf: {array[:4]}.")
    return array


# ---------------------------------------------------------------------------------------------
# 1. random ReLU features
# ---------------------------------------------------------------------------------------------
@hidden_check(numpy_only=True)
def check_random_relu_features(random_relu_features):
    # (N, d, p): one sample and one feature, non-square, a square W, more features than samples
    for seed, (n, d, p) in enumerate([(1, 1, 1), (5, 3, 4), (6, 4, 4), (20, 6, 50), (3, 7, 2)]):
        rng = np.random.default_rng(900 + seed)
        X, W = rng.standard_normal((n, d)), rng.standard_normal((d, p)) / np.sqrt(d)
        copies = X.copy(), W.copy()
        what = f"random_relu_features(X of shape {X.shape}, W of shape {W.shape})"
        Phi = as_array(student_call(random_relu_features, X, W, what=what), what)
        expected = np.maximum(0.0, X @ W)
        hint = ""
        with _quiet():
            if Phi.shape == expected.shape:
                Z = X @ W
                if np.allclose(Phi, np.abs(Z), rtol=1e-12, atol=1e-14):
                    hint = "Phi equals |X @ W|: the ReLU sets negative projections to 0, it does not flip them."
                elif np.allclose(Phi, Z, rtol=1e-12, atol=1e-14):
                    hint = "Phi equals X @ W: the ReLU max(0, .) is missing."
                elif np.allclose(Phi, np.maximum(0.0, X) @ W, rtol=1e-12, atol=1e-14):
                    hint = "Phi equals max(0, X) @ W: rectify the projections X @ W, not the inputs."
                elif d == p and np.allclose(Phi, np.maximum(0.0, X @ W.T), rtol=1e-12, atol=1e-14):
                    hint = "Phi equals max(0, X @ W.T): W has shape (d, p) already, use it as it is."
            elif Phi.shape == expected.shape[::-1]:
                hint = "Phi is transposed: one row per sample, one column per feature."
            expect_close(Phi, expected, what, rtol=1e-12, atol=1e-14, hint=hint)
        _unchanged(copies[0], X, "X", what)
        _unchanged(copies[1], W, "W", what)


# ---------------------------------------------------------------------------------------------
# 2. the minimum-norm least-squares solution
# ---------------------------------------------------------------------------------------------
def _min_norm_ref(Phi, y):
    return np.linalg.pinv(Phi) @ y


def _min_norm_case(min_norm_solution, Phi, y, label, rtol=1e-7):
    """Call the student's solver on one case; compare with pinv and lstsq and test both properties."""
    n, p = Phi.shape
    what = f"min_norm_solution(Phi, y) with Phi of shape {Phi.shape} ({label})"
    copies = Phi.copy(), y.copy()
    w = _vector(student_call(min_norm_solution, Phi, y, what=what), p, "w", what)
    _unchanged(copies[0], Phi, "Phi", what)
    _unchanged(copies[1], y, "y", what)
    reference = _min_norm_ref(Phi, y)
    lstsq = np.linalg.lstsq(Phi, y, rcond=None)[0]
    if not np.allclose(reference, lstsq, rtol=1e-9, atol=1e-11):  # our own sanity, never the student's
        raise RuntimeError("pinv and lstsq disagree on a test case")
    U, s, Vt = np.linalg.svd(Phi)
    rank = int(np.sum(s > s[0] * max(n, p) * np.finfo(float).eps))
    column_space, null_space = U[:, :rank], Vt[rank:]
    scale = max(1.0, float(np.abs(reference).max()))
    with _quiet():
        residual = Phi @ w - y
        out_of_plane = column_space.T @ residual        # must vanish: residual orthogonal to the columns
        in_null = null_space @ w if len(null_space) else np.zeros(0)
        hint = ""
        if np.abs(w).max() > 1e6 * scale:
            hint = ("w is huge: Phi.T @ Phi is singular here (more features than samples, or dependent "
                    "columns), so solving the normal equations gives garbage.")
        elif np.abs(out_of_plane).max() > 1e-7 * max(1.0, np.abs(y).max()):
            hint = ("w does not minimise the squared error: the residual Phi @ w - y is not orthogonal to "
                    "the columns of Phi. A pseudo-inverse with a large cut-off (rcond) throws away "
                    "directions with small but real singular values.")
        elif in_null.size and np.abs(in_null).max() > 1e-7 * scale:
            hint = (f"w minimises the squared error but is not the minimum-norm solution: it has a component "
                    f"of size {np.linalg.norm(in_null):.3g} in the null space of Phi (||w|| = "
                    f"{np.linalg.norm(w):.4g}, the minimum is {np.linalg.norm(reference):.4g}).")
        expect_close(w, reference, f"w from {what}", rtol=rtol, atol=rtol / 100 * scale, hint=hint)


@hidden_check(numpy_only=True)
def check_min_norm_overdetermined(min_norm_solution):
    """N >= p, independent columns: the unique least-squares solution."""
    for seed, (n, p) in enumerate([(1, 1), (4, 4), (10, 3), (30, 8), (50, 1)]):
        rng = np.random.default_rng(300 + seed)
        Phi = _matrix(rng, n, p) if p > 1 else rng.uniform(0.5, 2.0, (n, 1))
        y = rng.standard_normal(n) + (Phi @ rng.standard_normal(p) if seed % 2 else 0.0)
        _min_norm_case(min_norm_solution, Phi, y, "more samples than features")
    # random ReLU features of real inputs, with a nonzero residual
    rng = np.random.default_rng(310)
    X = rng.standard_normal((40, 5))
    Phi = np.maximum(0.0, X @ rng.standard_normal((5, 12)) / np.sqrt(5))
    _min_norm_case(min_norm_solution, Phi, rng.standard_normal(40), "random ReLU features")
    _small_singular_values(min_norm_solution, [(30, 10), (12, 12)], 320)


@hidden_check(numpy_only=True)
def check_min_norm_underdetermined(min_norm_solution):
    """p > N, and dependent columns: infinitely many minimisers, the minimum-norm one wanted."""
    cases = [((1, 4), None), ((3, 7), None), ((10, 40), None), ((6, 9), 3), ((12, 5), 3)]
    for seed, ((n, p), rank) in enumerate(cases):
        rng = np.random.default_rng(400 + seed)
        Phi = _matrix(rng, n, p, rank=rank)
        label = "more features than samples" if rank is None else f"rank {rank}"
        _min_norm_case(min_norm_solution, Phi, rng.standard_normal(n), label)
    # ReLU features with a dead feature (zero on every sample) and a duplicated one
    rng = np.random.default_rng(410)
    X = np.abs(rng.standard_normal((15, 4)))
    W = rng.standard_normal((4, 8)) / 2
    W[:, 2] = -np.abs(W[:, 2]) - 0.1      # X >= 0, so this projection is negative: the feature is dead
    W[:, 5] = W[:, 0]
    Phi = np.maximum(0.0, X @ W)
    _min_norm_case(min_norm_solution, Phi, rng.standard_normal(15), "ReLU features with a dead and a repeated column")
    rng = np.random.default_rng(411)
    X = rng.standard_normal((20, 6))
    Phi = np.maximum(0.0, X @ rng.standard_normal((6, 60)) / np.sqrt(6))
    _min_norm_case(min_norm_solution, Phi, rng.standard_normal(20), "random ReLU features, p = 3N")
    _small_singular_values(min_norm_solution, [(10, 30), (15, 16)], 420)


def _small_singular_values(min_norm_solution, shapes, seed):
    """Singular values down to 5e-5 of the largest, as random ReLU features have near p = N: the default
    cut-offs of pinv and lstsq keep them (so do the normal equations, to ~1e-8 at this conditioning);
    a cut-off of 1e-4 or more loses them (errors of 40-130 %)."""
    for offset, (n, p) in enumerate(shapes):
        rng = np.random.default_rng(seed + offset)
        Phi = _matrix(rng, n, p, singular_values=np.geomspace(3.0, 1.5e-4, min(n, p)))
        _min_norm_case(min_norm_solution, Phi, rng.standard_normal(n),
                       "singular values from 3 down to 1.5e-4, as ReLU features have near p = N", rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# 3. ridge
# ---------------------------------------------------------------------------------------------
def _ridge_ref(Phi, y, lam):
    U, s, Vt = np.linalg.svd(Phi, full_matrices=False)
    return Vt.T @ (s / (s ** 2 + lam) * (U.T @ y))


def _ridge_hint(w, Phi, y, lam):
    """Words for the classic ridge mistakes that reproduce the student's w."""
    n = Phi.shape[0]
    candidates = [(_min_norm_ref(Phi, y), "w equals the unpenalised (minimum-norm) solution: lam is ignored."),
                  (_ridge_ref(Phi, y, n * lam), f"w is the ridge solution for lam * N (N = {n}): the loss here "
                                                "is the SUM of squared errors, not their mean."),
                  (_ridge_ref(Phi, y, 2 * lam), "w is the ridge solution for 2 * lam: the loss is "
                                                "||Phi w - y||^2 + lam ||w||^2, with no factor 1/2."),
                  (_ridge_ref(Phi, y, lam / 2), "w is the ridge solution for lam / 2: the loss is "
                                                "||Phi w - y||^2 + lam ||w||^2; its gradient is "
                                                "2 Phi^T (Phi w - y) + 2 lam w.")]
    with _quiet():
        for candidate, words in candidates:
            if np.allclose(w, candidate, rtol=1e-6, atol=1e-10):
                return words
        if np.linalg.norm(w) > np.linalg.norm(_min_norm_ref(Phi, y)) * (1 + 1e-9):
            return ("||w|| is larger than without any penalty: the penalty must shrink w "
                    "(add lam times the identity, do not subtract it, and use np.eye, not np.ones).")
    return "w does not minimise ||Phi w - y||^2 + lam ||w||^2 (its gradient there is not zero)."


@hidden_check(numpy_only=True)
def check_ridge_solution(ridge_solution):
    cases = [((10, 3), 0.5), ((5, 12), 2.0), ((6, 6), 0.1), ((1, 3), 1.0), ((40, 40), 0.05), ((3, 1), 7.0),
             ((20, 50), 10.0)]
    for seed, ((n, p), lam) in enumerate(cases):
        rng = np.random.default_rng(500 + seed)
        Phi = _matrix(rng, n, p, singular_values=np.geomspace(4.0, 0.05, min(n, p)))
        y = rng.standard_normal(n)
        what = f"ridge_solution(Phi, y, lam={lam}) with Phi of shape {Phi.shape}"
        copies = Phi.copy(), y.copy()
        w = _vector(student_call(ridge_solution, Phi, y, lam, what=what), p, "w", what)
        _unchanged(copies[0], Phi, "Phi", what)
        _unchanged(copies[1], y, "y", what)
        reference = _ridge_ref(Phi, y, lam)
        with _quiet():
            close = np.allclose(w, reference, rtol=1e-7, atol=1e-10)
            hint = "" if close else _ridge_hint(w, Phi, y, lam)
            expect_close(w, reference, f"w from {what}", rtol=1e-7, atol=1e-10, hint=hint)
    # ridge lowers the test-error peak of minimum-norm regression at the interpolation threshold
    rng = np.random.default_rng(520)
    X_train, X_test = rng.standard_normal((30, 5)), rng.standard_normal((400, 5))
    truth = lambda X: np.sin(X[:, 0]) + X[:, 1] * X[:, 2] / 2  # noqa: E731
    y_train, y_test = truth(X_train) + 0.3 * rng.standard_normal(30), truth(X_test)
    peak, ridge = [], []
    for _ in range(3):
        W = rng.standard_normal((5, 30)) / np.sqrt(5)
        Phi_train, Phi_test = np.maximum(0.0, X_train @ W), np.maximum(0.0, X_test @ W)
        what = "ridge_solution(Phi, y, lam=0.1) with 30 random ReLU features of 30 training samples"
        w = _vector(student_call(ridge_solution, Phi_train, y_train, 0.1, what=what), 30, "w", what)
        ridge.append(np.mean((Phi_test @ w - y_test) ** 2))
        peak.append(np.mean((Phi_test @ _min_norm_ref(Phi_train, y_train) - y_test) ** 2))
    if not np.mean(ridge) < np.mean(peak) / 2:
        raise CheckFailed(f"at the interpolation threshold (p = N = 30) your ridge solution's test error "
                          f"{np.mean(ridge):.4g} should be far below the minimum-norm one, {np.mean(peak):.4g}.")


# ---------------------------------------------------------------------------------------------
# 4. the double-descent curve
# ---------------------------------------------------------------------------------------------
def _relu_features_ref(X, W):
    return np.maximum(0.0, np.asarray(X, float) @ np.asarray(W, float))


def _min_norm_callback(Phi, y):
    return _min_norm_ref(np.asarray(Phi, float), np.asarray(y, float))


def _curve_ref(X_train, y_train, X_test, y_test, counts, seed=0, bug=None):
    """The reference curve; `bug` names a classic mistake to reproduce for diagnosis."""
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    draws = 1 if bug == "one draw" else _DRAWS
    train, test = np.zeros(len(counts)), np.zeros(len(counts))
    for k, p in enumerate(counts):
        if bug == "rng per count":
            rng = np.random.default_rng(seed)
        for _ in range(draws):
            W = rng.standard_normal((p, d)).T if bug == "W transposed" else rng.standard_normal((d, p))
            W = W / np.sqrt(d)
            W_test = rng.standard_normal((d, p)) / np.sqrt(d) if bug == "test W" else W
            relu = (lambda Z: Z) if bug == "no relu" else (lambda Z: np.maximum(0.0, Z))
            Phi_train, Phi_test = relu(X_train @ W), relu(X_test @ W_test)
            w = _min_norm_ref(Phi_train, y_train)
            reduce = np.sum if bug == "sum" else np.mean
            train[k] += reduce((Phi_train @ w - y_train) ** 2) / draws
            test[k] += reduce((Phi_test @ w - y_test) ** 2) / draws
    if bug == "swapped":
        return test, train
    return train, test


_CURVE_DIAGNOSES = {
    "swapped": "train_mse and test_mse are swapped: return (train_mse, test_mse) in this order.",
    "one draw": ("the curve matches ONE draw of W per feature count: average the errors over N_DRAWS = 5 "
                 "draws."),
    "rng per count": ("the curve matches a new default_rng(seed) for every feature count: make one generator "
                      "per call, before the loops."),
    "W transposed": ("the curve matches W drawn as rng.standard_normal((p, d)).T: draw it with shape (d, p) "
                     "so that the random numbers fill W in the specified order."),
    "test W": ("the curve matches test features computed with a second, new W: the test features must use "
               "the same W as the training features (the model is the pair W, w)."),
    "no relu": "the curve matches linear features X @ W: the features are max(0, X @ W).",
    "sum": "the curve matches sums of squared errors: report their mean over the samples.",
}


def _run_curve(fn, X_train, y_train, X_test, y_test, counts, seed):
    what = (f"double_descent_curve(X_train of shape {X_train.shape}, y_train, X_test of shape {X_test.shape}, "
            f"y_test, feature_counts={list(counts)}, seed={seed})")
    copies = [a.copy() for a in (X_train, y_train, X_test, y_test)]
    result = student_call(fn, X_train, y_train, X_test, y_test, counts, seed=seed, what=what, seconds=10)
    train, test = expect_tuple(result, ("train_mse", "test_mse"), what)
    train = _vector(train, len(counts), "train_mse", what)
    test = _vector(test, len(counts), "test_mse", what)
    for name, before, after in zip(("X_train", "y_train", "X_test", "y_test"), copies,
                                   (X_train, y_train, X_test, y_test)):
        _unchanged(before, after, name, what)
    return train, test, what


def _curve_data(seed, n, n_test, d, noise=0.3):
    rng = np.random.default_rng(700 + seed)
    X_train, X_test = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
    truth = lambda X: np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, -1]  # noqa: E731
    return X_train, truth(X_train) + noise * rng.standard_normal(n), X_test, truth(X_test)


@hidden_check(numpy_only=True)
def check_double_descent_curve(double_descent_curve):
    fn = double_descent_curve
    with global_replaced(fn, "random_relu_features", _relu_features_ref), \
            global_replaced(fn, "min_norm_solution", _min_norm_callback):
        # exact values on fixed seeds: the exercise pins the random stream
        for seed, (n, n_test, d, counts) in enumerate([(12, 30, 3, [1, 5, 12, 20, 40]),
                                                       (7, 9, 2, [7, 3, 30]),
                                                       (20, 50, 6, [4, 19, 20, 21, 64])]):
            data = _curve_data(seed, n, n_test, d)
            train, test, what = _run_curve(fn, *data, counts, seed=3 * seed)
            ref_train, ref_test = _curve_ref(*data, counts, seed=3 * seed)
            with _quiet():
                close = (np.allclose(train, ref_train, rtol=1e-6, atol=1e-12)
                         and np.allclose(test, ref_test, rtol=1e-6, atol=1e-12))
                hint = ""
                if not close:
                    for bug, words in _CURVE_DIAGNOSES.items():
                        bug_train, bug_test = _curve_ref(*data, counts, seed=3 * seed, bug=bug)
                        if (np.allclose(train, bug_train, rtol=1e-6, atol=1e-12)
                                and np.allclose(test, bug_test, rtol=1e-6, atol=1e-12)):
                            hint = words
                            break
                expect_close(train, ref_train, f"train_mse from {what}", rtol=1e-6, atol=1e-12, hint=hint)
                expect_close(test, ref_test, f"test_mse from {what}", rtol=1e-6, atol=1e-12, hint=hint)
        # the shape of the curve: zero training error past the threshold, the test peak at p = N
        n = 30
        data = _curve_data(5, n, 300, 5)
        counts = list(range(2, 62, 2)) + [29, 31]
        counts.sort()
        train, test, what = _run_curve(fn, *data, counts, seed=11)
        counts = np.array(counts)
        with _quiet():
            scale = float(np.var(data[1]))
            if not np.all(train[counts >= n + 2] < 1e-12 * scale):
                raise CheckFailed(f"train_mse from {what} should be 0 (to rounding) for p > N = {n}: every "
                                  f"model interpolates there; got {train[counts >= n + 2][:4]}.")
            if not np.all(train[counts <= n - 4] > 1e-4 * scale):
                raise CheckFailed(f"train_mse from {what} is 0 below the threshold p = N = {n}: "
                                  "is it measured on the training samples?")
            peak = int(counts[np.argmax(test)])
            if abs(peak - n) > 3:
                raise CheckFailed(f"test_mse from {what} peaks at p = {peak}, expected within 3 features of "
                                  f"N = {n} training samples.")
