"""What lecture 02 shows, asserted on its own code and seeds: the hand gradient is right, the three
gradient-descent modes order by noise, the batch gradient's spread shrinks like 1/sqrt(k), the
learning rate diverges exactly above 2 / lambda_max, scaling the features cures the narrow valley,
and the stable cross-entropy stays finite."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("02")


def test_the_hand_gradient_matches_finite_differences_and_vanishes_at_the_minimum(ns):
    grad, loss, h = ns["grad_1d"], ns["loss_1d"], 1e-6
    for w, b in [(0.0, 0.0), (3.0, -2.0), (1.0, 1.0)]:
        numeric = [(loss(w + h, b) - loss(w - h, b)) / (2 * h), (loss(w, b + h) - loss(w, b - h)) / (2 * h)]
        np.testing.assert_allclose(grad(w, b), numeric, rtol=1e-6)
    np.testing.assert_allclose(grad(ns["w_star"], ns["b_star"]), 0, atol=1e-10)


def excess_per_step(ns, path):
    return ns["loss_1d"](path[:, 0], path[:, 1]) - ns["L_star"]


def test_full_batch_is_smooth_and_smaller_batches_are_noisier(ns):
    runs = ns["runs"]   # full batch, mini-batch (k = 10), on-line (k = 1): (path, loss after each epoch)
    (full, _), (mini, mini_epochs), (online, online_epochs) = runs.values()
    rises = [np.mean(np.diff(excess_per_step(ns, path)) > 0) for path in (full, mini, online)]
    assert rises[0] == 0, "full batch lowers the loss at every step"
    assert rises[0] < rises[1] < rises[2], f"share of steps that raise the loss: {rises}"
    floor = [np.mean(losses[-10:]) - ns["L_star"] for losses in (mini_epochs, online_epochs)]
    assert floor[0] < floor[1], f"the smaller the batch, the higher the noise floor: {floor}"
    after_5_epochs = {name: losses[4] - ns["L_star"] for name, (_, losses) in runs.items()}
    assert max(after_5_epochs["mini-batch (k = 10)"], after_5_epochs["on-line (k = 1)"]) \
        < after_5_epochs["full batch"] / 10, "per epoch, the small batches get close to the minimum much sooner"


def test_the_batch_gradient_spread_shrinks_like_one_over_sqrt_k(ns):
    sizes, spread = np.array(ns["sizes"]), np.array(ns["spread"])
    assert np.all(np.diff(spread) < 0) and spread[-1] < 1e-12, "zero spread when the batch is the whole set"
    small = sizes <= 8
    np.testing.assert_allclose(spread[small] * np.sqrt(sizes[small]), spread[0], rtol=0.3)


def test_full_batch_diverges_exactly_above_two_over_lambda_max(ns):
    lr_crit, descend, L_star = ns["lr_crit"], ns["descend_1d"], ns["L_star"]
    assert lr_crit == pytest.approx(2 / ns["eigenvalues"].max())
    for name in ("too small", "about right"):
        losses = descend(ns["cases"][name], epochs=25)[1]
        assert np.all(np.diff(losses) <= 0), name
    too_large = ns["cases"]["too large"]
    excess = descend(too_large, epochs=25)[1] - L_star
    assert excess[-1] > 5 * excess.min() and np.all(np.diff(excess[-15:]) > 0), "the loss explodes"
    # far from the start, each step multiplies the excess loss by (1 - lr * lambda_max)^2
    assert excess[-1] / excess[-2] == pytest.approx((1 - too_large * ns["eigenvalues"].max()) ** 2, rel=0.02)
    just_below = descend(0.95 * lr_crit, epochs=200)[1] - L_star
    assert just_below[-1] < 1e-6 * just_below[0], "just below the limit it still converges"


def test_standardising_the_features_cures_the_narrow_valley(ns):
    steps, kappa = {}, {}
    for name, X in ns["versions"].items():
        steps[name], kappa[name], _ = ns["full_batch_steps"](X, ns["price"])
    assert kappa["raw"] > kappa["centred"] > kappa["standardised"] and kappa["standardised"] < 2
    assert steps["raw"] > 50 * steps["centred"] and steps["centred"] > 100 * steps["standardised"], steps


def test_the_stable_cross_entropy_stays_finite_where_the_naive_one_fails(ns):
    assert np.isinf(ns["naive"][-2:]).all()
    np.testing.assert_allclose(ns["stable"][-2:], ns["z"][-2:])       # log(1 + e^z) = z for large z
    np.testing.assert_allclose(ns["stable"][1:4], ns["naive"][1:4])


def test_logistic_regression_beats_the_majority_answer(ns):
    history, accuracy = ns["history"], ns["accuracy"]
    assert history[-1] < 0.5 * history[0]
    assert accuracy["test"] > np.mean(ns["y_te"] == 1) + 0.15


def test_mini_batches_are_consecutive_slices_with_a_short_last_batch(ns):
    steps = {name: len(path) - 1 for name, (path, _) in ns["runs"].items()}
    assert steps == {"full batch": 20, "mini-batch (k = 10)": 120, "on-line (k = 1)": 1200}, steps
    sizes, grad = [], ns["grad_1d"]
    ns["grad_1d"] = lambda w, b, xs, ys: sizes.append(len(xs)) or grad(w, b, xs, ys)
    try:
        ns["descend_1d"](lr=0.1, epochs=1, batch_size=25)
    finally:
        ns["grad_1d"] = grad
    assert sizes == [25, 25, 10], f"60 samples in batches of 25: 25, 25 and a short 10, got {sizes}"


def test_thirty_steps_creep_on_centred_features_and_land_on_standardised_ones(ns):
    far = {}
    for name in ("centred", "standardised"):
        Xc = ns["versions"][name] - ns["versions"][name].mean(axis=0)
        yc = ns["price"] - ns["price"].mean()
        H2 = 2.0 / len(Xc) * Xc.T @ Xc
        w_opt = np.linalg.solve(H2, 2.0 / len(Xc) * Xc.T @ yc)
        lam = np.linalg.eigvalsh(H2)
        w = np.zeros(2)
        for _ in range(30):
            w = w - 2.0 / (lam.max() + lam.min()) * 2.0 / len(Xc) * Xc.T @ (Xc @ w - yc)
        far[name] = np.abs(w - w_opt) / np.abs(w_opt)
    np.testing.assert_allclose(ns["path"][-1], ns["w_opt"], rtol=1e-6)    # the lecture's own last panel
    assert far["standardised"].max() < 1e-6 and far["centred"][1] > 0.5, far


def test_the_sigmoid_rounds_to_one_from_z_37(ns):
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    assert sigmoid(37.0) == 1.0 and sigmoid(36.0) < 1.0
    assert np.isinf(ns["naive"][ns["z"] >= 40]).all() and np.isfinite(ns["naive"][ns["z"] <= 5]).all()


def test_the_mean_over_every_batch_is_the_full_gradient(ns):
    full, means, sizes = ns["full"], ns["means"], ns["sizes"]
    for k, mean in zip(sizes[:2], means):
        np.testing.assert_allclose(mean, full, rtol=1e-12, err_msg=f"k = {k}: the mean over all batches")
    for k, mean, spread in zip(sizes[2:-1], means[2:-1], ns["spread"][2:-1]):
        assert np.linalg.norm(mean - full) < 4 * spread / np.sqrt(400), f"k = {k}: 400 draws come close"


def test_two_over_the_eigenvalue_sum_is_the_best_constant_step(ns):
    for X in ns["versions"].values():
        A = np.c_[X, np.ones(len(X))]
        lam = np.linalg.eigvalsh(2.0 / len(X) * A.T @ A)
        best = ns["full_batch_steps"](X, ns["price"])[2]
        slowest = lambda lr: np.max(np.abs(1 - lr * lam))   # noqa: E731
        grid = best * np.linspace(0.5, 2 * lam.max() / (lam.max() + lam.min()), 2001)
        assert slowest(best) <= min(slowest(lr) for lr in grid) + 1e-12
        kappa = lam.max() / lam.min()
        assert slowest(best) == pytest.approx((kappa - 1) / (kappa + 1))
        assert slowest(0.99 * 2 / lam.max()) > slowest(best), "just below 2 / lambda_max is safe, not best"
