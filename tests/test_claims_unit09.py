"""What lecture 09 shows, asserted on its own code and seeds: the panels of the first picture and
their training residuals, the minimum-norm random-features test error peaking at the interpolation
threshold p = N where the smallest singular value of the features vanishes, zero training error
beyond it, what ridge does to the peak (lambda = 0.1 lowers it, lambda = 1 removes it), more data
hurting near N = p, and a width sweep of small networks that rises and falls, less without label
noise; every number the text states."""
import numpy as np
import pytest

from tests.lectures import lecture


@pytest.fixture(scope="module")
def ns():
    return lecture("09")


def test_the_spectral_fit_is_the_minimum_norm_solution(ns):
    rng = np.random.default_rng(5)
    for shape in [(6, 3), (4, 10)]:
        Phi, y = rng.standard_normal(shape), rng.standard_normal(shape[0])
        fits, _ = ns["spectral_fits"](Phi, y, [0.0, 0.5])
        np.testing.assert_allclose(fits[0.0], np.linalg.pinv(Phi) @ y, rtol=1e-10, atol=1e-12)
        ridge = np.linalg.solve(Phi.T @ Phi + 0.5 * np.eye(shape[1]), Phi.T @ y)
        np.testing.assert_allclose(fits[0.5], ridge, rtol=1e-10, atol=1e-12)


def test_the_panels_of_the_first_picture(ns):
    errors, residuals, counts = ns["one_d_errors"], ns["one_d_residuals"], ns["panels"]
    small, threshold, wide = "p = 4", "the fewest ramps that interpolate", "p = 2000"
    assert residuals[small].min() > 0.1, "with 4 ramps no fit passes through every point"
    assert residuals[threshold].max() < 1e-10 and residuals[wide].max() < 1e-10, "these fits interpolate"
    assert (min(ns["ranks_at_12"]), max(ns["ranks_at_12"])) == (4, 9), "12 ramps give rank 4 to 9 only"
    assert (min(counts[threshold]), max(counts[threshold])) == (30, 257)
    assert np.median(errors[wide]) < min(np.median(errors[threshold]), np.median(errors[small]))
    assert errors[threshold].max() > 50 * errors[wide].max(), "some draw at its threshold fits wildly"
    assert errors[threshold].max() > 10 * errors[small].max()
    assert errors[wide].max() < 1.2 * np.median(errors[wide]), "with 2000 ramps the draw hardly matters"


def test_the_test_error_peaks_at_the_interpolation_threshold(ns):
    counts, train, test, n = ns["feature_counts"], ns["train_mse"][0], ns["test_mse"][0], ns["n_train"]
    assert ns["peak_count"] == n, f"peak at p = {ns['peak_count']}, N = {n}"
    assert test.max() > 100 * test[counts < n].min(), "a peak of more than two orders of magnitude"
    assert np.round(test.max()) == 131 and np.round(test[counts < n].min(), 2) == 0.53
    assert test.max() > 10 * np.var(ns["y_test"]), "much worse than predicting the mean"
    assert np.all(train[counts > n] < 1e-12), "beyond the threshold every model interpolates"
    assert np.all(train[counts < n - 4] > 1e-3), "below it none does"
    assert test[-1] < test[counts < n].min(), "the second descent ends below the first minimum"
    assert ns["curve_seconds"] < 15


def test_the_smallest_singular_value_vanishes_at_the_threshold(ns):
    counts, s_min = ns["feature_counts"], ns["s_min"]
    assert ns["smallest_s_count"] == ns["n_train"]
    assert s_min.min() < s_min[counts == 50][0] / 20 and s_min.min() < s_min[-1] / 20
    assert counts[np.argmax(ns["w_norm"])] == ns["n_train"], "the weights are largest there too"


