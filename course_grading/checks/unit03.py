"""Hidden checks for unit 03 (backpropagation by hand).

References are torch autograd in float64 and float64 centred differences. Caches always come from
the student's own forward function; upstream gradients are random (never all ones); ReLU inputs stay
at least 0.1 away from the kink; every check uses several shapes, a batch of one included.

A backward is judged on its own (`_judge_backward`): against the reference at the forward's inputs, given
the student's cache with a wrong forward output in it replaced by the right one, or, when the forward is
wrong, against centred differences of the student's own forward; either passes, so a mistake in a
forward costs the forward's points only, and a wrong backward never passes by copying a wrong forward.
"""
import contextlib

import numpy as np
import torch

from course_grading.checks.harness import (CheckFailed, checking, expect_close, hidden_check, is_instance,
                                    numerical_gradient_ref, student_call)
from course_grading.checks.proxy import global_replaced
from course_utils.checks import as_array, expect_scalar, expect_tuple

__all__ = ["check_linear_forward", "check_linear_backward", "check_relu_forward", "check_relu_backward",
           "check_sigmoid_forward", "check_sigmoid_backward", "check_tanh_forward", "check_tanh_backward",
           "check_mse_loss", "check_softmax_cross_entropy", "check_numerical_gradient",
           "check_mlp_loss_and_grads", "check_Value", "check_Value_backward"]

_F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=float), dtype=_F64, requires_grad=grad)


def _np(t):
    return np.zeros(()) if t is None else t.detach().cpu().numpy()


def _close(actual, expected, what, hint=""):
    """Against torch float64: relative error below 1e-7 (plus a tiny absolute floor)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    expect_close(actual, expected, what, rtol=1e-7, atol=1e-10 * scale, hint=hint)


def _close_fd(actual, expected, what, hint=""):
    """Against float64 centred differences."""
    expect_close(actual, expected, what, rtol=1e-6, atol=1e-8, hint=hint)


def _unchanged(before, after, what):
    same_nan = before.dtype.kind == "f" and after.dtype.kind == "f"
    if not np.array_equal(before, after, equal_nan=same_nan):
        index = tuple(int(i) for i in np.argwhere(before != after)[0]) if before.shape == after.shape else ()
        raise CheckFailed(f"{what} was changed by your function (first change at index {index}). "
                          f"Work on new arrays and leave the inputs as they were.")


def _rng_matrix(rng, shape, away_from_zero=0.0):
    if away_from_zero:
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(away_from_zero, 2.0, size=shape)
    return rng.normal(size=shape)


def _upstream(rng, shape):
    """A random upstream gradient (never all ones)."""
    return rng.normal(size=shape) * 1.5 + 0.3


def _forward(fn, name, x, *rest):
    result = student_call(fn, x, *rest, what=f"{name}(...) on x of shape {x.shape}")
    return expect_tuple(result, ("out", "cache"), name)


def _shape_hint(name, of):
    return f"{name} must have the shape of {of}."


def _same(out, reference):
    """Whether a forward output equals the reference (float64, relative 1e-7)."""
    try:
        out = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        return False
    return out.shape == reference.shape and np.allclose(out, reference, rtol=1e-7, atol=1e-10)


def _with_true_values(cache, wrong, right):
    """`cache` with every array equal to the forward's wrong output `wrong` replaced by `right`."""
    if isinstance(cache, np.ndarray):
        wrong = np.asarray(wrong)
        same = (cache.shape == wrong.shape and cache.dtype.kind in "fiu" and wrong.dtype.kind in "fiu"
                and np.array_equal(cache, wrong, equal_nan=True))
        return right.copy() if same else cache
    if isinstance(cache, (tuple, list)):
        return type(cache)(_with_true_values(item, wrong, right) for item in cache) \
            if type(cache) in (tuple, list) else cache
    if isinstance(cache, dict):
        return {key: _with_true_values(value, wrong, right) for key, value in cache.items()}
    return cache


def _own_numeric(forward, name, args, index, dout):
    """Centred differences of sum(out * dout) for the student's own forward, in its argument `index`."""
    def f(value):
        call = [np.array(arg, dtype=float) for arg in args]  # copies: the forward may write into them
        call[index] = value.copy()
        out, _ = _forward(forward, name, *call)
        out = as_array(out, f"out of {name}")
        if out.shape != dout.shape:
            raise CheckFailed(f"out of {name} has shape {out.shape}, not {dout.shape}")
        return float(np.sum(out * dout))
    return numerical_gradient_ref(f, np.array(args[index], dtype=float))


