"""Claims of lecture 08 (optimizers), asserted on the lecture's own code and seeds."""
import numpy as np
import pytest
import torch

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
    assert np.round(accuracy, 2) == 0.98, accuracy
    too_small = next(run for name, run in ns["range_test_training"].items() if name.startswith("100x smaller"))
    assert too_small[1] < 0.5, "a rate 100 times smaller barely trains in the same budget"
    assert too_small[0][-1] > 0.95 * np.log(10), "its loss hardly leaves chance level"
    runs = ns["range_test_training"]
    at_minimum = next(run for name, run in runs.items() if name.startswith("at the minimum"))
    assert ns["lr_at_min"] == pytest.approx(10 * ns["suggested_lr"])
    # chaotic: accuracy 0.70 on one CPU, 0.86 on another, 0.40 to 0.84 after 1e-7 nudges of the weights,
    # with per-epoch losses from 0.94 to 1.72 (3.5 in the last epoch after a 1e-6 nudge)
    assert not np.any(at_minimum[0] < 0.8), "too large to settle: its loss hovers near 1 or above"
    assert at_minimum[1] < 0.9 < accuracy, "its accuracy well below 98 %"
    assert len(ns["X_digits"]) == 1797 and len(ns["range_lrs"]) <= 100


def test_warmup_avoids_the_divergence_shown_without_it(ns):
    runs = ns["warmup_runs"]
    cold, _ = runs["lr 4, no warm-up"]
    warm, _ = runs["lr 4, 100 warm-up steps"]
    assert np.nanmax(cold) > 100 * cold[0], "without warm-up the loss explodes"
    assert not (np.isfinite(cold[-1]) and cold[-1] < 1.0), "and the run does not recover"
    assert np.max(warm) <= cold[0] * 1.01, "with warm-up the loss never rises above its start"
    assert warm[-1] < 0.01
    assert warm[33] < 0.15 and warm[34:42].max() > 1.0, "a bump of its own near step 37"
    ramp = ns["schedule_curve"](lambda o: ns["lr_sched"].LinearLR(o, start_factor=0.01, total_iters=100), lr=4.0)
    assert ramp[36] < 1.5 < ramp[37], "where the rate passes 1.5"


def test_without_warm_up_other_seeds_do_not_recover_either(ns):
    ends = []
    for seed in (1, 2):
        with np.errstate(all="ignore"):
            ends.append(ns["train_full_batch"](4.0, seed=seed)[0][-1])
    # chaotic: 1.5 and 2.30 on one CPU, 2.30 and 2.30 on another; nudged by 1e-7, seed 1 ends at 1.43 to 2.3
    assert all(1.0 < end < 1.05 * np.log(10) for end in ends), ends


def test_clipping_stops_the_runaway_not_the_bouncing(ns):
    losses, norms = ns["warmup_runs"]["lr 4, no warm-up, clipped at 1"]
    free_losses, free_norms = ns["warmup_runs"]["lr 4, no warm-up"]
    assert np.array_equal(losses[:4], free_losses[:4]), "the first four losses are the unclipped run's"
    assert np.round(losses[2:4], 2).tolist() == [1.15, 1.80] and np.round(norms[2], 2) == 0.66
    assert np.round(norms[3], 1) == 2.3 and np.round(4 * free_norms[3], 1) == 9.4
    assert np.round(free_losses[4:7], 0).tolist() == [9, 19, 507], "the runaway"
    assert np.round(losses[4], 1) == 2.1 and np.all(losses[4:10] > 1.0), "it bounces, up to 2.1 at first"
    # the rest is chaotic: nudged by 1e-7, the bouncing ends between steps 17 and 46, peaks at 2.1 to 2.9,
    # the run ends at 1.8e-4 to 6.4e-3 (its lowest loss in steps 4 to 34: 0.2 on one CPU, 0.009 on another)
    assert losses.max() < 1.5 * losses[0] and np.all(np.isfinite(losses + norms)), "it never runs away"
    assert 1e-4 < losses[-1] < 2e-2, "then it trains"
    assert np.isnan(free_losses[-1]), "the unclipped run ends as NaN"


def final_losses(runs):
    return {name: float(losses[-1]) for name, (_, losses) in runs.items()}


def test_the_bowl_and_its_stability_limit(ns):
    quadratic, start = ns["quadratic"], ns["PROBLEMS"]["quadratic"]["start"]
    assert quadratic(start) == 41.75
    stable, unstable = (ns["run_optimizer"](lambda q, lr=lr: torch.optim.SGD(q, lr=lr), "quadratic")[1]
                        for lr in (0.065, 0.07))
    assert stable[-1] < stable[0] and unstable[-1] > 1e3 * unstable[0], "stable only below 2/30"


