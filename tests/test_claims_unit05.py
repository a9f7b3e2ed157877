"""Lecture 05's claims, asserted on the lecture's own code and seeds (tests/lectures.py runs it once)."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("05")


def test_constant_and_zero_init_keep_hidden_units_identical(ns):
    runs = ns["symmetry_runs"]
    for start in ("all zeros", "constant 0.5"):
        losses, unit_gaps, (W1, *_) = runs[start]
        assert len(unit_gaps) >= 100, "the symmetry run must train for a while"
        assert max(unit_gaps) == 0.0, f"{start}: hidden units drifted apart during training"
        assert np.all(W1 == W1[:, :1]), f"{start}: the hidden units' weights differ after training"
    assert np.all(runs["all zeros"][2][0] == 0.0), "from zeros the hidden weights must not move at all"
    random_losses, random_gaps, _ = runs["random"]
    assert max(random_gaps) > 0.1 and random_losses[-1] < runs["constant 0.5"][0][-1]


def test_small_init_collapses_and_kaiming_keeps_relu_alive(ns):
    stds = ns["activation_std"]
    depth = len(stds[("kaiming", "relu")])
    assert depth >= 10
    for activation in ("relu", "tanh"):
        small = stds[("small", activation)]
        assert small[-1] < 1e-6 * small[0], f"small init, {activation}: the activation std does not collapse"
        assert np.all(np.diff(small) < 0), f"small init, {activation}: the std should shrink at every layer"
    kaiming = stds[("kaiming", "relu")]
    ratio = kaiming / kaiming[0]
    assert np.all((ratio > 0.5) & (ratio < 2.0)), f"Kaiming/ReLU std left a factor 2 of layer 1: {ratio}"


def test_gradients_vanish_with_small_and_explode_with_large_relu_init(ns):
    grads = ns["gradient_std"]
    assert grads[("small", "relu")][0] < 1e-6 * grads[("small", "relu")][-1]
    assert grads[("large", "relu")][0] > 1e6 * grads[("large", "relu")][-1]
    kaiming = grads[("kaiming", "relu")]
    assert 0.5 < kaiming[0] / kaiming[-1] < 2.0


def test_kaiming_trains_the_deep_digits_mlp_best(ns):
    results = ns["real_model"]
    best = max(results, key=lambda scheme: results[scheme]["accuracy"])
    assert best.startswith("kaiming")
    assert results["normal std 0.01"]["loss"][-1] > 2.2, "std 0.01 should stay near chance level"