def _judge_backward(call, out, cache, reference_out, against_reference, against_own_forward):
    """The rule for a backward (module docstring); returns True when it was graded against the reference."""
    if _same(out, reference_out):
        against_reference(call(cache))
        return True
    try:
        against_reference(call(_with_true_values(cache, out, reference_out)))
        return True
    except CheckFailed as failure:
        try:
            against_own_forward(call(cache))
        except CheckFailed:
            raise CheckFailed(f"{failure}\n(Your forward gives a wrong output here too. This backward was "
                              "graded against the right gradient, given your cache with the right forward "
                              "output, and against the numerical gradient of your own forward: it matches "
                              "neither.)") from None
        return False


# ---------------------------------------------------------------------------------------------
# linear layer
# ---------------------------------------------------------------------------------------------
_LINEAR_SHAPES = [(4, 3, 3), (1, 5, 2), (6, 2, 7), (10, 8, 4)]  # (N, D_in, D_out)


@hidden_check(numpy_only=True)
def check_linear_forward(linear_forward):
    for seed, (n, d_in, d_out) in enumerate(_LINEAR_SHAPES):
        rng = np.random.default_rng(300 + seed)
        x, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
        copies = x.copy(), W.copy(), b.copy()
        out, _ = _forward(linear_forward, "linear_forward", x, W, b)
        expected = _np(_t(x) @ _t(W) + _t(b))
        _close(out, expected, f"out of linear_forward with x {x.shape}, W {W.shape}, b {b.shape}",
               hint="Expected: every row of x multiplied by W, plus b.")
        for name, before, after in zip(("x", "W", "b"), copies, (x, W, b)):
            _unchanged(before, after, name)


@hidden_check(numpy_only=True)
def check_linear_backward(linear_forward, linear_backward):
    for seed, (n, d_in, d_out) in enumerate(_LINEAR_SHAPES):
        rng = np.random.default_rng(310 + seed)
        x, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
        dout = _upstream(rng, (n, d_out))
        out, cache = _forward(linear_forward, "linear_forward", x.copy(), W.copy(), b.copy())
        dout_copy = dout.copy()
        tx, tW, tb = _t(x, True), _t(W, True), _t(b, True)
        reference_out = tx @ tW + tb
        reference_out.backward(_t(dout))
        shapes = f"(x {x.shape}, W {W.shape}, dout {dout.shape})"

        def call(given):
            result = student_call(linear_backward, dout, given,
                                  what=f"linear_backward(dout, cache) with x {x.shape}, W {W.shape}")
            return expect_tuple(result, ("dx", "dW", "db"), "linear_backward")

        def against_reference(grads):
            for name, got, ref, of, words in zip(
                    ("dx", "dW", "db"), grads, (tx.grad, tW.grad, tb.grad), ("x", "W", "b"),
                    ("the upstream gradient sent back through W",
                     "the layer inputs combined with the upstream gradient, summed over the batch",
                     "the upstream gradient summed over the batch")):
                ref = _np(ref)
                hint = f"{_shape_hint(name, of)} Expected: {words}."
                got_array = as_array(got, f"{name} {shapes}")
                if got_array.shape == ref.T.shape and ref.ndim == 2 and got_array.shape != ref.shape:
                    hint += f" Your {name} has the transposed shape."
                elif got_array.shape == ref.shape and ref.ndim == 2 and ref.shape[0] == ref.shape[1] \
                        and np.allclose(got_array, ref.T, rtol=1e-7, atol=1e-10):
                    hint += f" Your {name} is the transpose of the expected one."
                _close(got_array, ref, f"{name} {shapes}", hint=hint)

        def against_own_forward(grads):
            for index, (name, got) in enumerate(zip(("dx", "dW", "db"), grads)):
                numeric = _own_numeric(linear_forward, "linear_forward", (x, W, b), index, dout)
                _close_fd(got, numeric, f"{name} {shapes} against your own linear_forward")

        by_reference = _judge_backward(call, out, cache, _np(reference_out), against_reference,
                                       against_own_forward)
        _unchanged(dout_copy, dout, "dout")
        if seed == 2 and by_reference:  # the same answer from float64 centred differences
            dx, dW, _ = call(cache)

            def loss_of(xv, Wv, bv):
                return float(np.sum((xv @ Wv + bv) * dout))
            _close_fd(dx, numerical_gradient_ref(lambda v: loss_of(v, W, b), x.copy()), f"dx {shapes}")
            _close_fd(dW, numerical_gradient_ref(lambda v: loss_of(x, v, b), W.copy()), f"dW {shapes}")


# ---------------------------------------------------------------------------------------------
# element-wise activations
# ---------------------------------------------------------------------------------------------
_ACT_SHAPES = [(1, 4), (5, 3), (7, 8), (2, 1)]
_TORCH_ACT = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
_WORDS = {
    "relu": "the upstream gradient where the input was positive, 0 where it was negative",
    "sigmoid": "the upstream gradient times s(1 - s), with s the sigmoid output",
    "tanh": "the upstream gradient times 1 - t**2, with t the tanh output",
}


