"""What lecture 07 (dropout and regularization) shows, asserted on its own code and seeds."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("07")


def test_the_baseline_net_overfits(ns):
    history = ns["baseline"]
    assert history["train_acc"][-1] == 1.0          # memorises every (noisy) training label
    assert ns["gaps"]["none"] > 1.0
    assert history["val_loss"][-1] > 2 * min(history["val_loss"])   # validation loss turns back up


@pytest.mark.parametrize("remedy", ["L2", "dropout"])
def test_remedy_narrows_the_gap(ns, remedy):
    assert ns["gaps"][remedy] < 0.6 * ns["gaps"]["none"]
    assert ns["histories"][remedy]["val_acc"][-1] > ns["histories"]["none"]["val_acc"][-1]


def test_l1_narrows_the_gap_and_makes_weights_sparse(ns):
    assert ns["gaps"]["L1"] < ns["gaps"]["none"]
    fraction = ns["small_weight_fraction"]
    assert fraction["L1"] > 0.4 > 0.05 > fraction["none"]
    assert fraction["L1"] > fraction["L2"]


def test_l2_penalty_equals_sgd_weight_decay(ns):
    assert ns["weight_decay_difference"] < 1e-12


def test_early_stopping_returns_the_best_epoch(ns):
    early = ns["early"]
    losses = np.array(early["val_losses"])
    best, min_delta = early["best_epoch"], early["min_delta"]
    assert losses[best] <= losses.min() + min_delta            # the best epoch, up to min_delta
    assert np.all(losses[best + 1:] >= losses[best] - min_delta)   # nothing after it counted as better
    assert early["stopped_epoch"] == best + early["patience"]
    assert len(losses) == early["stopped_epoch"] + 1 < ns["EPOCHS"]
    assert ns["restored_val_loss"] == pytest.approx(losses[best], rel=1e-6)   # its weights came back
    assert ns["restored_val_loss"] < ns["baseline"]["val_loss"][-1] / 2


def test_dropout_ensemble_beats_one_thinned_network(ns):
    accuracy = ns["ensemble_accuracy"]
    assert accuracy["average of 50 thinned networks"] > accuracy["one thinned network"]
    ensemble = accuracy["average of 50 thinned networks"]
    eval_mode = accuracy["eval mode (expected activations)"]
    assert abs(eval_mode - ensemble) < 0.03


def test_mc_dropout_is_less_certain_away_from_the_data(ns):
    assert ns["mc_std_outside"] > 1.5 * ns["mc_std_inside"]
