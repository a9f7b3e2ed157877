"""What lecture 01 shows, asserted on its own code and seeds: the perceptron settles on separable
blobs and never on XOR, a narrower gap costs more updates, its learning rate only rescales, and
Adaline's learning rate decides between convergence and divergence; Novikoff's bound holds with the
margin measured in the augmented space (x, 1), not in the plane."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("01")


def mistakes(per_epoch):
    return [m for _, _, m in per_epoch]


def test_perceptron_separates_the_blobs_and_never_xor(ns):
    blobs = mistakes(ns["epochs_sep"])
    first_clean = blobs.index(0)
    assert blobs[first_clean:] == [0] * (len(blobs) - first_clean), "once clean, the blobs stay clean"
    xor = mistakes(ns["epochs_xor"])
    assert len(xor) == 30 and min(xor) > 0, "on XOR no epoch is free of mistakes"
    assert min(xor) >= len(ns["y_xor"]) // 4, "a line gets a large part of XOR wrong, every epoch"


def test_a_narrower_gap_needs_more_work(ns):
    needed, totals = ns["needed"], ns["totals"]   # per gap, widest first
    assert not np.isnan(needed).any(), "every separable gap converges within 30 epochs"
    assert list(needed) == sorted(needed) and needed[-1] > needed[0]
    assert min(totals[-2:]) > max(totals[:2])


def test_the_perceptron_learning_rate_only_rescales(ns):
    (w1, b1, _), (w001, b001, _) = ns["a"], ns["c"]
    np.testing.assert_allclose(w001, 0.01 * w1, rtol=1e-12)
    assert b001 == pytest.approx(0.01 * b1, rel=1e-12)


def test_adaline_converges_below_the_limit_and_diverges_above(ns):
    (small, good, large), curves = ns["curves"].keys(), ns["curves"]
    assert float(large.split("=")[1]) == pytest.approx(1.1 * ns["limit"], rel=1e-2)
    for name in (small, good):
        assert np.all(np.diff(curves[name]) < 0), f"{name}: the loss falls at every epoch"
    assert curves[large][-1] > 1e3 * curves[large][0], "above 2 / lambda_max the loss explodes"
    assert np.all(np.diff(curves[large][-10:]) > 0)
    assert np.all(np.diff([h["loss"] for h in ns["hist_ada"]]) <= 0)


def test_adaline_on_xor_converges_in_loss_not_in_labels(ns):
    losses = [h["loss"] for h in ns["hist_x"]]
    assert abs(losses[-1] - losses[-10]) < 1e-6 * losses[-1], "the loss has settled"
    wrong = ns["hist_x"][-1]["mistakes"] / len(ns["y_xor"])
    assert 0.3 <= wrong <= 0.7, f"about half the XOR points stay wrong, got {wrong:.2f}"


def test_the_and_table_settles_at_the_end_of_epoch_5(ns):
    per_epoch = ns["after_each_epoch"](ns["perceptron_steps"](ns["corners"], ns["y_and"], epochs=6))
    assert per_epoch[0][2] == 1, "in epoch 1 only (1, 1) triggers an update"
    w5, b5, _ = per_epoch[4]
    assert list(w5) == [2, 1] and b5 == -2, (w5, b5)
    assert per_epoch[5][2] == 0, "epoch 6 makes no update"
    assert [1, 0] @ w5 + b5 == 0, "the corner (1, 0) lies exactly on the line"
    assert len(ns["y_sep"]) == 80


def test_novikoffs_bound_holds_in_the_augmented_space_not_in_the_plane(ns):
    updates, R = ns["updates_far"], ns["R_far"]
    assert updates == 4299 and ns["last_epoch"] < 3000, "the three far points are separated within the run"
    assert round(ns["gamma_plane"], 3) == 1.857 and round(ns["gamma_aug"], 3) == 0.108
    assert updates > 15 * (R / ns["gamma_plane"]) ** 2, "the margin in the plane gives no bound"
    assert updates <= (R / ns["gamma_aug"]) ** 2 == pytest.approx(83137, abs=1)
    Xa, t, theta = ns["Xa_far"], ns["t_far"], ns["theta_star"]
    multipliers = np.linalg.solve((t[:, None] * Xa) @ (t[:, None] * Xa).T, np.ones(3))
    assert (multipliers > 0).all(), "theta* is the widest-margin separator (all three points support it)"