def _act_inputs(kind, rng, shape):
    x = _rng_matrix(rng, shape, away_from_zero=0.1 if kind == "relu" else 0.0)
    return x * (1.0 if kind == "relu" else 2.0)


def _check_act_forward(kind, forward):
    name = f"{kind}_forward"
    for seed, shape in enumerate(_ACT_SHAPES):
        rng = np.random.default_rng(320 + seed)
        x = _act_inputs(kind, rng, shape)
        x_copy = x.copy()
        out, _ = _forward(forward, name, x)
        _close(out, _np(_TORCH_ACT[kind](_t(x))), f"out of {name} on x of shape {shape}",
               hint=f"Expected: {kind} applied to every entry of x, same shape as x.")
        _unchanged(x_copy, x, "x")


def _check_act_backward(kind, forward, backward, extra=()):
    fname, bname = f"{kind}_forward", f"{kind}_backward"
    cases = [(330 + seed, _act_inputs(kind, np.random.default_rng(330 + seed), shape))
             for seed, shape in enumerate(_ACT_SHAPES)] + list(extra)
    for seed, x in cases:
        rng = np.random.default_rng(seed + 1000)
        dout = _upstream(rng, x.shape)
        out, cache = _forward(forward, fname, x.copy())  # a copy: an in-place forward must not change x here
        out_copy = np.array(out, dtype=float, copy=True)
        dout_copy = dout.copy()
        tx = _t(x, True)
        reference_out = _TORCH_ACT[kind](tx)
        reference_out.backward(_t(dout))
        label = f"dx of {bname} on x of shape {x.shape}"
        if np.abs(x).max() >= 100:
            label += " with inputs as large as 1000"

        def call(given):
            return student_call(backward, dout, given, what=f"{bname}(dout, cache) on x of shape {x.shape}")

        def against_reference(dx):
            _close(dx, _np(tx.grad), label, hint=f"dx must have the shape of x. Expected: {_WORDS[kind]}.")

        def against_own_forward(dx):
            _close_fd(dx, _own_numeric(forward, fname, (x,), 0, dout), f"{label} against your own {fname}")

        by_reference = _judge_backward(call, out, cache, _np(reference_out), against_reference,
                                       against_own_forward)
        _unchanged(dout_copy, dout, "dout")
        _unchanged(out_copy, np.asarray(out, dtype=float), f"the output returned by {fname}")
        if seed == 331 and by_reference:
            f = lambda v: float(np.sum(_np(_TORCH_ACT[kind](_t(v))) * dout))  # noqa: E731
            _close_fd(call(cache), numerical_gradient_ref(f, x.copy()), label)


def _stable_call(fn, x, what, advice):
    """Call fn(x) with numpy overflow / invalid / divide-by-zero turned into errors."""
    with checking(what):
        try:
            return fn._channel.call(fn, x, {}, strict=True)
        except (FloatingPointError, RuntimeWarning, OverflowError) as error:
            raise CheckFailed(f"{what}: numpy reported '{error}'. {advice}") from None


_BIG = np.array([[-1000.0, -40.0, -1.5, 0.0, 1.5, 40.0, 1000.0]])


@hidden_check(numpy_only=True)
def check_relu_forward(relu_forward):
    _check_act_forward("relu", relu_forward)


@hidden_check(numpy_only=True)
def check_relu_backward(relu_forward, relu_backward):
    _check_act_backward("relu", relu_forward, relu_backward)


@hidden_check(numpy_only=True)
def check_sigmoid_forward(sigmoid_forward):
    _check_act_forward("sigmoid", sigmoid_forward)
    for x in (_BIG, _BIG.T.copy()):
        result = _stable_call(
            sigmoid_forward, (x,), f"sigmoid_forward on inputs of ±1000 (x of shape {x.shape})",
            "The sigmoid must not overflow for inputs of ±1000: arrange the computation so that exp "
            "only ever sees numbers that are zero or negative.")
        out, _ = expect_tuple(result, ("out", "cache"), "sigmoid_forward")
        _close(out, _np(torch.sigmoid(_t(x))),
               f"out of sigmoid_forward on inputs of ±1000 (x of shape {x.shape})",
               hint="Expected: 0 for -1000, 1 for +1000, 0.5 for 0; no overflow.")


@hidden_check(numpy_only=True)
def check_sigmoid_backward(sigmoid_forward, sigmoid_backward):
    _check_act_backward("sigmoid", sigmoid_forward, sigmoid_backward, extra=[(390, _BIG.copy())])


