"""Hidden checks for unit 07 (dropout and regularization). Instructor-only.

Dropout is random, so it is graded by properties that every correct implementation has, never by
one random stream: each output entry is 0 or x/(1-p), the drop rate over many entries is p within
five standard errors, entries are dropped independently, the mean is preserved, eval mode is the
identity, the rng argument drives every draw, and backward reuses the forward's mask (dx is the
derivative of what the student's own forward did). Penalties are compared with torch autograd in
float64 and with float64 centred differences of the penalty formula computed here. EarlyStopping
is run on scripted validation curves and compared, step by step, with the documented rule.

Student objects are only called, or have attributes read, so these checks run unchanged when the
objects are proxies of a sandboxed kernel.
"""
import numpy as np
import torch

from course_grading.checks.harness import (CheckFailed, expect_close, hidden_check, numerical_gradient_ref,
                                    student_call)
from course_utils.checks import as_array, expect_scalar, expect_tuple

__all__ = ["check_dropout_forward", "check_dropout_backward", "check_l2_penalty", "check_l1_penalty",
           "check_EarlyStopping"]

_F64 = torch.float64


def _away_from_zero(rng, shape):
    """Entries with |x| in [0.5, 2]: a dropped entry (0) is never confused with a kept one."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def _unchanged(before, after, what):
    if not np.array_equal(before, after):
        raise CheckFailed(f"{what} was changed by your function. Leave the inputs as they were and "
                          f"return new arrays.")


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------
def _dropout(dropout_forward, x, p, mode, rng):
    """The student's (out, cache) for one call, with out checked to be an array of x's shape."""
    what = f"dropout_forward(x, p={p}, mode={mode!r}, rng) on x of shape {x.shape}"
    result = student_call(dropout_forward, x, p, mode, rng, what=what)
    out, cache = expect_tuple(result, ("out", "cache"), "dropout_forward")
    out = as_array(out, f"out of {what}").astype(float)
    if out.shape != x.shape:
        raise CheckFailed(f"out of {what}: shape {out.shape}, expected {x.shape} (the shape of x).")
    if not np.isfinite(out).all():
        raise CheckFailed(f"out of {what} contains NaN or inf.")
    return out, cache, what


def _five_se(p, n):
    return 5.0 * np.sqrt(p * (1.0 - p) / n)


def _check_kept_values(out, x, p, what):
    """Every entry is 0 (dropped) or x / (1 - p) (kept, inverted scaling)."""
    kept = out != 0
    if not kept.any():
        return kept
    ratio = out[kept] / x[kept]
    target = 1.0 / (1.0 - p)
    if np.allclose(ratio, target, rtol=1e-10, atol=0):
        return kept
    if np.allclose(ratio, 1.0, rtol=1e-10, atol=0):
        hint = ("the kept entries equal x: inverted dropout divides them by 1 - p during training, "
                "so that the expected output equals x and eval mode needs no scaling.")
    elif np.allclose(ratio, 1.0 / p, rtol=1e-10, atol=0):
        hint = "the kept entries are x / p: divide by the keep probability 1 - p, not by p."
    elif np.allclose(ratio, 1.0 - p, rtol=1e-10, atol=0):
        hint = "the kept entries are x * (1 - p): inverted dropout divides by 1 - p during training."
    else:
        hint = "expected every entry to be either 0 (dropped) or x / (1 - p) (kept)."
    index = int(np.argmax(np.abs(ratio - target)))
    raise CheckFailed(f"out of {what}: a kept entry is {ratio[index]:.6g} times x, expected "
                      f"1 / (1 - p) = {target:.6g} times x. {hint}")


def _check_drop_rate(kept, p, what):
    n = kept.size
    rate = 1.0 - kept.mean()
    tolerance = _five_se(p, n)
    if abs(rate - p) <= tolerance:
        return
    hint = ""
    if abs(rate - (1.0 - p)) <= tolerance:
        hint = " You drop with probability 1 - p: p is the probability of DROPPING an entry (as in torch)."
    raise CheckFailed(f"out of {what}: {rate:.4f} of the {n} entries were dropped (set to 0); expected "
                      f"p = {p} within {tolerance:.4f} (five standard errors).{hint}")


@hidden_check(numpy_only=True)
def check_dropout_forward(dropout_forward):
    # eval mode: the identity, whatever p is
    for seed, (shape, p) in enumerate([((1, 1), 0.5), ((3, 5), 0.3), ((4, 2, 3), 0.9), ((6,), 0.7)]):
        rng = np.random.default_rng(700 + seed)
        x = rng.normal(size=shape)
        x_copy = x.copy()
        out, _, what = _dropout(dropout_forward, x, p, "eval", rng)
        expect_close(out, x, f"out of {what}", rtol=0, atol=0,
                     hint="In eval mode dropout does nothing: out must equal x, with no mask and no "
                          "scaling (inverted dropout already scaled during training).")
        _unchanged(x_copy, x, "x")

    # entries are dropped independently (not one draw per row or per column)
    for shape in [(40000, 2), (2, 40000)]:
        rng = np.random.default_rng(730)
        x = np.ones(shape)
        out, _, what = _dropout(dropout_forward, x, 0.5, "train", rng)
        _check_drop_rate(_check_kept_values(out, x, 0.5, what), 0.5, what)
        pairs = (out == 0) if shape[1] == 2 else (out == 0).T
        both = float(np.mean(pairs[:, 0] & pairs[:, 1]))
        tolerance = _five_se(0.25, pairs.shape[0])
        if abs(both - 0.25) > tolerance:
            raise CheckFailed(f"out of {what}: both entries of a pair were dropped together in {both:.3f} "
                              f"of the pairs; with independent draws (p = 0.5) that is 0.25 within "
                              f"{tolerance:.3f}. Draw one mask entry per entry of x.")

    # train mode: entries 0 or x/(1-p), drop rate p over many entries
    for seed, (shape, p) in enumerate([((400, 250), 0.2), ((400, 250), 0.5), ((100, 10, 100), 0.8),
                                       ((100000,), 0.99), ((7,), 0.4), ((3, 4, 5), 0.5)]):
        rng = np.random.default_rng(710 + seed)
        x = _away_from_zero(rng, shape)
        x_copy = x.copy()
        out, _, what = _dropout(dropout_forward, x, p, "train", rng)
        kept = _check_kept_values(out, x, p, what)
        if kept.size >= 1000:
            _check_drop_rate(kept, p, what)
        _unchanged(x_copy, x, "x")

    # p = 0 in train mode: nothing is dropped, nothing is scaled
    rng = np.random.default_rng(720)
    x = rng.normal(size=(30, 7))
    out, _, what = _dropout(dropout_forward, x, 0.0, "train", rng)
    expect_close(out, x, f"out of {what}", rtol=1e-15, atol=0,
                 hint="With p = 0 no entry may be dropped: out must equal x.")

    # the expected output equals x (inverted dropout preserves the mean)
    rng = np.random.default_rng(740)
    column_values = np.array([0.5, -1.0, 2.0])
    x = np.tile(column_values, (20000, 1))
    p = 0.3
    out, _, what = _dropout(dropout_forward, x, p, "train", rng)
    means = out.mean(axis=0)
    tolerance = 5.0 * np.abs(column_values) * np.sqrt(p / (1 - p) / x.shape[0])
    if np.any(np.abs(means - column_values) > tolerance):
        raise CheckFailed(f"out of {what}: the column means of out are {np.round(means, 4)}, expected the "
                          f"column values of x {column_values} within {np.round(tolerance, 4)}: "
                          f"inverted dropout keeps the expected value of every entry equal to x.")

    # the rng argument drives every draw
    x = _away_from_zero(np.random.default_rng(750), (300, 40))
    first, _, what = _dropout(dropout_forward, x, 0.5, "train", np.random.default_rng(5))
    again, _, _ = _dropout(dropout_forward, x, 0.5, "train", np.random.default_rng(5))
    other, _, _ = _dropout(dropout_forward, x, 0.5, "train", np.random.default_rng(6))
    if not np.array_equal(first, again):
        raise CheckFailed(f"{what}: two generators in the same state gave different outputs. Draw the "
                          f"mask from the rng argument (rng.random, rng.binomial, ...), not from "
                          f"np.random.* or a generator of your own.")
    if np.array_equal(first, other):
        raise CheckFailed(f"{what}: generators seeded differently gave the same mask. Draw the mask "
                          f"from the rng argument, not from a generator of your own.")
    rng = np.random.default_rng(7)
    one, _, _ = _dropout(dropout_forward, x, 0.5, "train", rng)
    two, _, _ = _dropout(dropout_forward, x, 0.5, "train", rng)
    if np.array_equal(one, two):
        raise CheckFailed(f"{what}: two calls with the same rng gave the same mask. Each call must draw "
                          f"a fresh mask from rng (which advances as it is used).")


def _dropout_gradient(x, out, dout, p, dx):
    """What dx must be after this forward: dout / (1 - p) on the entries the forward kept (0 elsewhere), or
    the derivative of the student's own forward where that forward scales its kept entries some other way
    (its cells grade that). An unscaled backward after an unscaled forward is the same slip twice: it
    loses."""
    kept = out != 0
    own = dout * (out / x)
    scaled = not np.allclose(out[kept], x[kept], rtol=1e-12, atol=0)
    if scaled and np.allclose(dx, own, rtol=1e-10, atol=0):
        return own
    return np.where(kept, dout / (1 - p), 0.0)


@hidden_check(numpy_only=True)
def check_dropout_backward(dropout_forward, dropout_backward):
    cases = [((1, 1), 0.5), ((6, 4), 0.3), ((50, 40), 0.6), ((3, 4, 5), 0.95), ((200,), 0.1),
             ((8, 9), 0.05)]
    for seed, (shape, p) in enumerate(cases):
        rng = np.random.default_rng(760 + seed)
        x = _away_from_zero(rng, shape)
        dout = rng.normal(size=shape) * 1.5 + 0.3
        dout_copy = dout.copy()
        out, cache, _ = _dropout(dropout_forward, x, p, "train", rng)
        what = f"dx of dropout_backward(dout, cache) after dropout_forward(x, p={p}, 'train', rng), x {shape}"
        result = student_call(dropout_backward, dout, cache, what=what)
        dx = as_array(result, what).astype(float)
        if dx.shape != shape:
            raise CheckFailed(f"{what}: shape {dx.shape}, expected {shape} (the shape of dout).")
        dropped = out == 0
        if np.any(dx[dropped] != 0):
            raise CheckFailed(f"{what}: dx is not zero at {int(np.sum(dx[dropped] != 0))} of the "
                              f"{int(dropped.sum())} entries the forward pass dropped. The backward pass "
                              f"must reuse the forward's mask (keep it in the cache), not draw a new one.")
        expect_close(dx, _dropout_gradient(x, out, dout, p, dx), what, rtol=1e-10, atol=0,
                     hint="Where the forward kept an entry, dx must be dout / (1 - p) (0 where it dropped "
                          "one): the mask from the cache, scaled by 1 / (1 - p) (inverted dropout).")
        _unchanged(dout_copy, dout, "dout")

    for seed, (shape, p) in enumerate([((5, 3), 0.5), ((1, 7), 0.9)]):
        rng = np.random.default_rng(780 + seed)
        x = _away_from_zero(rng, shape)
        dout = rng.normal(size=shape)
        _, cache, _ = _dropout(dropout_forward, x, p, "eval", rng)
        what = f"dx of dropout_backward(dout, cache) after dropout_forward(x, p={p}, 'eval', rng), x {shape}"
        dx = student_call(dropout_backward, dout, cache, what=what)
        expect_close(dx, dout, what, rtol=1e-15, atol=0,
                     hint="In eval mode dropout is the identity, so dx must equal dout.")


# ---------------------------------------------------------------------------------------------
# norm penalties
# ---------------------------------------------------------------------------------------------
_PENALTY_CASES = [(0.1, [(3, 4)]), (2.5, [(5,), (2, 3), (4, 1)]), (0.0, [(2, 2)]),
                  (0.37, [(1, 1), (6, 3), (2, 3, 2)]), (1.0, [(3, 3), (3,)])]


def _weights(seed, shapes, zeros=False):
    rng = np.random.default_rng(seed)
    weights = [_away_from_zero(rng, shape) * 0.8 for shape in shapes]
    if zeros:  # a few exact zeros, where |W| has no derivative
        for w in weights:
            w.reshape(-1)[:: 3] = 0.0
    return weights


def _torch_penalty(kind, weights, lam):
    leaves = [torch.tensor(w, dtype=_F64, requires_grad=True) for w in weights]
    if kind == "l2":
        penalty = lam / 2 * sum((leaf ** 2).sum() for leaf in leaves)
    else:
        penalty = lam * sum(leaf.abs().sum() for leaf in leaves)
    penalty = penalty if torch.is_tensor(penalty) else torch.tensor(float(penalty), dtype=_F64)
    if penalty.requires_grad:
        penalty.backward()
    grads = [leaf.grad.numpy() if leaf.grad is not None else np.zeros_like(leaf.detach().numpy())
             for leaf in leaves]
    return float(penalty), grads


def _penalty_formula(kind, lam):
    """The penalty of one array as a numpy function, for centred differences."""
    if kind == "l2":
        return lambda w: lam / 2 * float(np.sum(w ** 2))
    return lambda w: lam * float(np.sum(np.abs(w)))


def _check_penalty(kind, penalty_fn, name, formula, grad_words):
    for case, (lam, shapes) in enumerate(_PENALTY_CASES):
        for zeros in ((False, True) if kind == "l1" else (False,)):
            weights = _weights(790 + case, shapes, zeros=zeros)
            copies = [w.copy() for w in weights]
            shape_text = ", ".join(str(s) for s in shapes)
            what = f"{name}(weights, lam={lam}) with weights of shapes [{shape_text}]"
            if zeros:
                what += " (some entries exactly 0)"
            result = student_call(penalty_fn, weights, lam, what=what)
            penalty, grads = expect_tuple(result, ("penalty", "grads"), name)
            ref_penalty, ref_grads = _torch_penalty(kind, copies, lam)
            expect_close(expect_scalar(penalty, f"penalty of {what}"), ref_penalty, f"penalty of {what}",
                         rtol=1e-7, atol=1e-12, hint=f"Expected: {formula}.")
            if not isinstance(grads, (list, tuple)) or len(grads) != len(weights):
                got = f"a {type(grads).__name__}"
                if isinstance(grads, (list, tuple)):
                    got += f" of length {len(grads)}"
                raise CheckFailed(f"grads of {what}: expected a list of {len(weights)} arrays (one per "
                                  f"weight array, in the same order); got {got}.")
            for k, (grad, ref, w) in enumerate(zip(grads, ref_grads, copies)):
                label = f"grads[{k}] of {what}"
                grad = as_array(grad, label).astype(float)
                if grad.shape != w.shape:
                    raise CheckFailed(f"{label}: shape {grad.shape}, expected {w.shape} "
                                      f"(the shape of weights[{k}]).")
                hint = f"Expected: {grad_words}."
                if zeros:  # at an exact zero any subgradient in [-lam, lam] is accepted
                    at_zero = w == 0
                    at_zero_values = grad[at_zero]
                    within = np.abs(at_zero_values) <= lam * (1 + 1e-12)   # False for NaN too
                    if not np.all(within):
                        raise CheckFailed(f"{label}: where weights[{k}] is exactly 0 the gradient must be a "
                                          f"number between -lam and lam (np.sign gives 0); got "
                                          f"{at_zero_values[:4]}.")
                    grad, ref = grad[~at_zero], ref[~at_zero]
                expect_close(grad, ref, label, rtol=1e-7, atol=1e-12, hint=hint)
                if case == 1 and not zeros:  # float64 centred differences of the formula itself
                    numeric = numerical_gradient_ref(_penalty_formula(kind, lam), w.copy())
                    expect_close(grad, numeric, label, rtol=1e-6, atol=1e-8, hint=hint)
            for k, (before, after) in enumerate(zip(copies, weights)):
                _unchanged(before, after, f"weights[{k}]")


@hidden_check(numpy_only=True)
def check_l2_penalty(l2_penalty):
    _check_penalty("l2", l2_penalty, "l2_penalty", "lam / 2 times the sum of the squares of every entry "
                   "of every array", "lam * W for each W (the derivative of lam / 2 * W**2)")


@hidden_check(numpy_only=True)
def check_l1_penalty(l1_penalty):
    _check_penalty("l1", l1_penalty, "l1_penalty", "lam times the sum of the absolute values of every "
                   "entry of every array", "lam * sign(W) for each W (the derivative of lam * |W|)")


# ---------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------
def _reference_steps(losses, patience, min_delta):
    """[(stop, best_epoch, best loss)] after each step, up to and including the first stop."""
    best, best_epoch, waited, steps = np.inf, None, 0, []
    for epoch, loss in enumerate(losses):
        if loss < best - min_delta:
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
        steps.append((waited >= patience, best_epoch, best))
        if waited >= patience:
            break
    return steps


_SCRIPTED = [  # (what the curve is, patience, min_delta, losses)
    ("steadily falling", 2, 0.0, [1.0, 0.8, 0.6, 0.5, 0.45, 0.44]),
    ("falling, then a plateau of equal losses", 3, 0.0, [1.0, 0.7, 0.5, 0.5, 0.5, 0.5, 0.4]),
    ("a late improvement after patience - 1 worse epochs", 3, 0.0,
     [1.0, 0.6, 0.62, 0.64, 0.55, 0.58, 0.6, 0.61, 0.4]),
    ("small improvements below min_delta", 3, 0.05, [1.0, 0.97, 0.96, 0.9, 0.88, 0.87, 0.86, 0.5]),
    ("an improvement of exactly min_delta (not enough)", 2, 0.25, [1.0, 0.75, 0.5, 0.5, 0.3, 0.26, 0.1]),
    ("patience 1", 1, 0.0, [2.0, 1.5, 1.2, 1.3, 1.0]),
    ("rising from the start", 4, 0.0, [0.3, 0.4, 0.5, 0.6, 0.7, 0.1]),
]


def _random_curves():
    curves = []
    for seed, (patience, min_delta) in enumerate([(1, 0.0), (2, 0.01), (4, 0.0), (5, 0.02), (3, 0.1)]):
        rng = np.random.default_rng(800 + seed)
        epochs = np.arange(60)
        losses = 1.0 / (1 + 0.3 * epochs) + 0.004 * epochs + rng.normal(0, 0.02, 60)
        curves.append((f"a noisy validation curve (seed {seed})", patience, min_delta,
                       [float(v) for v in losses]))
    return curves


def _as_stop(value, what):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None:
        raise CheckFailed(f"{what} returned None; step must return True (stop) or False (go on).")
    raise CheckFailed(f"{what} returned {value!r} ({type(value).__name__}); expected True or False.")


def _as_epoch(value, what):
    if value is None:
        raise CheckFailed(f"{what} is None; expected the 0-based index of the step with the best loss.")
    number = expect_scalar(value, what)
    if number != int(number):
        raise CheckFailed(f"{what} is {number}; expected a whole number (an epoch index).")
    return int(number)


def _run_curve(EarlyStopping, label, patience, min_delta, losses, default_min_delta=False):
    made = f"EarlyStopping({patience}" + ("" if default_min_delta else f", min_delta={min_delta}") + ")"
    if default_min_delta:
        stopper = student_call(EarlyStopping, patience, what=made)
    else:
        stopper = student_call(EarlyStopping, patience, min_delta=min_delta, what=made)
    shown = ", ".join(f"{v:.4g}" for v in losses)
    previous_best = np.inf
    for epoch, (stop, best_epoch, best) in enumerate(_reference_steps(losses, patience, min_delta)):
        what = f"{made}, on {label} [{shown}]: step(val_loss={losses[epoch]:.4g}) at epoch {epoch}"
        bar = (f" Before this step best was {previous_best:.4g}, so only a loss below best - min_delta = "
               f"{previous_best - min_delta:.4g} improves; after it best is {best:.4g} (epoch {best_epoch}).")
        previous_best = best
        got = _as_stop(student_call(stopper.step, losses[epoch], what=what), what)
        if got != stop:
            if stop:
                why = (f"it should stop: {patience} step(s) in a row without a loss below "
                       f"best - min_delta.")
            else:
                why = ("it should go on: fewer than patience steps since the last improvement "
                       "(an improvement resets the count).")
            raise CheckFailed(f"{what} returned {got}; {why}{bar}")
        got_epoch = _as_epoch(getattr(stopper, "best_epoch"), f"best_epoch after {what}")
        if got_epoch != best_epoch:
            raise CheckFailed(f"best_epoch after {what} is {got_epoch}, expected {best_epoch}: the 0-based "
                              f"index of the step whose loss was the last improvement "
                              f"(loss < best - min_delta).{bar}")


@hidden_check(numpy_only=True)
def check_EarlyStopping(EarlyStopping):
    for label, patience, min_delta, losses in _SCRIPTED + _random_curves():
        _run_curve(EarlyStopping, label, patience, min_delta, losses)
    _run_curve(EarlyStopping, "a plateau (min_delta left at its default 0.0)", 2, 0.0,
               [0.9, 0.8, 0.8, 0.8, 0.7], default_min_delta=True)

    # two stoppers at once must not share state
    first = student_call(EarlyStopping, 2, min_delta=0.0, what="EarlyStopping(2, min_delta=0.0)")
    second = student_call(EarlyStopping, 2, min_delta=0.0, what="a second EarlyStopping(2, min_delta=0.0)")
    for loss_a, loss_b in [(1.0, 5.0), (0.5, 6.0), (0.4, 7.0)]:
        student_call(first.step, loss_a, what=f"first.step({loss_a})")
        stop_b = _as_stop(student_call(second.step, loss_b, what=f"second.step({loss_b})"),
                          f"second.step({loss_b})")
    epoch_a = _as_epoch(getattr(first, "best_epoch"), "first.best_epoch")
    epoch_b = _as_epoch(getattr(second, "best_epoch"), "second.best_epoch")
    if (epoch_a, epoch_b, stop_b) != (2, 0, True):
        raise CheckFailed(f"Two EarlyStopping objects used side by side interfere: after first got losses "
                          f"1.0, 0.5, 0.4 and second got 5.0, 6.0, 7.0, first.best_epoch is {epoch_a} "
                          f"(expected 2), second.best_epoch is {epoch_b} (expected 0) and second's last step "
                          f"returned {stop_b} (expected True). Keep the state on self (set it in __init__), "
                          f"not on the class.")
