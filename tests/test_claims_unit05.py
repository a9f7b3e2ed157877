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


def per_layer_factor(values):
    """The geometric mean of value[l+1] / value[l] over the stack."""
    return (values[-1] / values[0]) ** (1 / (len(values) - 1))


def test_section_2_numbers(ns):
    act, grad = ns["activation_std"], ns["gradient_std"]
    assert 0.1 < 0.01 * np.sqrt(ns["WIDTH"]) < 0.12                                   # sigma sqrt(128) ~ 0.11
    assert 4e-14 < act[("small", "tanh")][-1] / act[("small", "tanh")][0] < 6e-14     # about 5e-14
    assert 4e-16 < act[("small", "relu")][-1] / act[("small", "relu")][0] < 6e-16     # about 5e-16
    assert 0.1 < per_layer_factor(act[("small", "tanh")]) < 0.12
    assert 0.07 < per_layer_factor(act[("small", "relu")]) < 0.09
    assert 1e13 < act[("large", "relu")][-1] < 1e14                                  # reach 10^13
    assert np.all(np.diff(grad[("large", "relu")]) < 0)           # gradients grow towards the input
    tanh_large = ns["stats_grid"][("large", "tanh")]["acts"]
    assert all(0.78 < np.mean(np.abs(h) > 0.99) < 0.83 for h in tanh_large), "about 80 % saturate"
    assert grad[("large", "tanh")][0] > 1e5 * grad[("large", "tanh")][-1]
    steps = grad[("large", "tanh")][:-1] / grad[("large", "tanh")][1:]
    assert np.all((steps > 2.2) & (steps < 2.8)), "the large-tanh gradient grows steadily, 2.5x a layer"
    z = ns["z"]
    assert np.std(np.tanh(z)) == pytest.approx(0.63, abs=0.005)     # the gain table's "about 0.63"


def test_section_5_numbers(ns):
    act, grad = ns["activation_std"], ns["gradient_std"]
    for values in (act[("kaiming", "relu")], grad[("kaiming", "relu")]):
        assert values.max() / values.min() < 1.25, "ReLU + Kaiming should stay within about 20%"
    assert per_layer_factor(act[("xavier", "relu")]) == pytest.approx(1 / np.sqrt(2), abs=0.03)
    assert act[("kaiming", "tanh")][-1] > 0.8 * act[("kaiming", "tanh")][0]
    xavier_tanh = act[("xavier", "tanh")]
    assert np.all(np.diff(xavier_tanh) < 0) and xavier_tanh[-1] < 0.5 * xavier_tanh[0]
    for init in ("xavier", "kaiming"):             # gain 1: about 4x smaller per layer, 1e-9 after 15
        assert 3.5 < 1 / per_layer_factor(grad[(init, "sigmoid")][::-1]) < 5
        assert 1e-10 < grad[(init, "sigmoid")][0] / grad[(init, "sigmoid")][-1] < 1e-8
    large = grad[("large", "sigmoid")]
    assert large[-1] == pytest.approx(1.0, abs=0.05) and large[0] == pytest.approx(2.0, abs=0.1)
    for h in ns["stats_grid"][("large", "sigmoid")]["acts"]:
        assert np.mean((h < 0.05) | (h > 0.95)) > 0.5 and h.mean() == pytest.approx(0.5, abs=0.1)


def test_symmetry_and_widget_numbers(ns):
    zeros = ns["symmetry_runs"]["all zeros"][0]
    assert max(abs(loss - np.log(2)) for loss in zeros) < 1e-9          # stays at log 2 ~ 0.693
    for init in ("zeros", "small"):                                     # depth 10: never leaves log 2
        assert np.abs(ns["demo_curves"][init] - np.log(2)).max() < 1e-3
    assert ns["demo_curves"]["kaiming"][-1] < ns["demo_curves"]["xavier"][-1] < 0.5
    large = ns["train_curve"](ns["deep_net"]("large", "relu", 10))
    assert np.isinf(large[-1]), "large weights with ReLU should make the loss overflow"


def test_digits_model_numbers(ns):
    results = ns["real_model"]
    assert results["PyTorch default"]["loss"][-1] > 2.2                 # does not get going either
    xavier, kaiming = results["xavier_normal_"]["loss"], results["kaiming_normal_ (relu)"]["loss"]
    assert xavier[0] > 2.2 > 1.5 > xavier[-1]                           # starts late
    assert kaiming[0] < 2.1 and kaiming[-1] < xavier[-1]                # trains from the first epoch
    assert all(0.3 < std < 3 for std in results["kaiming_normal_ (relu)"]["act_std"])
    default = ns["nn"].Linear(6400, 100).weight.detach().var().item() * 6400
    assert default == pytest.approx(1 / 3, rel=0.05)                    # a third of 1/n_in


def test_small_init_weight_gradients_are_equal_in_every_layer(ns):
    for activation, low, high, ratio in [("tanh", 8e-13, 1e-12, 16), ("relu", 5e-15, 6.5e-15, 11)]:
        stats = ns["stats_grid"][("small", activation)]
        weight_grads = stats["weight_grad_std"]
        assert low < weight_grads.min() and weight_grads.max() < high, (activation, weight_grads)
        assert weight_grads.max() / weight_grads.min() < 1.25, "no layer's weight gradient is smaller"
        assert weight_grads[0] / stats["grad_std"][0] == pytest.approx(ratio, rel=0.05), \
            "layer 1's weight gradient is larger than the gradient reaching it"


def test_kaiming_tanh_holds_the_activations_and_its_gradient_grows_35x(ns):
    stats = ns["stats_grid"][("kaiming", "tanh")]
    assert stats["act_std"].max() / stats["act_std"].min() < 1.25
    assert stats["grad_std"][0] / stats["grad_std"][-1] == pytest.approx(3.5, abs=0.15)
    assert np.all(np.diff(stats["grad_std"]) < 0), "it grows at every layer towards the input"


def test_the_default_init_shrinks_then_sits_at_the_bias_floor(ns):
    stds = np.array(ns["real_model"]["PyTorch default"]["act_std"])
    assert np.all(np.diff(stds[:4]) < 0) and stds[3] < stds[0] / 5, "it shrinks over the first few layers"
    assert np.all((stds[3:] > 0.035) & (stds[3:] < 0.055)), f"then stays near 0.04: {stds}"


def test_torch_says_self_normalising_networks_use_the_linear_gain(ns):
    calculate_gain = ns["nn"].init.calculate_gain
    assert "nonlinearity='linear'" in calculate_gain.__doc__ and calculate_gain("selu") == 0.75
