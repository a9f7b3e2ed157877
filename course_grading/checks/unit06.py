"""Hidden checks for unit 06 (batch normalization).

The reference is torch.nn.BatchNorm1d in float64 (relative error below 1e-7). Inputs are shifted and
scaled per feature, batch sizes run from 2 up, feature counts vary, upstream gradients are random,
caches always come from the student's own forward, and running statistics are read from the
student's bn_param after every call (the caller's dictionary, updated in place).
"""
import numpy as np
import torch

from course_grading.checks.harness import CheckFailed, expect_close, hidden_check, student_call
from course_utils.checks import as_array, expect_tuple

__all__ = ["check_batchnorm_forward", "check_batchnorm_running_stats", "check_batchnorm_eval",
           "check_batchnorm_backward"]

_F64 = torch.float64


def _close(actual, expected, what, hint=""):
    """Against torch float64: relative error below 1e-7 (plus a tiny absolute floor)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    expect_close(actual, expected, what, rtol=1e-7, atol=1e-10 * scale, hint=hint)


def _matches(actual, expected):
    """The tolerance of _close, as a yes/no answer."""
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return bool(np.all(np.abs(actual - expected) <= 1e-7 * np.abs(expected) + 1e-10 * scale))


def _batch(rng, n, d, constant_column=False):
    """A batch whose features have very different offsets and scales (and one constant, if asked)."""
    x = rng.normal(size=(n, d)) * rng.uniform(0.01, 20.0, size=d) + rng.uniform(-50.0, 50.0, size=d)
    if constant_column:
        x[:, 0] = 3.5
    return x


def _affine(rng, d):
    gamma = rng.choice([-1.0, 1.0], size=d) * rng.uniform(0.5, 2.0, size=d)
    return gamma, rng.normal(size=d)


def _torch_bn(d, gamma, beta, eps=1e-5, momentum=0.1):
    bn = torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum, dtype=_F64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    return bn


def _settings(eps, momentum):
    """bn_param entries: absent keys take the defaults (1e-5, 0.1)."""
    param = {}
    if eps is not None:
        param["eps"] = eps
    if momentum is not None:
        param["momentum"] = momentum
    return param


def _forward(batchnorm_forward, x, gamma, beta, bn_param, what):
    result = student_call(batchnorm_forward, x, gamma, beta, bn_param, what=what)
    return expect_tuple(result, ("out", "cache"), "batchnorm_forward")


def _describe(bn_param):
    shown = {k: v for k, v in bn_param.items() if k in ("mode", "eps", "momentum")}
    return "bn_param " + ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _unchanged(before, after, what):
    if before.shape != np.shape(after) or not np.array_equal(before, after):
        raise CheckFailed(f"{what} was changed by batchnorm_forward. Work on new arrays and leave the "
                          f"inputs as they were.")


# (N, D, eps, momentum, constant column); eps/momentum None means "key absent, use the default"
_TRAIN_CASES = [(2, 3, None, None, False), (5, 1, None, None, False), (8, 6, 1e-3, None, True),
                (32, 10, None, 0.3, False), (3, 4, 0.5, 0.05, False)]


@hidden_check(numpy_only=True)
def check_batchnorm_forward(batchnorm_forward):
    for seed, (n, d, eps, momentum, constant) in enumerate(_TRAIN_CASES):
        rng = np.random.default_rng(600 + seed)
        x, (gamma, beta) = _batch(rng, n, d, constant), _affine(rng, d)
        copies = x.copy(), gamma.copy(), beta.copy()
        bn_param = {"mode": "train", **_settings(eps, momentum)}
        label = f"train mode, x of shape {x.shape}, {_describe(bn_param)}"
        out, _ = _forward(batchnorm_forward, x, gamma, beta, bn_param, f"batchnorm_forward ({label})")
        bn = _torch_bn(d, gamma, beta, eps or 1e-5, momentum or 0.1)
        expected = bn(torch.tensor(x)).detach().numpy()
        hint = ("Expected: every column standardised with its batch mean and its biased variance "
                "(divide by N), eps inside the square root, then gamma * x_hat + beta.")
        if constant:
            hint += " Column 0 of this batch is constant: its x_hat must be 0, so out is beta there."
        _close(out, expected, f"out of batchnorm_forward ({label})", hint=hint)
        for name, before, after in zip(("x", "gamma", "beta"), copies, (x, gamma, beta)):
            _unchanged(before, after, name)


def _read_stat(bn_param, key, d, when):
    try:
        value = bn_param[key]
    except KeyError:
        raise CheckFailed(f"bn_param has no {key!r} {when}. Create it (shape ({d},)) when it is absent and "
                          f"store it in the dictionary you were given, not in a copy.") from None
    return as_array(value, f"bn_param[{key!r}] {when}")


@hidden_check(numpy_only=True)
def check_batchnorm_running_stats(batchnorm_forward):
    for seed, (n, d, eps, momentum, _) in enumerate(_TRAIN_CASES):
        rng = np.random.default_rng(610 + seed)
        gamma, beta = _affine(rng, d)
        bn = _torch_bn(d, gamma, beta, eps or 1e-5, momentum or 0.1)
        bn_param = {"mode": "train", **_settings(eps, momentum)}
        start = "starting from an empty bn_param"
        if seed == 2:  # running statistics handed in by the caller
            bn_param["running_mean"], bn_param["running_var"] = rng.normal(size=d), rng.uniform(0.5, 3.0, d)
            with torch.no_grad():
                bn.running_mean.copy_(torch.tensor(bn_param["running_mean"]))
                bn.running_var.copy_(torch.tensor(bn_param["running_var"]))
            start = "starting from given running statistics"
        for step in range(1, 4):
            x = _batch(rng, n, d)
            when = f"after training-mode call {step} ({start}, x of shape {x.shape}, {_describe(bn_param)})"
            _forward(batchnorm_forward, x, gamma, beta, bn_param, f"batchnorm_forward, call {step}")
            bn(torch.tensor(x))
            for key, words in (("running_mean", "the batch mean"),
                               ("running_var", "the UNBIASED batch variance (divide by N - 1)")):
                expected = getattr(bn, key).numpy()
                got = _read_stat(bn_param, key, d, when)
                hint = (f"Expected: (1 - momentum) * previous {key} + momentum * {words}, with momentum "
                        f"{momentum or 0.1} (the weight of the new batch); the first call starts from "
                        f"{'zeros' if key == 'running_mean' else 'ones'} unless bn_param already holds one.")
                _close(got, expected, f"bn_param[{key!r}] {when}", hint=hint)


@hidden_check(numpy_only=True)
def check_batchnorm_eval(batchnorm_forward):
    for seed, (n, d) in enumerate([(1, 3), (4, 1), (7, 5), (2, 8)]):
        rng = np.random.default_rng(620 + seed)
        x, (gamma, beta) = _batch(rng, n, d), _affine(rng, d)
        eps = (None, 1e-3, None, 0.2)[seed]
        running_mean, running_var = x.mean(axis=0) + rng.normal(size=d), rng.uniform(0.2, 50.0, size=d)
        bn_param = {"mode": "eval", **_settings(eps, None),
                    "running_mean": running_mean.copy(), "running_var": running_var.copy()}
        label = f"eval mode, x of shape {x.shape}, {_describe(bn_param)}"
        out, _ = _forward(batchnorm_forward, x, gamma, beta, bn_param, f"batchnorm_forward ({label})")
        bn = _torch_bn(d, gamma, beta, eps or 1e-5)
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor(running_mean))
            bn.running_var.copy_(torch.tensor(running_var))
        bn.eval()
        _close(out, bn(torch.tensor(x)).detach().numpy(), f"out of batchnorm_forward ({label})",
               hint="Expected: x normalised with bn_param's running_mean and running_var (eps inside the "
                    "square root), not with the batch statistics, then gamma * x_hat + beta.")
        for key, before in (("running_mean", running_mean), ("running_var", running_var)):
            got = _read_stat(bn_param, key, d, "after an eval-mode call")
            _close(got, before, f"bn_param[{key!r}] after an eval-mode call ({label})",
                   hint="Evaluation mode must leave the running statistics exactly as they were.")
    rng = np.random.default_rng(629)
    x, (gamma, beta) = _batch(rng, 3, 4), _affine(rng, 4)
    bn_param = {"mode": "eval"}
    out, _ = _forward(batchnorm_forward, x, gamma, beta, bn_param,
                      "batchnorm_forward in eval mode with no running statistics in bn_param")
    bn = _torch_bn(4, gamma, beta)
    bn.eval()
    _close(out, bn(torch.tensor(x)).detach().numpy(),
           "out of batchnorm_forward in eval mode with no running statistics yet",
           hint="Absent running statistics start as zeros (mean) and ones (variance), in both modes.")
    when = "after an eval-mode call that started without running statistics"
    for key, start in (("running_mean", np.zeros(4)), ("running_var", np.ones(4))):
        _close(_read_stat(bn_param, key, 4, when), start, f"bn_param[{key!r}] {when}",
               hint="Absent running statistics are created (zeros for the mean, ones for the variance) and "
                    "stored in bn_param in both modes; evaluation mode never updates them.")


# (N, D, eps, constant column)
_BACKWARD_CASES = [(2, 3, None, False), (5, 4, None, False), (16, 7, 1e-3, True), (3, 1, None, False),
                   (64, 12, None, False)]


def _torch_grads(x, gamma, beta, dout, eps):
    tx = torch.tensor(x, requires_grad=True)
    bn = _torch_bn(x.shape[1], gamma, beta, eps)
    out = bn(tx)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), tx.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy()


_DX_HINT = ("dx must carry all three paths from x to out (directly, through the batch mean and through the "
            "batch variance), computed with this batch's statistics from your cache; the mean path makes "
            "every column of dx sum to zero.")
_DGAMMA_HINT = "dgamma: dout * x_hat summed over the batch, x_hat from this batch's statistics."


def _column_sums_vanish(dx, shapes, hint):
    dx = as_array(dx, f"dx {shapes}").astype(float)
    scale = max(1.0, float(np.max(np.abs(dx), initial=0.0)))
    expect_close(dx.sum(axis=0), np.zeros(dx.shape[1]), f"dx summed over the batch {shapes}",
                 rtol=0, atol=1e-9 * scale * dx.shape[0], hint=hint)


def _own_scale(x, x_hat, informative):
    """Per informative column, s with x_hat = (x - mean) / s; None unless x_hat is such a standardisation
    (in at least one column)."""
    centred = (x - x.mean(axis=0))[:, informative]
    own = x_hat[:, informative]
    scale = (centred * own).sum(axis=0) / np.maximum((own * own).sum(axis=0), 1e-300)
    residual = np.abs(centred - scale * own).max(axis=0, initial=0.0)
    if informative.any() and np.all(scale > 0) and np.all(
            residual <= 1e-6 * np.abs(centred).max(axis=0, initial=0.0)):
        return scale
    return None


_OWN = ("Your batchnorm_forward's training-mode output is wrong (its own cells grade that), so this was "
        "checked against your own x_hat = (out - beta) / gamma. ")


def _check_with_own_x_hat(x, out, gamma, beta, dout, dx, dgamma, eps, shapes, extra):
    """No cascade from a wrong forward: the backward must still be right for the student's own x_hat.

    dgamma = sum(dout * x_hat); in every column whose variance is well above eps, dx must be the
    textbook formula with the student's own statistics, or the exact gradient of the student's forward.
    """
    x_hat = (out - beta) / gamma
    informative = x.var(axis=0) > 1e4 * eps
    scale = _own_scale(x, x_hat, informative)
    if scale is None:   # out is not gamma * (a standardised x) + beta: only the checks above apply
        return
    expected = (dout * x_hat).sum(axis=0)
    expect_close(dgamma, expected, f"dgamma {shapes}", rtol=1e-6,
                 atol=1e-9 * max(1.0, float(np.abs(dout * x_hat).sum(axis=0).max(initial=0.0))),
                 hint=_OWN + _DGAMMA_HINT + extra)
    dx = as_array(dx, f"dx {shapes}").astype(float)
    n = x.shape[0]
    for j, s in zip(np.flatnonzero(informative), scale):
        g, h = dout[:, j] * gamma[j], x_hat[:, j]
        u, along = g - g.mean(), (g * h).sum()
        textbook, exact = (u - h * along / n) / s, (u - h * along / (h * h).sum()) / s
        size = max(1e-12, float(np.abs(u).max()) / s)
        error = min(np.abs(dx[:, j] - textbook).max(), np.abs(dx[:, j] - exact).max()) / size
        if not error <= 1e-3:
            raise CheckFailed(f"dx {shapes}, column {j}: off by {100 * error:.2g}% of its size from the gradient "
                              f"for your x_hat. " + _OWN + _DX_HINT + extra)


@hidden_check(numpy_only=True)
def check_batchnorm_backward(batchnorm_forward, batchnorm_backward):
    for seed, (n, d, eps, constant) in enumerate(_BACKWARD_CASES):
        rng = np.random.default_rng(630 + seed)
        x, (gamma, beta) = _batch(rng, n, d, constant), _affine(rng, d)
        dout = rng.normal(size=(n, d)) * 1.5 + 0.3        # random, never all ones
        ref_out, ref_dx, ref_dgamma, ref_dbeta = _torch_grads(x, gamma, beta, dout, eps or 1e-5)
        bn_param = {"mode": "train", **_settings(eps, None)}
        shapes = f"(x of shape {x.shape}, {_describe(bn_param)})"
        out, cache = _forward(batchnorm_forward, x, gamma, beta, bn_param,
                              f"batchnorm_forward in train mode {shapes}")
        if seed == 1:  # another forward pass in between: the first cache must still be the one used
            other = _batch(rng, n, d)
            _forward(batchnorm_forward, other, *_affine(rng, d), {"mode": "train"},
                     "a second batchnorm_forward call")
        dout_copy = dout.copy()
        result = student_call(batchnorm_backward, dout, cache, what=f"batchnorm_backward(dout, cache) {shapes}")
        dx, dgamma, dbeta = expect_tuple(result, ("dx", "dgamma", "dbeta"), "batchnorm_backward")
        for name, got, of in (("dx", dx, x), ("dgamma", dgamma, gamma), ("dbeta", dbeta, beta)):
            shape = as_array(got, f"{name} {shapes}").shape
            if shape != of.shape:
                raise CheckFailed(f"{name} {shapes}: shape {shape}, expected {of.shape}: a gradient has the "
                                  f"shape of what it is the gradient of"
                                  + (" (summed over the batch axis)." if name != "dx" else "."))
        extra = " A second forward pass ran before this backward: use the cache you are given." if seed == 1 else ""
        if constant:
            extra += " Column 0 of this batch is constant (variance 0): eps keeps the division finite."
        _close(dbeta, ref_dbeta, f"dbeta {shapes}", hint="dbeta: dout summed over the batch." + extra)
        _column_sums_vanish(dx, shapes, _DX_HINT + extra)
        if not np.array_equal(dout, dout_copy):
            raise CheckFailed("batchnorm_backward changed dout. Work on new arrays.")
        out_array = as_array(out, "out of batchnorm_forward").astype(float)
        if out_array.shape != ref_out.shape:
            continue   # the forward is graded by its own cells
        if not _matches(out_array, ref_out):
            _check_with_own_x_hat(x, out_array, gamma, beta, dout, dx, dgamma, eps or 1e-5, shapes, extra)
            continue
        _close(dgamma, ref_dgamma, f"dgamma {shapes}", hint=_DGAMMA_HINT + extra)
        _close(dx, ref_dx, f"dx {shapes}", hint=_DX_HINT + extra)
