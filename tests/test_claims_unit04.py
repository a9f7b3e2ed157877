"""What lecture 04 shows, asserted on its own code and seeds: the digits MLP reaches the stated test
accuracy (and a linear model nearly matches it), the housing net gets down to the data's noise
level, Adam's first step moves every weight by lr, and dropout keeps the expectation in training
and is the identity in eval."""
import numpy as np
import pytest
import torch

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("04")


def test_the_digits_net_reaches_the_stated_accuracy(ns):
    assert ns["test_acc"] >= 0.95, "the lecture asserts at least 95% test accuracy"
    assert ns["val_acc"] >= 0.92, "about 94-95% on the validation part"
    history = ns["digit_history"]
    assert history["train"][-1] < history["train"][0] / 10 and history["val"][-1] < history["val"][0] / 5


def test_a_linear_model_is_about_as_good_on_digits(ns):
    linear = ns["baseline"].score(ns["X_te"] / 16.0, ns["y_te"])
    assert abs(linear - ns["test_acc"]) < 0.03, (linear, ns["test_acc"])


def test_the_housing_net_reaches_the_noise_level(ns):
    history = ns["house_history"]
    rmse = ns["rmse_kusd"]["val"][-1]
    assert 17 < rmse < 25, f"a validation RMSE near the 20 k$ noise is the best possible, got {rmse:.1f}"
    assert history["val"][-1] < 1.5 * history["train"][-1], "no overfitting gap"
    assert abs(ns["price"] - ns["rule"]) < 20, "the new house is priced within the noise of its rule"


def test_adams_first_step_moves_every_weight_by_lr(ns):
    change = (ns["first_w"].detach() - ns["before"]).abs().cpu().numpy()
    np.testing.assert_allclose(change, 0.01, rtol=1e-3)


def test_dropout_keeps_the_expectation_in_training_and_is_the_identity_in_eval(ns):
    many = ns["many"]
    assert (many == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert many.mean().item() == pytest.approx(1.0, abs=0.02)
    dropout = ns["dropout"]
    assert not dropout.training and torch.equal(dropout(ns["ones"]), ns["ones"])


def test_fit_reports_the_mean_of_the_batch_losses_as_the_assignment_defines(ns):
    model = torch.nn.Linear(2, 1)
    X, y = torch.arange(10.0).reshape(5, 2), torch.arange(5.0).reshape(5, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=2)  # 2, 2 and 1
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    history = ns["fit"](model, loader, loader, torch.nn.MSELoss(), optimizer, epochs=1)
    with torch.no_grad():
        per_batch = [torch.nn.MSELoss()(model(xb), yb).item() for xb, yb in loader]
    assert history["train"][0] == pytest.approx(np.mean(per_batch), rel=1e-6)
    assert history["val"][0] == pytest.approx(np.mean(per_batch), rel=1e-6)


def test_a_hidden_layer_solves_xor(ns):
    assert ns["xor_acc"] == 1.0, "every one of the 200 XOR points on the right side"
    assert ns["xor_losses"][-1] < 0.01 * ns["xor_losses"][0]


def test_the_softmax_cross_entropy_gradient_is_p_minus_one_hot_over_n(ns):
    assert ns["ce_error_numeric"] < 1e-9, "about 1e-10, the error of the centred differences"
    assert ns["ce_error_autograd"] < 1e-15


def test_the_small_numbers_of_the_text(ns):
    assert sum(p.numel() for p in ns["net"].parameters()) == 31, "12 + 15 + 4 parameters"
    assert 0.98 <= ns["test_acc"] and 0.94 <= ns["val_acc"] <= 0.955, (ns["test_acc"], ns["val_acc"])
    assert 350 <= len(ns["test_true"]) <= 370, "about 360 images per part, each mistake 0.3 points"


def test_from_numpy_and_as_tensor_share_memory_and_tensor_copies(ns):
    assert ns["shared"][0].item() == ns["also_shared"][0].item() == 7.0 and ns["copied"][0].item() == 0.0
    arr = np.zeros(3)
    assert torch.asarray(arr).data_ptr() == arr.ctypes.data, "asarray shares memory too"
    assert torch.as_tensor(arr, dtype=torch.float32).data_ptr() != arr.ctypes.data, "a new dtype copies"