def test_ridge_lowers_the_peak_forty_times_but_only_lambda_1_removes_the_bump(ns):
    counts, test, lams = ns["feature_counts"], ns["test_mse"], ns["lams"]
    peaks = [test[i][ns["near"]].max() for i in range(len(lams))]
    assert all(a > b for a, b in zip(peaks, peaks[1:])), f"more penalty, lower peak: {peaks}"
    assert 180 < ns["peak_reduction"] < 200 and np.round(test[0].max()) == 131
    ridge = ns["ridge_test"]
    assert np.round(ridge[ns["near"]].max(), 2) == 0.70
    at = {p: round(float(ridge[counts == p][0]), 2) for p in (50, 100, 150)}
    assert at == {50: 0.47, 100: 0.63, 150: 0.70}, at
    assert counts[np.flatnonzero((counts > 150) & (ridge < 0.55))[0]] == 300, "back under 0.55 from p = 300"
    assert np.all(ridge[counts >= 300] < 0.55)
    strongest = test[lams.index(1.0)]
    assert 0.33 <= strongest[counts >= 60].min() and strongest[counts >= 60].max() <= 0.405, "no bump"
    assert np.all(strongest[counts >= 10] <= test[:, counts >= 10].min(axis=0)), "lambda = 1 is the best"
    assert np.all(np.round(test[:, counts == 5], 2) == 0.99), "at p = 5 every penalty ties"


def test_more_data_hurts_near_the_threshold(ns):
    counts, curve, p = ns["sample_counts"], ns["samplewise"], ns["fixed_p"]
    at = lambda row, n: float(row[counts == n][0])  # noqa: E731
    min_norm, ridge, mean_error = curve[0], curve[ns["lams"].index(0.1)], np.var(ns["y_test"])
    assert ns["sample_peak"] == p and np.round(min_norm.max()) == 39
    assert np.round(mean_error, 2) == 0.92
    worse = min_norm[counts <= 140] > mean_error
    assert list(counts[counts <= 140][~worse]) == [30] and np.round(at(min_norm, 30), 2) == 0.91
    assert at(min_norm, 160) < mean_error
    rising = min_norm[(counts >= 60) & (counts <= p)]
    assert np.all(np.diff(rising) > 0), "from 60 samples on, every step towards N = p hurts"
    assert np.round(min_norm[-1], 2) == 0.25 and counts[-1] == 400
    assert np.round(ridge[-1], 2) == 0.25
    for n, value in ((10, 0.96), (20, 1.29), (50, 0.65), (60, 0.73), (70, 0.83), (p, 0.58)):
        assert np.round(at(ridge, n), 2) == value, (n, at(ridge, n))


def test_the_network_width_sweep_rises_and_falls(ns):
    test, train, first, peak = ns["nn_test"], ns["nn_train"], ns["first_minimum"], ns["nn_peak"]
    assert 0 < first < peak < len(test) - 1
    assert test[peak] > 1.3 * test[first], f"a rise after the first minimum: {test}"
    assert test[-1] < 0.8 * test[peak], f"and a fall after the peak: {test}"
    assert train[peak] < 0.1 * ns["nn_noise"] ** 2, "the peak comes where the nets (nearly) interpolate"
    assert train[first] > 0.25 * ns["nn_noise"] ** 2, "the first minimum does not interpolate"
    widths = list(ns["widths"])
    assert (widths[first], widths[peak]) == (8, 28)
    assert 1 < (6 * widths[peak] + 1) / ns["nn_n"] < 4, "the peak where 6h + 1 is a small multiple of N"
    assert test[first] == pytest.approx(0.44, abs=0.01) and test[peak] == pytest.approx(0.78, abs=0.01)


def test_without_label_noise_the_bump_is_half_as_high(ns):
    clean, noisy, widths, first = ns["clean_test"], ns["nn_test"], list(ns["widths"]), ns["clean_first"]
    assert np.all(clean[widths.index(8):] < noisy[widths.index(8):]), "lower at every width from 8 on"
    assert (widths[first], widths[first + 1]) == (8, 12)
    assert clean[first] == pytest.approx(0.35, abs=0.01) and clean[first + 1] == pytest.approx(0.51, abs=0.01)
    rise, noisy_rise = clean[first + 1] - clean[first], noisy[ns["nn_peak"]] - noisy[ns["first_minimum"]]
    assert rise == pytest.approx(0.17, abs=0.01) and noisy_rise == pytest.approx(0.34, abs=0.01)
    later = clean[widths.index(16):]
    assert 0.155 <= later.min() and later.max() <= 0.235, "between 0.16 and 0.23 from width 16 on"
