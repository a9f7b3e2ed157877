"""Hidden checks for unit 08 (optimizers): update rules and gradient clipping against torch float64.

Every rule runs 25 steps on random float64 problems: the gradient of each step comes from a fixed
random quadratic (plus a fixed random perturbation per step) evaluated at the w the student's rule
returned, and the same recipe drives `torch.optim` in float64; the two trajectories must agree to a
relative error below 1e-7 at every step. Several hyper-parameter sets per rule (the defaults, a
partial config, non-default values, large eps so that where eps sits matters), several shapes.
The state the rule keeps in `config` must equal torch's state under torch's names. In-place updates
and new arrays are both accepted: w is passed as a fresh copy each step and the returned array used.
"""
import numpy as np
import torch

from course_grading.checks.harness import CheckFailed, expect_close, hidden_check, student_call
from course_utils.checks import as_array, expect_scalar, expect_tuple

__all__ = ["check_sgd", "check_sgd_momentum", "check_sgd_momentum_nesterov", "check_adagrad",
           "check_rmsprop", "check_adam", "check_clip_grad_norm"]

_F64 = torch.float64
_STEPS = 25

# torch's defaults (sgd_momentum's momentum=0.9 is the course's choice: torch's default is 0)
_DEFAULTS = {
    "sgd": {"lr": 1e-3},
    "sgd_momentum": {"lr": 1e-3, "momentum": 0.9, "nesterov": False},
    "adagrad": {"lr": 1e-2, "eps": 1e-10},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
}
_STATE = {"sgd": (), "sgd_momentum": ("momentum_buffer",), "adagrad": ("sum",), "rmsprop": ("square_avg",),
          "adam": ("exp_avg", "exp_avg_sq", "step")}
_TORCH = {"sgd": torch.optim.SGD, "sgd_momentum": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
          "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
_WORDS = {
    "sgd": "w - lr * dw, with lr read from config.",
    "sgd_momentum": "momentum_buffer = momentum * momentum_buffer + dw (starting from zeros), then "
                    "w - lr * momentum_buffer; with nesterov=True the step direction is "
                    "dw + momentum * momentum_buffer instead.",
    "adagrad": "sum accumulates dw**2 over all steps (starting from zeros); the step is "
               "lr * dw / (sqrt(sum) + eps), eps added after the square root.",
    "rmsprop": "square_avg = alpha * square_avg + (1 - alpha) * dw**2 (alpha keeps the old average); "
               "the step is lr * dw / (sqrt(square_avg) + eps), eps added after the square root.",
    "adam": "step counts the calls (1 on the first); exp_avg and exp_avg_sq are moving averages of dw and "
            "dw**2 with betas[0] and betas[1]; both are divided by (1 - beta**step) before use; the step is "
            "lr * corrected exp_avg / (sqrt(corrected exp_avg_sq) + eps).",
}


# ---------------------------------------------------------------------------------------------
# problems and the torch reference
# ---------------------------------------------------------------------------------------------
def _problem(seed, shape):
    """w0 and grad(w, t): a fixed random positive-definite quadratic plus a fixed perturbation per step."""
    rng = np.random.default_rng(8000 + seed)
    n = int(np.prod(shape))
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = (q * np.geomspace(0.2, 4.0, n)) @ q.T
    centre = rng.normal(size=n)
    kicks = 0.3 * rng.normal(size=(_STEPS, n))
    w0 = rng.normal(size=shape) * 1.5

    def grad(w, t):
        return (A @ (np.asarray(w, dtype=float).reshape(-1) - centre) + kicks[t]).reshape(shape)
    return w0, grad


def _torch_options(rule, hyper):
    options = {**_DEFAULTS[rule], **hyper}
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    return options


def _torch_run(rule, hyper, w0, grad):
    """[(w after step t, {state key: value}) for t = 1..STEPS] from torch.optim in float64."""
    p = torch.tensor(w0, dtype=_F64)
    optimizer = _TORCH[rule]([p], **_torch_options(rule, hyper))
    trajectory = []
    for t in range(_STEPS):
        p.grad = torch.tensor(grad(p.numpy(), t), dtype=_F64)
        optimizer.step()
        state = {key: np.array(value.numpy() if torch.is_tensor(value) else value, dtype=float)
                 for key, value in optimizer.state[p].items()}
        trajectory.append((p.detach().numpy().copy(), state))
    return trajectory


# ---------------------------------------------------------------------------------------------
# running a student's rule
# ---------------------------------------------------------------------------------------------
def _close(actual, expected, what, hint=""):
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    expect_close(actual, expected, what, rtol=1e-7, atol=1e-10 * scale, hint=hint)


def _describe(hyper):
    if hyper is None:
        return "config=None"
    return "config=" + "{" + ", ".join(f"{k!r}: {v!r}" for k, v in hyper.items()) + "}"


def _expect_hyper(rule, config, hyper, what):
    """After the first call every hyper-parameter is in config: the given ones, defaults for the rest."""
    for key, default in _DEFAULTS[rule].items():
        expected = (hyper or {}).get(key, default)
        if key not in config:
            raise CheckFailed(f"{what}: the returned config has no key {key!r}. Store every hyper-parameter "
                              f"in config under torch's name, filling in the default ({default!r}) when it "
                              "is missing.")
        got = config[key]
        if key == "nesterov":
            ok = isinstance(got, (bool, np.bool_)) and bool(got) == expected
        else:
            try:
                ok = np.allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                                 rtol=1e-12, atol=0)
            except (TypeError, ValueError):
                ok = False
        if not ok:
            words = "default" if key not in (hyper or {}) else "value passed in"
            raise CheckFailed(f"{what}: config[{key!r}] is {got!r}, expected {expected!r} (the {words}).")


