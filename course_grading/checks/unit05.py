"""Hidden checks for unit 05 (weight initialization).

Gains are compared with torch.nn.init.calculate_gain itself. Initializers are graded by statistics
over many draws, never by one random stream: for several fan-in/fan-out pairs, both modes and several
nonlinearities, the mean, the standard deviation, the bound (uniform) and the share of entries within
one std or half the bound (which tells a uniform draw from a normal one) must lie within six standard
errors of torch's formulas, the expected std and bound being computed with torch's own functions on
a torch-shaped (fan_out, fan_in) tensor. An rng argument must be honoured: two generators with the
same seed give the same array, another seed another one, rng=None a fresh draw each call.

A Kaiming initializer is graded on its own formula: when the student's calculate_gain disagrees
with torch, draws that follow the student's own gain are accepted too (that mistake costs points
in calculate_gain's cell only).
"""
import math

import numpy as np
import torch

from course_grading.checks.harness import CheckFailed, hidden_check, student_call
from course_utils.checks import as_array, expect_scalar

__all__ = ["check_calculate_gain", "check_xavier_uniform", "check_xavier_normal", "check_kaiming_uniform",
           "check_kaiming_normal"]

_SIGMAS = 6.0          # tolerance of every statistic, in standard errors
_NORMAL_WITHIN_STD = math.erf(1 / math.sqrt(2))   # P(|z| <= 1) for a standard normal

# ---------------------------------------------------------------------------------------------
# torch's formulas (computed here, in the judge)
# ---------------------------------------------------------------------------------------------
_GAIN_CASES = [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
               ("leaky_relu", 0.2), ("leaky_relu", 0.0), ("leaky_relu", 1), ("leaky_relu", 3.0),
               ("tanh", 0.5), ("relu", 0.3), ("linear", 2.0), ("sigmoid", 0.1)]

_GAIN_WORDS = {
    "linear": "1 (a linear layer loses nothing)",
    "sigmoid": "1 (PyTorch's convention for sigmoid)",
    "tanh": "5/3",
    "relu": "sqrt(2) (ReLU keeps half of the second moment)",
    "leaky_relu": "sqrt(2 / (1 + slope**2)), the slope being param, or 0.01 when param is None",
}


def _torch_gain(nonlinearity, param=None):
    return float(torch.nn.init.calculate_gain(nonlinearity, param))


def _torch_fans(fan_in, fan_out):
    """(fan_in, fan_out) as torch reads them from its (fan_out, fan_in) weight layout."""
    weight = torch.empty(fan_out, fan_in, dtype=torch.float64)
    return (torch.nn.init._calculate_correct_fan(weight, "fan_in"),
            torch.nn.init._calculate_correct_fan(weight, "fan_out"))


def _xavier_std(fan_in, fan_out, gain):
    t_in, t_out = _torch_fans(fan_in, fan_out)
    return gain * math.sqrt(2.0 / float(t_in + t_out))


def _kaiming_std(fan_in, fan_out, mode, gain):
    weight = torch.empty(fan_out, fan_in, dtype=torch.float64)
    return gain / math.sqrt(torch.nn.init._calculate_correct_fan(weight, mode))


