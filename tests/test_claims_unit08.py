"""Claims of lecture 08 (optimizers), asserted on the lecture's own code and seeds."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("08")


def test_adam_and_momentum_reach_the_rosenbrock_minimum_where_sgd_does_not(ns):
    final, distance = ns["rosenbrock_final"], ns["rosenbrock_distance"]
    steps = {len(losses) - 1 for _, losses in ns["race"]["rosenbrock"].values()}
    assert steps == {1000}, "every optimizer gets the same budget of steps"
    for name in ("Adam", "momentum"):
        assert final[name] < 1e-3 and distance[name] < 0.05, (name, final[name], distance[name])
    assert final["SGD"] > 1.0 and distance["SGD"] > 1.0, (final["SGD"], distance["SGD"])


def test_sgd_noise_shrinks_like_one_over_sqrt_batch_size(ns):
    noise = ns["noise_std"]
    for size, std in noise.items():
        assert std * np.sqrt(size) == pytest.approx(noise[1], rel=0.25), (size, std)


def test_lr_range_test_suggestion_trains(ns):
    losses, accuracy = ns["suggested_run"]
    assert 1e-3 < ns["suggested_lr"] < 1.0
    assert losses[-1] < 0.2 * losses[0] and losses[-1] < 0.3, losses
    assert accuracy > 0.9, accuracy
    too_small = next(run for name, run in ns["range_test_training"].items() if name.startswith("100x smaller"))
    assert too_small[1] < 0.5, "a rate 100 times smaller barely trains in the same budget"


def test_warmup_avoids_the_divergence_shown_without_it(ns):
    runs = ns["warmup_runs"]
    cold, _ = runs["lr 4, no warm-up"]
    warm, _ = runs["lr 4, 100 warm-up steps"]
    assert np.nanmax(cold) > 100 * cold[0], "without warm-up the loss explodes"
    assert not (np.isfinite(cold[-1]) and cold[-1] < 1.0), "and the run does not recover"
    assert np.max(warm) <= cold[0] * 1.01, "with warm-up the loss never rises above its start"
    assert warm[-1] < 0.01


def test_clipping_also_tames_the_first_steps(ns):
    losses, norms = ns["warmup_runs"]["lr 4, no warm-up, clipped at 1"]
    assert losses[-1] < 0.01 and np.all(np.isfinite(norms))
