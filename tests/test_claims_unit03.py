"""What lecture 03 shows, asserted on its own code and seeds: the hand backward pass equals autograd
and its step lowers the loss, gradients accumulate in the scalar engine, and across 20 layers the
sigmoid's gradient vanishes while He-scaled ReLU keeps it and a wrong scale explodes or shrinks it."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("03")


def test_the_hand_backward_pass_equals_autograd_and_its_step_lowers_the_loss(ns):
    assert all(difference < 1e-12 for _, _, difference in ns["rows"])
    assert ((ns["pred_new"] - ns["y0_h"]) ** 2).item() < ns["L_h"]


def test_the_scalar_engine_accumulates_gradients(ns):
    Scalar = ns["Scalar"]
    x, y, z = Scalar(-2.0), Scalar(5.0), Scalar(-4.0)
    (x * y + z).backward()
    assert (x.grad, y.grad, z.grad) == (5.0, -2.0, 1.0), "the hand-computed 5, -2, 1"
    a = Scalar(3.0)
    g = a * a + a
    g.backward()
    assert a.grad == 7.0, "three paths add up to 2a + 1"
    g.backward()
    assert a.grad == 14.0, "the leaf accumulates; the intermediate a*a starts from zero again"
    a = Scalar(3.0)
    g = a * a + a
    for _ in range(2):                            # an engine that resets nothing
        g.grad = 1.0
        for node in reversed(ns["topological_order"](g)):
            node._backward()
    assert a.grad == 20.0, "without the reset, the stale gradient of a*a flows through again"
    assert ns["a3"].grad == 7.0


def test_pytorch_needs_retain_graph_for_a_second_pass(ns):
    assert ns["a_t"].grad.item() == 14.0, "7 + 7 with retain_graph=True on the first call"
    assert ns["third_pass"].startswith("Trying to backward through the graph a second time")


def test_the_lecture_engine_is_the_assignments_design(ns):
    Scalar = ns["Scalar"]
    x = Scalar(1.5)
    z = x * x
    w = z * z + z                   # z used by two paths
    w.backward()
    first = x.grad
    w.backward()
    assert first == 2 * 1.5 ** 3 * 2 + 2 * 1.5 and x.grad == 2 * first, "a second backward doubles x.grad"


def test_sigmoid_gradients_vanish_layer_by_layer(ns):
    arriving, weights = ns["results"]["sigmoid"]       # per layer, layer 1 next to the input
    per_layer = arriving[1:] / arriving[:-1]
    assert np.all((3 < per_layer) & (per_layer < 6)), f"roughly a factor of 4 lost per layer: {per_layer}"
    assert 1e-14 < arriving[0] / arriving[-1] < 1e-10, "the first layer gets about 1e-12 of the last"
    assert weights[0] / weights[-1] < 1e-9, "so the first layer's weights barely move"


def test_relu_keeps_the_gradient_with_he_scale_and_not_with_a_wrong_one(ns):
    results = ns["results"]
    he = results["ReLU (He)"][0]
    assert he.max() / he.min() < 2, "He scale: the same order at every layer"
    large, small = results["ReLU, weights x1.5"][0], results["ReLU, weights x0.7"][0]
    assert np.all(np.diff(large) < 0) and 500 < large[0] / large[-1] < 1e4, "x1.5: grows about 1.5^19 toward the input"
    assert np.all(np.diff(small) > 0) and 1e-4 < small[0] / small[-1] < 1e-2, "x0.7: shrinks toward the input"
    for label in ("ReLU (He)", "ReLU, weights x1.5", "ReLU, weights x0.7"):
        weights = results[label][1]
        assert weights.max() / weights.min() < 3, f"{label}: the weight gradients stay flat across layers"


def test_a_product_of_random_matrices_explodes(ns):
    assert ns["M"].abs().max().item() > 1e10


def test_the_worked_numbers(ns):
    Scalar = ns["Scalar"]
    x, y, z = Scalar(-2.0), Scalar(5.0), Scalar(-4.0)
    q = x * y
    assert (q.data, (q + z).data) == (-10.0, -14.0), "q = -10, f = -14"
    assert ns["a"] == pytest.approx(1.5)
    assert ns["dL_da"] == pytest.approx(ns["y_hat"] - 1.0, abs=1e-15), "dL/da = y_hat - y"