# ---------------------------------------------------------------------------------------------
# calculate_gain
# ---------------------------------------------------------------------------------------------
@hidden_check(numpy_only=True)
def check_calculate_gain(calculate_gain):
    for nonlinearity, param in _GAIN_CASES:
        if param is None:
            what = f"calculate_gain({nonlinearity!r})"
            result = student_call(calculate_gain, nonlinearity, what=what)
        else:
            what = f"calculate_gain({nonlinearity!r}, {param!r})"
            result = student_call(calculate_gain, nonlinearity, param, what=what)
        got = expect_scalar(result, what)
        expected = _torch_gain(nonlinearity, param)
        if abs(got - expected) > 1e-10 * expected:
            hint = f"Expected {_GAIN_WORDS[nonlinearity]}."
            if nonlinearity != "leaky_relu" and param is not None:
                hint += f" For {nonlinearity!r} the parameter is ignored."
            raise CheckFailed(f"{what}: got {got:.10g}, expected {expected:.10g}. {hint}")
    what = "calculate_gain('leaky_relu', None)"
    got = expect_scalar(student_call(calculate_gain, "leaky_relu", None, what=what), what)
    if abs(got - _torch_gain("leaky_relu")) > 1e-10:
        raise CheckFailed(f"{what}: got {got:.10g}, expected {_torch_gain('leaky_relu'):.10g} "
                          f"(param=None means the default slope 0.01).")
    for name in ("ReLU", "gelu", "softmax"):   # names torch rejects too
        what = f"calculate_gain({name!r})"
        try:
            result = student_call(calculate_gain, name, what=what)
        except CheckFailed as failure:
            if f"{what} raised ValueError:" in str(failure):
                continue
            raise CheckFailed(f"{failure} Expected a ValueError for a name outside the table.") from None
        raise CheckFailed(f"{what} returned {result!r}: for any name outside the table, raise a ValueError "
                          f"(as torch does).")


# ---------------------------------------------------------------------------------------------
# statistics of one draw
# ---------------------------------------------------------------------------------------------
def _call_text(name, fan_in, fan_out, options, seed):
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    rng = "" if seed is None else f", rng=np.random.default_rng({seed})"
    return f"{name}({fan_in}, {fan_out}{extra}{rng})"


def _draw(fn, name, fan_in, fan_out, options, seed):
    """The student's array for one call (rng from `seed`, or no rng when seed is None), shape checked."""
    what = _call_text(name, fan_in, fan_out, options, seed)
    if seed is None:
        result = student_call(fn, fan_in, fan_out, what=what, **options)
    else:
        result = student_call(fn, fan_in, fan_out, what=what, rng=np.random.default_rng(seed), **options)
    w = as_array(result, what)
    if w.shape != (fan_in, fan_out):
        hint = ""
        if w.shape == (fan_out, fan_in):
            hint = " That is transposed: rows are the fan_in inputs, columns the fan_out outputs."
        elif w.size == fan_in * fan_out:
            hint = " The number of entries is right; give the array its 2-D shape."
        raise CheckFailed(f"{what}: shape {w.shape}, expected ({fan_in}, {fan_out}).{hint}")
    if not (np.issubdtype(w.dtype, np.floating)):
        raise CheckFailed(f"{what}: dtype {w.dtype}, expected floating-point numbers (float64).")
    bad = ~np.isfinite(w)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckFailed(f"{what}: {int(bad.sum())} entries are not finite (first {w[index]} at index {index}).")
    return w.astype(float), what


def _problem(w, kind, std):
    """Why the draws `w` do not look like `kind` ('uniform'/'normal') with this std, or '' when they do."""
    x = w.ravel()
    n = x.size
    mean, s = float(x.mean()), float(x.std())
    if abs(mean) > _SIGMAS * std / math.sqrt(n):
        return (f"the mean of the {n} entries is {mean:.4g}, expected 0 (within ±{_SIGMAS * std / math.sqrt(n):.2g} "
                f"for this many draws)")
    kurtosis = 1.8 if kind == "uniform" else 3.0
    std_tolerance = _SIGMAS * math.sqrt((kurtosis - 1) / (4 * n))
    if abs(s / std - 1) > std_tolerance:
        return (f"the standard deviation of the {n} entries is {s:.5g}, expected {std:.5g} "
                f"(within ±{100 * std_tolerance:.2g}% for this many draws)")
    if kind == "uniform":
        bound = math.sqrt(3.0) * std
        largest = float(np.abs(x).max())
        if largest > bound * (1 + 1e-9):
            return f"an entry of size {largest:.5g} lies outside [-{bound:.5g}, {bound:.5g}], the uniform range"
        if largest < bound * (1 - 40.0 / n):
            return (f"the largest |entry| is {largest:.6g}; over {n} uniform draws it should come within "
                    f"{40.0 / n:.1e} (relative) of the bound {bound:.6g}")
        share, p, words = float(np.mean(np.abs(x) <= bound / 2)), 0.5, "half the bound"
    else:
        share, p, words = float(np.mean(np.abs(x) <= std)), _NORMAL_WITHIN_STD, "one standard deviation"
    tolerance = _SIGMAS * math.sqrt(p * (1 - p) / n)
    if abs(share - p) > tolerance:
        return (f"{100 * share:.1f}% of the entries lie within {words} of 0, expected {100 * p:.1f}% "
                f"(±{100 * tolerance:.1f}%) for a {kind} distribution; the spread is right but the shape "
                f"of the distribution is not")
    return ""