@hidden_check(numpy_only=True)
def check_tanh_forward(tanh_forward):
    _check_act_forward("tanh", tanh_forward)


@hidden_check(numpy_only=True)
def check_tanh_backward(tanh_forward, tanh_backward):
    _check_act_backward("tanh", tanh_forward, tanh_backward, extra=[(391, _BIG.copy())])


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
@hidden_check(numpy_only=True)
def check_mse_loss(mse_loss):
    for seed, shape in enumerate([(1, 1), (5,), (4, 3), (6, 1), (2, 5)]):
        rng = np.random.default_rng(340 + seed)
        pred, y = rng.normal(size=shape) * 2, rng.normal(size=shape)
        copies = pred.copy(), y.copy()
        result = student_call(mse_loss, pred, y, what=f"mse_loss(pred, y) with pred of shape {shape}")
        loss, dpred = expect_tuple(result, ("loss", "dpred"), "mse_loss")
        tp = _t(pred, True)
        tl = torch.nn.functional.mse_loss(tp, _t(y))
        tl.backward()
        loss = expect_scalar(loss, f"loss of mse_loss with pred of shape {shape}")
        _close(np.array(loss), _np(tl), f"loss of mse_loss with pred of shape {shape}",
               hint="Expected: the mean of the squared differences over ALL entries (every sample "
                    "and every output).")
        _close(dpred, _np(tp.grad), f"dpred of mse_loss with pred of shape {shape}",
               hint="dpred must have the shape of pred. Expected: the derivative of the mean "
                    "squared error with respect to every entry of pred (mind the factor that comes "
                    "from the square and the number of entries you average over).")
        _unchanged(copies[0], pred, "pred")
        _unchanged(copies[1], y, "y")


def _ce_case(softmax_cross_entropy, logits, y, what, stable=False):
    logits_copy, y_copy = logits.copy(), y.copy()
    if stable:
        result = _stable_call(
            softmax_cross_entropy, (logits, y), what,
            "Logits of ±1000 must give finite, correct values: shift each row by its maximum "
            "before exponentiating, and compute the log-probabilities without taking the log of "
            "a probability that may have underflowed to 0.")
    else:
        result = student_call(softmax_cross_entropy, logits, y, what=what)
    loss, dlogits = expect_tuple(result, ("loss", "dlogits"), "softmax_cross_entropy")
    tz = _t(logits, True)
    tl = torch.nn.functional.cross_entropy(tz, torch.as_tensor(y, dtype=torch.long))
    tl.backward()
    loss_array = as_array(loss, f"loss of {what}")
    if loss_array.size == 1 and not np.isfinite(loss_array).all():
        raise CheckFailed(f"loss of {what}: got {float(loss_array.reshape(()))}; expected the finite "
                          f"value {tl.item():.8g}.")
    loss = expect_scalar(loss, f"loss of {what}")
    _close(np.array(loss), _np(tl), f"loss of {what}",
           hint="Expected: minus the log-probability of the correct class, averaged over the batch.")
    _close(dlogits, _np(tz.grad), f"dlogits of {what}",
           hint="dlogits must have the shape of logits. Expected: the softmax probabilities minus "
                "1 at the correct class, divided by the batch size.")
    _unchanged(logits_copy, logits, "logits")
    _unchanged(y_copy, y, "y")


@hidden_check(numpy_only=True)
def check_softmax_cross_entropy(softmax_cross_entropy):
    for seed, (n, c) in enumerate([(1, 3), (5, 4), (8, 10), (4, 2)]):
        rng = np.random.default_rng(350 + seed)
        logits, y = rng.normal(size=(n, c)) * 2, rng.integers(0, c, size=n)
        _ce_case(softmax_cross_entropy, logits, y,
                 f"softmax_cross_entropy(logits, y) with logits of shape {(n, c)}")
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 500.0],
                       [1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -999.0]])
    y = np.array([1, 1, 0, 2])
    _ce_case(softmax_cross_entropy, logits, y,
             "softmax_cross_entropy(logits, y) with logits of ±1000", stable=True)


