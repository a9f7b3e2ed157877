"""What lecture 09 shows, asserted on its own code and seeds: the minimum-norm random-features test
error peaks at the interpolation threshold p = N where the smallest singular value of the features
vanishes, training error is zero beyond it, ridge lowers the peak more than tenfold and removes it,
more data hurts near N = p, and a width sweep of small networks on noisy labels rises and falls."""
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


def test_the_interpolating_fits_of_the_first_picture(ns):
    errors = ns["one_d_errors"]
    assert np.median(errors[2000]) < np.median(errors[12]) and np.median(errors[2000]) < np.median(errors[4])
    assert errors[12].max() > 100 * errors[2000].max(), "some draw at p = N fits wildly"


def test_the_test_error_peaks_at_the_interpolation_threshold(ns):
    counts, train, test, n = ns["feature_counts"], ns["train_mse"][0], ns["test_mse"][0], ns["n_train"]
    assert abs(ns["peak_count"] - n) <= 4, f"peak at p = {ns['peak_count']}, N = {n}"
    assert test.max() > 20 * test[counts < n].min(), "a peak, not a bump"
    assert np.all(train[counts > n] < 1e-12), "beyond the threshold every model interpolates"
    assert np.all(train[counts < n - 4] > 1e-3), "below it none does"
    assert test[-1] < test[counts < n].min(), "the second descent ends below the first minimum"
    assert ns["curve_seconds"] < 10


def test_the_smallest_singular_value_vanishes_at_the_threshold(ns):
    counts, s_min = ns["feature_counts"], ns["s_min"]
    assert ns["smallest_s_count"] == ns["n_train"]
    assert s_min.min() < s_min[counts == 50][0] / 20 and s_min.min() < s_min[-1] / 20
    assert abs(counts[np.argmax(ns["w_norm"])] - ns["n_train"]) <= 4, "the weights are largest there too"


def test_ridge_lowers_the_peak_more_than_tenfold_and_removes_it(ns):
    counts, test, lams, n = ns["feature_counts"], ns["test_mse"], ns["lams"], ns["n_train"]
    assert ns["peak_reduction"] > 10
    peaks = [test[i][ns["near"]].max() for i in range(len(lams))]
    assert all(a > b for a, b in zip(peaks, peaks[1:])), f"more penalty, lower peak: {peaks}"
    ridge = ns["ridge_test"]
    assert ridge[counts == n][0] < 1.5 * ridge[counts == n // 2][0] and ridge[-1] < ridge[counts == n // 2][0]


def test_more_data_hurts_near_the_threshold(ns):
    counts, curve = ns["sample_counts"], ns["samplewise"]
    assert abs(ns["sample_peak"] - ns["fixed_p"]) <= 4
    assert curve[0][counts == ns["sample_peak"]][0] > 10 * curve[0][counts == 40][0], "more samples, worse"
    assert curve[0][-1] < curve[0][counts == 40][0]
    ridge = curve[ns["lams"].index(0.1)]
    assert ridge.max() < 2 * ridge[0], "with ridge the peak is gone"


def test_the_network_width_sweep_rises_and_falls(ns):
    test, train, first, peak = ns["nn_test"], ns["nn_train"], ns["first_minimum"], ns["nn_peak"]
    assert 0 < first < peak < len(test) - 1
    assert test[peak] > 1.3 * test[first], f"a rise after the first minimum: {test}"
    assert test[-1] < 0.8 * test[peak], f"and a fall after the peak: {test}"
    assert train[peak] < 0.1 * ns["nn_noise"] ** 2, "the peak comes where the nets (nearly) interpolate"
    assert train[first] > 0.25 * ns["nn_noise"] ** 2, "the first minimum does not interpolate"