def _diagnosis(w, std, factors):
    """A hint when the observed std is off from `std` by one of the known factors [(factor, words)]."""
    ratio = float(w.std()) / std
    for factor, words in factors:
        if abs(factor - 1) > 0.05 and abs(ratio / factor - 1) < 0.02:
            return f" Yours is {ratio:.3g} times the expected std: {words}."
    return ""


_COMMON_HINTS = [
    (math.sqrt(3), "a factor sqrt(3), the ratio of a uniform bound to its std"),
    (1 / math.sqrt(3), "a factor sqrt(3), the ratio of a uniform bound to its std"),
]


def _expect_draws(w, what, kind, stds, hint_factors):
    """Pass when the draws match `kind` with one of the candidate stds (the first is torch's)."""
    problems = [_problem(w, kind, std) for std in stds]
    if all(problems):
        raise CheckFailed(f"{what}: {problems[0]}.{_diagnosis(w, stds[0], hint_factors)}")


def _check_rng(fn, name, fan_in, fan_out, options):
    """Same seed -> same array; another seed -> another array; rng=None -> a fresh draw each call."""
    first, what = _draw(fn, name, fan_in, fan_out, options, 11)
    again, _ = _draw(fn, name, fan_in, fan_out, options, 11)
    if not np.array_equal(first, again):
        raise CheckFailed(f"{what}, called twice with two generators made with the same seed, gave different "
                          f"arrays. Draw every number from the rng argument (rng.uniform, rng.normal, ...), "
                          f"not from np.random directly.")
    other, _ = _draw(fn, name, fan_in, fan_out, options, 12)
    if np.array_equal(first, other):
        raise CheckFailed(f"{what} and the same call with np.random.default_rng(12) gave the same array: "
                          f"the draw must come from the rng you are given.")
    fresh, what_none = _draw(fn, name, fan_in, fan_out, options, None)
    fresh_again, _ = _draw(fn, name, fan_in, fan_out, options, None)
    if np.array_equal(fresh, fresh_again):
        raise CheckFailed(f"{what_none} gave the same array twice: with rng=None make a fresh "
                          f"np.random.default_rng() (no fixed seed) in each call.")


_SMALL_SHAPES = [(1, 7), (5, 1), (3, 2), (1, 1)]


def _check_shapes(fn, name, options):
    for seed, (fan_in, fan_out) in enumerate(_SMALL_SHAPES):
        _draw(fn, name, fan_in, fan_out, options, 500 + seed)


# ---------------------------------------------------------------------------------------------
# Xavier / Glorot
# ---------------------------------------------------------------------------------------------
_XAVIER_CASES = [(300, 200, None), (100, 500, 5 / 3), (784, 64, math.sqrt(2)), (250, 250, 0.5), (80, 600, 1.0)]


def _check_xavier(fn, name, kind):
    for seed, (fan_in, fan_out, gain) in enumerate(_XAVIER_CASES):
        options = {} if gain is None else {"gain": gain}
        w, what = _draw(fn, name, fan_in, fan_out, options, 100 + seed)
        g = 1.0 if gain is None else gain
        std = _xavier_std(fan_in, fan_out, g)
        _expect_draws(w, what, kind, [std], _COMMON_HINTS + [
            (1 / g, "as if the gain were left out"),
            (math.sqrt((fan_in + fan_out) / (2 * fan_in)), "as if only fan_in were used"),
            (math.sqrt((fan_in + fan_out) / (2 * fan_out)), "as if only fan_out were used")])
    _check_shapes(fn, name, {})
    _check_rng(fn, name, 40, 30, {"gain": 2.0})