# ---------------------------------------------------------------------------------------------
# numerical gradient
# ---------------------------------------------------------------------------------------------
_A = np.random.default_rng(360).normal(size=(2, 3))
_NG_CASES = [  # (description, f, x, h)
    ("f(x) = sum(x**3) - 2 sum(x) on x of shape (4,)",
     lambda x: float(np.sum(x ** 3) - 2 * np.sum(x)), np.array([1.0, -0.5, 2.0, 0.25]), None),
    ("f(x) = sum(A * sin(x)) on x of shape (2, 3)",
     lambda x: float(np.sum(_A * np.sin(x))), np.random.default_rng(361).normal(size=(2, 3)), None),
    ("f(x) = log(sum(exp(x))) on x of shape (2, 2, 2)",
     lambda x: float(np.log(np.sum(np.exp(x)))), np.random.default_rng(362).normal(size=(2, 2, 2)), None),
    ("f(x) = x[0, 0]**4 on x of shape (1, 1)",
     lambda x: float(x[0, 0] ** 4), np.array([[1.3]]), None),
    ("f(x) = sum(sin(3 x)) on x of shape (3,), with h = 0.01",
     lambda x: float(np.sum(np.sin(3 * x))), np.array([0.3, -1.1, 2.0]), 1e-2),
]


def _forward_differences(f, x, h):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    base = f(x.copy())
    for index in np.ndindex(x.shape):
        xp = x.copy()
        xp[index] += h
        grad[index] = (f(xp) - base) / h
    return grad


@hidden_check(numpy_only=True)
def check_numerical_gradient(numerical_gradient):
    for what, f, x0, h in _NG_CASES:
        x = x0.astype(float).copy()
        calls = f"numerical_gradient on {what}"
        if h is None:
            got = student_call(numerical_gradient, f, x, what=calls)
            h = 1e-5
        else:
            got = student_call(numerical_gradient, f, x, h=h, what=calls)
        if not np.array_equal(x, x0):
            index = tuple(int(i) for i in np.argwhere(x != x0)[0])
            raise CheckFailed(f"{calls}: x was not restored. Afterwards x{list(index)} is {x[index]!r}, "
                              f"before the call it was {x0[index]!r}. Put every entry back to its "
                              f"original value after using it.")
        expected = numerical_gradient_ref(f, x0.copy(), h)
        got = as_array(got, f"gradient from {calls}")
        hint = "The gradient must have the shape of x and use centred differences with step h."
        if got.shape == expected.shape:
            forward = _forward_differences(f, x0, h)
            if np.allclose(got, forward, rtol=1e-9, atol=1e-12):
                hint = ("Your values match one-sided (forward) differences. Use centred differences: "
                        "evaluate f a step h above AND a step h below each entry; their error is far "
                        "smaller.")
            elif np.allclose(got, 2 * expected, rtol=1e-6, atol=1e-8):
                hint = ("Your values are twice the expected ones: the two evaluations are 2h apart, "
                        "so that is the distance to divide by.")
            elif np.allclose(got, 0.5 * expected, rtol=1e-6, atol=1e-8):
                hint = "Your values are half the expected ones: check the step you divide by."
        _close_fd(got, expected, f"gradient from {calls}", hint=hint)
    # centred differences are checked against a curved function where one-sided differences fail
    x = np.array([2.0, -1.0, 0.5])
    f = lambda v: float(np.sum(np.exp(2 * v)))  # noqa: E731
    got = student_call(numerical_gradient, f, x, what="numerical_gradient on f(x) = sum(exp(2x))")
    exact = 2 * np.exp(2 * np.array([2.0, -1.0, 0.5]))
    _close_fd(got, exact, "gradient from numerical_gradient on f(x) = sum(exp(2x)) (exact derivative "
                          "2 exp(2x))", hint="Use centred differences: evaluate f both above and below "
                                             "each entry of x.")


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------
_MLP_CASES = [  # (layer sizes, batch)
    ([3, 2], 5), ([4, 5, 1], 1), ([2, 4, 3, 1], 8), ([3, 6, 4, 2], 7), ([2, 3, 3, 3, 1], 4),
    ([2, 4, 3, 1], 1),
]


def _mlp_params(rng, sizes):
    params = {}
    for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(size=(d_in, d_out)) * np.sqrt(2.0 / d_in)
        params[f"b{layer}"] = rng.normal(size=d_out) * 0.5
    return params


# The layer functions an MLP may reuse, with the caches the notebook's solution keeps: while the MLP
# is checked they stand in for the student's own, so that a wrong layer costs its own exercise only.
_REFERENCE_LAYERS = {
    "linear_forward": lambda x, W, b: (x @ W + b, (x, W)),
    "linear_backward": lambda dout, cache: (dout @ cache[1].T, cache[0].T @ dout, dout.sum(axis=0)),
    "relu_forward": lambda x: (np.maximum(x, 0.0), x),
    "relu_backward": lambda dout, cache: dout * (cache > 0),
    "mse_loss": lambda pred, y: (np.mean((pred - y) ** 2), 2.0 * (pred - y) / np.size(pred)),
}


@contextlib.contextmanager
def _reference_layers(fn):
    with contextlib.ExitStack() as stack:
        for name, reference in _REFERENCE_LAYERS.items():
            stack.enter_context(global_replaced(fn, name, reference))
        yield