def _run_rule(fn, rule, hyper, seed, shape):
    """Run the student's rule STEPS times next to torch; fail at the first step that differs."""
    w0, grad = _problem(seed, shape)
    reference = _torch_run(rule, hyper or {}, w0, grad)
    w = w0.copy()
    config = None if hyper is None else dict(hyper)
    call = f"{rule}(w, dw, {_describe(hyper)}) on w of shape {shape}"
    for t in range(_STEPS):
        dw = grad(w, t)
        result = student_call(fn, w.copy(), dw, config, what=f"{call}, step {t + 1}")
        next_w, config = expect_tuple(result, ("next_w", "config"), rule)
        if not isinstance(config, dict):
            raise CheckFailed(f"{call}, step {t + 1}: the second value returned must be the config dict, "
                              f"got {type(config).__name__}.")
        if t == 0:
            _expect_hyper(rule, config, hyper, f"{call}, after step 1")
        ref_w, ref_state = reference[t]
        next_w = as_array(next_w, f"next_w of {call}, step {t + 1}")
        cause = _cause(rule, {**_DEFAULTS[rule], **(hyper or {})}, w, dw, next_w, config, ref_state, t == 0)
        _close(next_w, ref_w, f"w after step {t + 1} of {_STEPS} ({call})",
               hint=f"{cause}Expected torch.optim's update: {_WORDS[rule]}")
        for key in _STATE[rule]:
            if key == "momentum_buffer" and key not in ref_state:
                continue
            if key not in config:
                raise CheckFailed(f"{call}, after step {t + 1}: config has no key {key!r}. Keep the rule's "
                                  f"state in config under torch's name {key!r}.")
            value = as_array(config[key], f"config[{key!r}] after step {t + 1} ({call})")
            lr = (hyper or {}).get("lr", _DEFAULTS[rule].get("lr"))
            cause = ""
            if key == "momentum_buffer" and value.shape == np.shape(ref_state[key]) and np.allclose(
                    value, -lr * np.asarray(ref_state[key]), rtol=1e-7, atol=1e-12):
                cause = ("Your buffer is the velocity v = -lr * momentum_buffer (the CS231n form): store "
                         "torch's momentum_buffer instead, or convert (momentum_buffer = -v / lr). ")
            _close(value, ref_state[key], f"config[{key!r}] after step {t + 1} ({call})",
                   hint=f"{cause}It must equal torch's state {key!r}. {_WORDS[rule]}")
        w = np.array(next_w, dtype=float)


