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


def _fails(actual, expected, what, hint=""):
    """The message of _close as a value: '' when `actual` matches `expected`."""
    try:
        _close(actual, expected, what, hint=hint)
    except CheckFailed as failure:
        return str(failure)
    return ""


def _own_x_hat_gradients(x, out, gamma, beta, dout, eps):
    """(dx, dgamma) of the textbook backward applied to the student's own x_hat = (out - beta) / gamma, or
    None unless every informative column of that x_hat is an affine image (c + s * x_hat = x) of x."""
    x_hat = (out - beta) / gamma
    informative = x.var(axis=0) > 1e4 * eps
    n = x.shape[0]
    dx = np.zeros_like(x)
    for j in np.flatnonzero(informative):
        h = x_hat[:, j]
        design = np.stack([np.ones(n), h], axis=1)
        (c, s), *_ = np.linalg.lstsq(design, x[:, j], rcond=None)
        if not (abs(s) > 0 and np.abs(c + s * h - x[:, j]).max() <= 1e-6 * np.ptp(x[:, j])):
            return None
        g = dout[:, j] * gamma[j]
        dx[:, j] = (g - g.mean() - h * (g * h).sum() / n) / s
    if not informative.any():
        return None
    return dx, (dout * x_hat).sum(axis=0), informative


def _matches_own_forward(batchnorm_forward, x, gamma, beta, eps, dout, dx, dgamma, rng):
    """Whether dx and dgamma are the gradient of the student's own training-mode forward (CS231n's check):
    centred differences along random directions of x and of gamma."""
    def loss(x_, gamma_):
        bn_param = {"mode": "train", **_settings(eps, None)}
        out, _ = _forward(batchnorm_forward, x_, gamma_, beta, bn_param, "batchnorm_forward")
        return float((as_array(out, "out of batchnorm_forward").astype(float) * dout).sum())

    h = 1e-5
    for grad, point, shift in ((dx, x, lambda v: (x + v, gamma)), (dgamma, gamma, lambda v: (x, gamma + v))):
        grad = as_array(grad, "a gradient").astype(float)
        for _ in range(2):
            v = rng.normal(size=point.shape)
            numeric = (loss(*shift(h * v)) - loss(*shift(-h * v))) / (2 * h)
            exact = float((grad * v).sum())
            if not abs(numeric - exact) <= 1e-5 * (np.abs(grad).sum() * np.abs(v).max() + 1.0):
                return False
    return True


_OWN = ("Your batchnorm_forward's training-mode output is wrong (its own cells grade that), so dgamma and dx "
        "were accepted if they matched any of: the true gradient at these inputs (a cache of the true "
        "intermediate values), the gradient of your own forward, or the backward formula applied to your "
        "own x_hat = (out - beta) / gamma. They match none. Compared with the true gradient: ")


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
        if not np.array_equal(dout, dout_copy):
            raise CheckFailed("batchnorm_backward changed dout. Work on new arrays.")
        extra = " A second forward pass ran before this backward: use the cache you are given." if seed == 1 else ""
        if constant:
            extra += " Column 0 of this batch is constant (variance 0): eps keeps the division finite."
        _close(dbeta, ref_dbeta, f"dbeta {shapes}", hint="dbeta: dout summed over the batch." + extra)
        dx = as_array(dx, f"dx {shapes}").astype(float)
        dgamma = as_array(dgamma, f"dgamma {shapes}").astype(float)
        # the gradient at these inputs: what a right backward gives from a cache of the true intermediates
        failure = (_fails(dgamma, ref_dgamma, f"dgamma {shapes}", hint=_DGAMMA_HINT + extra)
                   or _fails(dx, ref_dx, f"dx {shapes}", hint=_DX_HINT + extra))
        if not failure:
            continue
        out_array = as_array(out, "out of batchnorm_forward").astype(float)
        if out_array.shape != ref_out.shape or _matches(out_array, ref_out):
            raise CheckFailed(failure)
        own = _own_x_hat_gradients(x, out_array, gamma, beta, dout, eps or 1e-5)
        if own is not None:
            own_dx, own_dgamma, informative = own
            # 0.1 % of each column's size: the cache's statistics may differ from the fitted ones by eps
            size = np.maximum(np.abs(own_dx).max(axis=0), 1e-12)
            atol = 1e-9 * max(1.0, float(np.abs(own_dgamma).max()))
            if (np.allclose(dgamma, own_dgamma, rtol=1e-6, atol=atol)
                    and np.all((np.abs(dx - own_dx).max(axis=0) <= 1e-3 * size)[informative])):
                continue
        if _matches_own_forward(batchnorm_forward, x, gamma, beta, eps, dout, dx, dgamma, rng):
            continue
        raise CheckFailed(_OWN + failure)