@hidden_check(numpy_only=True)
def check_mlp_loss_and_grads(mlp_loss_and_grads):
    with _reference_layers(mlp_loss_and_grads):
        _check_mlp(mlp_loss_and_grads)


def _check_mlp(mlp_loss_and_grads):
    for seed, (sizes, n) in enumerate(_MLP_CASES):
        rng = np.random.default_rng(370 + seed)
        params = _mlp_params(rng, sizes)
        X = rng.normal(size=(n, sizes[0])) * 1.5
        y = rng.normal(size=(n, sizes[-1]))
        copies = {k: v.copy() for k, v in params.items()}, X.copy(), y.copy()
        depth = len(sizes) - 1
        layers = f"{depth} layer{'s' if depth > 1 else ''}"
        net = f"the {'-'.join(map(str, sizes))} network ({layers}, batch of {n})"
        result = student_call(mlp_loss_and_grads, params, X, y, what=f"mlp_loss_and_grads on {net}")
        loss, grads = expect_tuple(result, ("loss", "grads"), "mlp_loss_and_grads")
        tparams = {k: _t(v, True) for k, v in params.items()}
        h = _t(X)
        for layer in range(1, depth + 1):
            h = h @ tparams[f"W{layer}"] + tparams[f"b{layer}"]
            if layer < depth:
                h = torch.relu(h)
        tl = torch.mean((h - _t(y)) ** 2)
        tl.backward()
        loss = expect_scalar(loss, f"loss of {net}")
        _close(np.array(loss), _np(tl), f"loss of {net}",
               hint="Expected: ReLU after every layer except the last, then the mean squared error "
                    "over all entries.")
        if not isinstance(grads, dict):
            raise CheckFailed(f"grads for {net} must be a dict with keys {sorted(params)}; "
                              f"got {type(grads).__name__}.")
        missing = [k for k in params if k not in grads]
        if missing:
            raise CheckFailed(f"grads for {net} lacks the key(s) {missing}: give one gradient per "
                              f"parameter, under the parameter's own name.")
        for key in params:
            _close(grads[key], _np(tparams[key].grad), f"grads['{key}'] for {net}",
                   hint=f"grads['{key}'] must have the shape of params['{key}'], {params[key].shape}. "
                        f"Expected: the derivative of the loss with respect to {key}; on the way back "
                        f"the gradient passes each hidden ReLU only where its input was positive.")
        for key, before in copies[0].items():
            _unchanged(before, params[key], f"params['{key}']")
        _unchanged(copies[1], X, "X")
        _unchanged(copies[2], y, "y")


# ---------------------------------------------------------------------------------------------
# Value (scalar reverse-mode autodiff)
# ---------------------------------------------------------------------------------------------
class _Op:
    def __init__(self, expr, calls, fn, ok=lambda a, b: True):
        self.expr, self.calls, self.fn, self.ok = expr, calls, fn, ok


_OPS = [
    _Op("a + b", "Value.__add__", lambda a, b, c: a + b),
    _Op("a * b", "Value.__mul__", lambda a, b, c: a * b),
    _Op("a - b", "Value.__sub__", lambda a, b, c: a - b),
    _Op("-a", "Value.__neg__", lambda a, b, c: -a),
    _Op("a ** 2", "Value.__pow__", lambda a, b, c: a ** 2),
    _Op("a ** 3", "Value.__pow__", lambda a, b, c: a ** 3),
    _Op("a ** -1", "Value.__pow__", lambda a, b, c: a ** -1, lambda a, b: abs(a) > 0.5),
    _Op("a ** 0.5", "Value.__pow__", lambda a, b, c: a ** 0.5, lambda a, b: a > 0.1),
    _Op("a ** -1.5", "Value.__pow__", lambda a, b, c: a ** -1.5, lambda a, b: a > 0.3),
    _Op("a / b", "Value.__truediv__", lambda a, b, c: a / b, lambda a, b: abs(b) > 0.5),
    _Op("a + c", "Value.__add__ with a number", lambda a, b, c: a + c),
    _Op("a - c", "Value.__sub__ with a number", lambda a, b, c: a - c),
    _Op("a * c", "Value.__mul__ with a number", lambda a, b, c: a * c),
    _Op("a / c", "Value.__truediv__ with a number", lambda a, b, c: a / c),
    _Op("c + a", "Value.__radd__", lambda a, b, c: c + a),
    _Op("c - a", "Value.__rsub__", lambda a, b, c: c - a),
    _Op("c * a", "Value.__rmul__", lambda a, b, c: c * a),
    _Op("c / a", "Value.__rtruediv__", lambda a, b, c: c / a, lambda a, b: abs(a) > 0.5),
    _Op("a.exp()", "Value.exp", lambda a, b, c: a.exp(), lambda a, b: abs(a) < 3),
    _Op("a.log()", "Value.log", lambda a, b, c: a.log(), lambda a, b: a > 0.1),
    _Op("a.tanh()", "Value.tanh", lambda a, b, c: a.tanh()),
    _Op("a.relu()", "Value.relu", lambda a, b, c: a.relu(), lambda a, b: abs(a) > 0.1),
    _Op("a.sigmoid()", "Value.sigmoid", lambda a, b, c: a.sigmoid()),
    _Op("a * a", "Value.__mul__ with the same Value used twice", lambda a, b, c: a * a),
    _Op("a + a", "Value.__add__ with the same Value used twice", lambda a, b, c: a + a),
    _Op("a * b + a", "the Value a used twice", lambda a, b, c: a * b + a),
]
_OP_INPUTS = [(0.8, -1.7, 2.5), (-1.3, 0.6, -0.75), (1.9, 2.2, 1.5)]