def _cause(rule, hyper, w, dw, next_w, config, ref_state, first):
    """A sentence naming a common mistake that reproduces the student's step exactly, or ''. The candidates
    use the student's own state from config, so they hold at any step, not only the first."""
    lr, eps = hyper.get("lr"), hyper.get("eps", 0.0)
    state = config if isinstance(config, dict) else {}

    def close(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-14))

    with np.errstate(all="ignore"):
        try:
            buffer = state.get("momentum_buffer", np.nan)
            if rule == "sgd_momentum" and close(buffer, lr * ref_state["momentum_buffer"]):
                return ("lr is applied twice: the buffer accumulates dw itself (momentum * buffer + dw), and "
                        "lr scales only the step. ")
            if rule == "adagrad" and first and close(state.get("sum", np.nan), dw):
                return "sum must accumulate dw**2, not dw. "
            if rule in ("adagrad", "rmsprop"):
                name = "sum" if rule == "adagrad" else "square_avg"
                total = np.asarray(state.get(name, np.nan), dtype=float)
                if close(next_w, w - lr * dw / np.sqrt(total + eps)):
                    return f"eps belongs outside the square root: sqrt({name}) + eps. "
            if rule == "adam":
                m, v = (np.asarray(state.get(k, np.nan), dtype=float) for k in ("exp_avg", "exp_avg_sq"))
                if close(next_w, w - lr * m / (np.sqrt(v) + eps)):
                    return ("exp_avg and exp_avg_sq are used without the bias correction: divide them by "
                            "(1 - beta**step). ")
                if first and (state.get("step") == 0 or not np.all(np.isfinite(next_w))):
                    return ("step counts the calls, so it is 1 on the first call (increment it before the "
                            "bias correction): with step 0, 1 - beta**step is 0. ")
        except (TypeError, ValueError):  # a state of the wrong kind: the checks below name it
            return ""
    return ""


_SHAPES = [(5,), (3, 4), (1,), (2, 3, 2)]


def _check_rule(fn, rule, hyper_sets):
    for index, hyper in enumerate(hyper_sets):
        _run_rule(fn, rule, hyper, seed=10 * len(rule) + index, shape=_SHAPES[index % len(_SHAPES)])


@hidden_check(numpy_only=True)
def check_sgd(sgd):
    _check_rule(sgd, "sgd", [None, {"lr": 0.1}, {"lr": 0.03}, {"lr": 0.2}])


@hidden_check(numpy_only=True)
def check_sgd_momentum(sgd_momentum):
    _check_rule(sgd_momentum, "sgd_momentum",
                [None, {"lr": 0.05, "momentum": 0.5}, {"lr": 0.02}, {"lr": 0.03, "momentum": 0.8,
                                                                     "nesterov": False}])


@hidden_check(numpy_only=True)
def check_sgd_momentum_nesterov(sgd_momentum):
    _check_rule(sgd_momentum, "sgd_momentum",
                [{"lr": 0.05, "momentum": 0.9, "nesterov": True}, {"nesterov": True},
                 {"lr": 0.02, "momentum": 0.6, "nesterov": True}])


@hidden_check(numpy_only=True)
def check_adagrad(adagrad):
    _check_rule(adagrad, "adagrad", [None, {"lr": 0.3}, {"lr": 0.1, "eps": 0.5}, {"lr": 0.5, "eps": 1e-6}])


@hidden_check(numpy_only=True)
def check_rmsprop(rmsprop):
    _check_rule(rmsprop, "rmsprop", [None, {"lr": 0.01, "alpha": 0.9}, {"lr": 0.05, "alpha": 0.5, "eps": 0.3},
                                     {"lr": 0.002}])


@hidden_check(numpy_only=True)
def check_adam(adam):
    _check_rule(adam, "adam", [None, {"lr": 0.05}, {"lr": 0.1, "betas": (0.8, 0.99), "eps": 0.1},
                               {"lr": 0.02, "betas": (0.5, 0.9)}])