@hidden_check(numpy_only=True)
def check_xavier_uniform(xavier_uniform):
    _check_xavier(xavier_uniform, "xavier_uniform", "uniform")


@hidden_check(numpy_only=True)
def check_xavier_normal(xavier_normal):
    _check_xavier(xavier_normal, "xavier_normal", "normal")


# ---------------------------------------------------------------------------------------------
# Kaiming / He
# ---------------------------------------------------------------------------------------------
_KAIMING_CASES = [
    (300, 200, {}),
    (300, 200, {"mode": "fan_out"}),
    (100, 500, {"nonlinearity": "relu"}),
    (100, 500, {"nonlinearity": "relu", "mode": "fan_out"}),
    (400, 150, {"a": 1.0}),
    (150, 400, {"a": 0.5, "mode": "fan_out"}),
    (256, 128, {"nonlinearity": "tanh"}),
    (128, 256, {"nonlinearity": "linear", "mode": "fan_out"}),
    (200, 300, {"nonlinearity": "sigmoid", "mode": "fan_in"}),
    (300, 100, {"nonlinearity": "relu", "a": 0.3}),
]


class _StudentGain:
    """The student's own calculate_gain, asked only when a draw disagrees with torch's gain."""

    def __init__(self, calculate_gain):
        self.fn, self.values, self.broken = calculate_gain, {}, False

    def __call__(self, nonlinearity, a):
        key = (nonlinearity, a)
        if key not in self.values and not self.broken:
            what = f"calculate_gain({nonlinearity!r}, {a!r})"
            try:
                self.values[key] = expect_scalar(student_call(self.fn, nonlinearity, a, what=what, seconds=2), what)
            except CheckFailed:
                self.broken = True
        return self.values.get(key)


def _check_kaiming(fn, name, kind, calculate_gain):
    student_gain = _StudentGain(calculate_gain)
    for seed, (fan_in, fan_out, options) in enumerate(_KAIMING_CASES):
        w, what = _draw(fn, name, fan_in, fan_out, options, 200 + seed)
        mode = options.get("mode", "fan_in")
        nonlinearity, a = options.get("nonlinearity", "leaky_relu"), options.get("a", 0.0)
        gain = _torch_gain(nonlinearity, a)
        stds = [_kaiming_std(fan_in, fan_out, mode, gain)]
        if _problem(w, kind, stds[0]):
            own = student_gain(nonlinearity, a)
            if own is not None and own > 0 and abs(own - gain) > 1e-9:
                stds.append(_kaiming_std(fan_in, fan_out, mode, own))
        other = "fan_out" if mode == "fan_in" else "fan_in"
        _expect_draws(w, what, kind, stds, _COMMON_HINTS + [
            (_kaiming_std(fan_in, fan_out, other, gain) / stds[0], f"as if {other} were used instead of {mode}"),
            (1 / gain, "as if the gain were left out"),
            (_torch_gain(nonlinearity) / gain, "as if the slope a were not passed on to the gain"),
            (stds[0], "as if the variance were used as the std")])
    _check_shapes(fn, name, {"nonlinearity": "relu"})
    _check_rng(fn, name, 40, 30, {"nonlinearity": "relu", "mode": "fan_out"})


@hidden_check(numpy_only=True)
def check_kaiming_uniform(kaiming_uniform, calculate_gain):
    _check_kaiming(kaiming_uniform, "kaiming_uniform", "uniform", calculate_gain)


@hidden_check(numpy_only=True)
def check_kaiming_normal(kaiming_normal, calculate_gain):
    _check_kaiming(kaiming_normal, "kaiming_normal", "normal", calculate_gain)