def _number(value, what):
    try:
        number = float(value)
    except Exception:
        raise CheckFailed(f"{what}: expected a number, got {type(value).__name__}.") from None
    return number


def _scalar_close(got, expected, what, hint=""):
    if not np.isfinite(got) or abs(got - expected) > 1e-7 * abs(expected) + 1e-10 * max(1.0, abs(expected)):
        raise CheckFailed(f"{what}: got {got:.10g}, expected {expected:.10g}. {hint}".strip())


def _check_op(Value, op, a0, b0, c):
    """Raise CheckFailed (naming the operator) unless op matches torch for these inputs."""
    where = f"`{op.expr}` ({op.calls}) with a = Value({a0}), b = Value({b0}), c = {c}"
    with checking(f"Value: {where}, then out.backward()", seconds=5):
        a, b = Value(a0), Value(b0)
        out = op.fn(a, b, c)
        if not is_instance(out, Value):
            raise CheckFailed(f"Value: {where} returned {type(out).__name__}, expected a new Value.")
        out.backward()
        data, ga, gb = out.data, a.grad, b.grad
    ta, tb = _t(a0, True), _t(b0, True)
    tout = op.fn(ta, tb, c)
    tout.backward()
    _scalar_close(_number(data, f"out.data for {where}"), tout.item(), f"Value: out.data for {where}",
                  "Expected: the value of the expression.")
    for name, got, ref in (("a", ga, ta.grad), ("b", gb, tb.grad)):
        expected = 0.0 if ref is None else ref.item()
        got = _number(got, f"{name}.grad for {where}")
        hint = f"Expected: d(out)/d{name}, the derivative of the expression with respect to {name}."
        if got == 0.0 and expected != 0.0 and op.expr == "a + b":
            hint += (" All gradients stayed at 0: backward() has to give the output node a gradient "
                     "of 1 before it walks back through the graph.")
        if "twice" in op.calls or "used twice" in op.calls:
            hint += " When a Value is used twice, both uses add to its gradient."
        _scalar_close(got, expected, f"Value: {name}.grad after out.backward() for {where}", hint)


def _check_all_ops(Value):
    for op in _OPS:
        for a0, b0, c in _OP_INPUTS:
            if op.ok(a0, b0):
                _check_op(Value, op, a0, b0, c)


_CORE = ("a + b", "a * b", "a * c", "c * a", "a.tanh()")  # what the fixed graphs of the backward check use


def _working_ops(Value):
    """The operators that are right on their own: a broken one costs the operators' exercise, and the
    backward check builds its random graphs from the others (it needs the core ones)."""
    working = []
    for op in _OPS:
        try:
            for a0, b0, c in _OP_INPUTS:
                if op.ok(a0, b0):
                    _check_op(Value, op, a0, b0, c)
        except CheckFailed:
            if op.expr in _CORE:
                raise
            continue
        working.append(op)
    return working


@hidden_check(numpy_only=True)
def check_Value(Value):
    with checking("Value(3.0)", seconds=5):
        v = Value(3.0)
        data, grad = v.data, v.grad
    if _number(data, "Value(3.0).data") != 3.0 or _number(grad, "Value(3.0).grad") != 0.0:
        raise CheckFailed(f"Value(3.0) should have data 3.0 and grad 0.0; got data {data!r}, grad {grad!r}.")
    _check_all_ops(Value)