# ---------------------------------------------------------------------------------------------
# gradient clipping
# ---------------------------------------------------------------------------------------------
def _clip_cases():
    """(description, grads, max_norm): several tensors, one tensor, no clipping, one dominant tensor."""
    rng = np.random.default_rng(8100)
    cases = [
        ("three gradients, total norm above max_norm", [rng.normal(size=(3, 4)), rng.normal(size=4),
                                                        rng.normal(size=1)], 1.0),
        ("one gradient of shape (6,)", [3.0 * rng.normal(size=6)], 2.5),
        ("two gradients, total norm below max_norm (nothing to clip)",
         [0.1 * rng.normal(size=(2, 3)), 0.1 * rng.normal(size=3)], 5.0),
        ("one large and two small gradients", [20.0 * rng.normal(size=(4, 2)), 0.05 * rng.normal(size=2),
                                               0.05 * rng.normal(size=(1, 3))], 3.0),
        ("four gradients, integer max_norm", [rng.normal(size=(2, 2, 2)), rng.normal(size=5),
                                              rng.normal(size=(3, 1)), rng.normal(size=2)], 2),
        ("two gradients, total norm 1.3", [np.array([[0.5, 0.0], [0.0, 0.0]]), np.array([0.0, 1.2])], 0.4),
    ]
    return cases


def _torch_clip(grads, max_norm):
    params = [torch.zeros(g.shape, dtype=_F64, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g, dtype=_F64)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    return [p.grad.numpy().copy() for p in params], total


@hidden_check(numpy_only=True)
def check_clip_grad_norm(clip_grad_norm):
    for words, grads, max_norm in _clip_cases():
        expected, expected_total = _torch_clip(grads, max_norm)
        call = f"clip_grad_norm(grads, max_norm={max_norm}) with {words}"
        result = student_call(clip_grad_norm, [g.copy() for g in grads], max_norm, what=call)
        clipped, total = expect_tuple(result, ("clipped", "total_norm"), "clip_grad_norm")
        if not isinstance(clipped, (list, tuple)) or len(clipped) != len(grads):
            got = f"{type(clipped).__name__}" + (f" of length {len(clipped)}"
                                                 if isinstance(clipped, (list, tuple)) else "")
            raise CheckFailed(f"{call}: clipped must be a list with one array per gradient "
                              f"({len(grads)} here), got {got}.")
        total = expect_scalar(total, f"total_norm of {call}")
        hint = ("total_norm is the norm of all gradients together BEFORE clipping (what torch returns)."
                if abs(total - max_norm) < 1e-3 * max_norm < abs(expected_total - max_norm)
                else "total_norm is the 2-norm of all gradients together: the square root of the sum of "
                     "all their squared entries.")
        _close(total, expected_total, f"total_norm of {call}", hint=hint)
        for index, (got, ref) in enumerate(zip(clipped, expected)):
            what = f"clipped[{index}] (shape {ref.shape}) of {call}"
            got = as_array(got, what)
            _close(got, ref, what, hint=_clip_hint(got, grads[index], max_norm, expected_total))


def _clip_hint(got, grad, max_norm, total):
    """Name the missing eps when `got` is grad * max_norm / total exactly; else the rule in words."""
    if total > max_norm and got.shape == grad.shape:
        with np.errstate(all="ignore"):
            if np.allclose(got, grad * (max_norm / total), rtol=1e-12, atol=0):
                return ("Your factor is max_norm / total_norm: torch adds an eps of 1e-6 to the norm, "
                        "max_norm / (total_norm + 1e-6).")
    own_norm = float(np.sqrt(np.sum(grad ** 2)))
    if own_norm > max_norm and got.shape == grad.shape and np.allclose(
            got, grad * (max_norm / (own_norm + 1e-6)), rtol=1e-9, atol=0):
        return ("This gradient was clipped by its own norm: every gradient is scaled by ONE factor, "
                "max_norm / (total_norm + 1e-6), from the norm of all gradients together.")
    return ("Scale every gradient by the same factor max_norm / (total_norm + 1e-6), computed from the norm "
            "of all gradients together, and only when total_norm > max_norm; otherwise return them "
            "unchanged.")