def test_momentum_is_a_dial_and_0_9_is_too_much_for_this_bowl(ns):
    final = final_losses(ns["momentum_runs"])
    plain, best, heavy = final["SGD, momentum 0.0"], final["SGD, momentum 0.7"], final["SGD, momentum 0.9"]
    assert best < 1e-3 * plain and best < 1e-3 * heavy, final
    assert heavy == pytest.approx(41.75 * 0.9 ** 120, rel=0.05) and np.round(heavy, 5) == 1.3e-4
    sgd = ns["race"]["quadratic"]["SGD"][1][-1]
    assert np.round(sgd, 7) == 2.8e-6 and sgd < heavy / 10, "plain GD at lr 0.06 beats momentum 0.9"
    kappa = ns["quadratic_gradient"](0.0, 1.0)[1] / ns["quadratic_gradient"](1.0, 0.0)[0]
    assert kappa == 30.0
    assert ((np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)) ** 2 == pytest.approx(0.48, abs=0.005)
    assert ((1 + np.sqrt(0.9)) / (1 - np.sqrt(0.9))) ** 2 == pytest.approx(1400, rel=0.05)
    mu, lr = 0.7, 0.03
    assert (1 - np.sqrt(mu)) ** 2 < lr * 1.0 and lr * kappa < (1 + np.sqrt(mu)) ** 2, "both oscillate"
    assert np.sqrt(mu) == pytest.approx(0.84, abs=0.005) and np.sqrt(0.9) == pytest.approx(0.949, abs=5e-4)


def test_the_look_ahead_form_is_torch_nesterov_and_beats_the_heavy_ball(ns):
    assert ns["nesterov_gap"] < 1e-12
    momentum, nesterov = ns["nesterov_runs"]["momentum 0.9"][1], ns["nesterov_runs"]["Nesterov 0.9"][1]
    assert nesterov[60] < momentum[60] and nesterov[-1] < momentum[-1]


def test_adagrad_steps_shrink_like_one_over_sqrt_t_only_for_steady_gradients(ns):
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adagrad([p], lr=0.5)
    steps = []
    for _ in range(120):
        p.grad = torch.full((1,), 0.7, dtype=torch.float64)
        optimizer.step()
        steps.append(0.5 / (np.sqrt(optimizer.state[p]["sum"].item()) + 1e-10))
    assert steps[9] / steps[119] == pytest.approx(np.sqrt(12), rel=1e-6)
    assert np.sqrt(12) == pytest.approx(3.5, abs=0.05)
    x_steps = ns["adaptive_steps"]["AdaGrad (lr 0.5)"][:, 0]
    assert np.round(x_steps[9], 3) == 0.056 and np.round(x_steps[119], 3) == 0.047, "it levels off"
    rmsprop = ns["adaptive_steps"]["RMSProp (lr 0.05)"]
    assert np.all(rmsprop[119] > rmsprop[9]), "RMSProp keeps its steps alive"


def test_adam_bias_correction_numbers(ns):
    beta1, beta2 = ns["beta1"], ns["beta2"]
    factor = lambda t: (1 - beta1 ** t) / np.sqrt(1 - beta2 ** t)  # noqa: E731
    first = np.sqrt(ns["adam_moments"]["v"][0] / ns["adam_moments"]["v_hat"][0])
    assert first == pytest.approx(np.sqrt(1 - beta2)) and first == pytest.approx(0.03, abs=0.002)
    assert 1 / first == pytest.approx(30, rel=0.06), "about 30 times too small"
    assert np.round(factor(1)) == 3 and np.round(factor(100)) == 3
    assert all(6 <= factor(t) <= 7 for t in range(10, 21))
    assert factor(1000) > 1.2 and factor(5000) < 1.01, "close to 1 only after thousands"
    assert ns["step_without"][0] == pytest.approx(factor(1)) and ns["step_with"][0] == pytest.approx(1.0)


def test_the_race(ns):
    quadratic = ns["quadratic_final"]
    for name in ("momentum", "Nesterov", "AdaGrad"):
        assert quadratic[name] < 1e-6 * quadratic["SGD"], (name, quadratic)
    assert quadratic["RMSProp"] < quadratic["SGD"] < quadratic["Adam"]
    x, y = ns["PROBLEMS"]["rosenbrock"]["start"]
    hessian = [[2 - 400 * (y - x ** 2) + 800 * x ** 2, -400 * x], [-400 * x, 200]]
    curvature = np.linalg.eigvalsh(hessian).max()
    assert 1500 < curvature < 2500 and 2 / curvature == pytest.approx(1e-3, rel=0.1), "curvature near 2000"
    with np.errstate(all="ignore"):
        edge, beyond = (ns["run_optimizer"](lambda q, lr=lr: torch.optim.SGD(q, lr=lr), "rosenbrock")[1]
                        for lr in (2e-3, 2.5e-3))
    assert 400 < np.nanmax(edge) < 600 and edge[-1] < 1e-3, "twice the rate survives a jump and gets there"
    assert not np.isfinite(beyond[-1]), "2.5e-3 diverges"
    final, distance = ns["rosenbrock_final"], ns["rosenbrock_distance"]
    assert final["Nesterov"] < 1e-3 and distance["Nesterov"] < 0.05
    for name, f, away in [("AdaGrad", 0.04, 0.5), ("RMSProp", 0.08, 0.4)]:   # in the valley, not at (1, 1)
        assert final[name] == pytest.approx(f, abs=0.01) and distance[name] == pytest.approx(away, abs=0.05)
    slow = ns["run_optimizer"](lambda q: torch.optim.Adagrad(q, lr=0.5), "rosenbrock")[1][-1]
    assert slow == pytest.approx(1.6, abs=0.05) and final["SGD"] == pytest.approx(2.8, abs=0.05), \
        "AdaGrad at lr 0.5 barely beats plain SGD"