def _build_pair(Value, seed, n_ops, ops=_OPS, n_leaves=6):
    """The same random expression graph built from student Values and torch tensors."""
    rng = np.random.default_rng(seed)
    starts = rng.choice([-1.0, 1.0], size=n_leaves) * rng.uniform(0.3, 2.0, size=n_leaves)
    T = [_t(v, True) for v in starts]
    S = [Value(float(v)) for v in starts]
    leaves = list(range(n_leaves))
    for _ in range(n_ops):
        i = len(T) - 1 if rng.random() < 0.5 else int(rng.integers(len(T)))
        j = int(rng.integers(len(T)))
        c = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0))
        while True:
            op = ops[int(rng.integers(len(ops)))]
            if op.ok(T[i].item(), T[j].item()):
                break
        t_new, s_new = op.fn(T[i], T[j], c), op.fn(S[i], S[j], c)
        if abs(t_new.item()) > 4.0:
            t_new, s_new = t_new.tanh(), s_new.tanh()
        T.append(t_new)
        S.append(s_new)
    t_out, s_out = T[-1], S[-1]
    for k in rng.choice(len(T) - 1, size=min(5, len(T) - 1), replace=False):
        t_out, s_out = t_out + T[int(k)], s_out + S[int(k)]
    return [S[k] for k in leaves], s_out, [T[k] for k in leaves], t_out


def _chain_pair(Value, steps=70):
    """A deep chain (longest path of about 200 nodes) with the running value reused at every step."""
    tx, sx = _t(0.3, True), Value(0.3)
    t, s = tx, sx
    for _ in range(steps):
        t = t + 0.05 * t.tanh()
        s = s + 0.05 * s.tanh()
    return [sx], s, [tx], t


_ORDER_HINT = ("Every operator used here is right on its own, so look at backward(): it must call each "
               "node's backward step exactly once, in reverse topological order, i.e. a node only after "
               "every node that uses it has passed its gradient on.")


def _compare_graph(Value, label, built, times=1):
    s_leaves, s_out, t_leaves, t_out = built
    t_out.backward(retain_graph=True)
    expected = [0.0 if t.grad is None else t.grad.item() for t in t_leaves]
    _scalar_close(_number(s_out.data, f"output of {label}"), t_out.item(),
                  f"Value: the output's data in {label}",
                  "The forward values of the graph are wrong.")
    for call in range(1, times + 1):
        with checking(f"out.backward() (call {call}) on {label}", seconds=5):
            s_out.backward()
        for k, (leaf, ref) in enumerate(zip(s_leaves, expected)):
            got = _number(leaf.grad, f"leaf x{k}.grad in {label}")
            if call == 1:
                _scalar_close(got, ref, f"Value: leaf x{k}.grad after out.backward() on {label}",
                              _ORDER_HINT)
            else:
                first = ref
                hint = ("Calling backward() a second time must add the same gradients again to the "
                        "leaves (they accumulate, as in PyTorch), so every leaf gradient doubles.")
                if abs(first) > 1e-6 and abs(got - first) <= 1e-7 * abs(first):
                    hint += " Yours did not change: something resets or overwrites the leaves' gradients."
                elif abs(first) > 1e-6:
                    hint += (" Check that the intermediate nodes do not still hold their gradients from "
                             "the first call when the second one starts: only the leaves accumulate.")
                _scalar_close(got, call * first,
                              f"Value: leaf x{k}.grad after the second out.backward() on {label}", hint)


@hidden_check(numpy_only=True)
def check_Value_backward(Value):
    ops = _working_ops(Value)  # names a broken core operator first, if there is one
    with checking("building the graph d = a*b; out = tanh(2*d) + d from your Value", seconds=10):
        a, b = Value(0.7), Value(-1.2)
        d = a * b
        s_out = (d * 2.0).tanh() + d
    ta, tb = _t(0.7, True), _t(-1.2, True)
    td = ta * tb
    _compare_graph(Value, "the graph d = a*b; out = tanh(2*d) + d (d is used twice, by paths of "
                          "different lengths)", ([a, b], s_out, [ta, tb], (td * 2.0).tanh() + td))
    for seed, n_ops in ((1, 10), (2, 30), (3, 60), (4, 200), (5, 200)):
        with checking(f"building a random graph of {n_ops} operations from your Value", seconds=10):
            built = _build_pair(Value, 3000 + seed, n_ops, ops)
        _compare_graph(Value, f"a random graph of {n_ops} operations (nodes reused several times)", built)
    with checking("building a chain of about 200 nodes from your Value", seconds=10):
        built = _chain_pair(Value)
    _compare_graph(Value, "a deep chain of about 200 nodes (x = x + 0.05 * x.tanh(), 70 times)", built)
    with checking("building a random graph of 40 operations from your Value", seconds=10):
        built = _build_pair(Value, 3100, 40, ops)
    _compare_graph(Value, "a random graph of 40 operations, backward() called twice", built, times=2)
