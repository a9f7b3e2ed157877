"""Datasets for the course: generated on the spot or bundled with scikit-learn. Nothing downloads."""
import numpy as np


def separable_blobs(n=100, seed=0, gap=1.0):
    """Two linearly separable Gaussian blobs in 2-D: X (n, 2), y in {0, 1} (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centers = np.where(y[:, None] == 1, [1.5 + gap / 2, 1.5 + gap / 2], [-1.5 - gap / 2, -1.5 - gap / 2])
    X = centers + rng.normal(scale=0.8, size=(n, 2))
    order = rng.permutation(n)
    return X[order], y[order]


def xor(n=200, seed=0, noise=0.15):
    """The XOR problem: four clusters at the corners of a square, labels 1 where signs differ."""
    rng = np.random.default_rng(seed)
    corners = rng.choice([-1.0, 1.0], size=(n, 2))
    X = corners + rng.normal(scale=noise, size=(n, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(int)
    return X, y


def moons(n=200, seed=0, noise=0.1):
    """Two interleaving half circles (scikit-learn's make_moons)."""
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n, noise=noise, random_state=seed)


def spirals(n=300, classes=3, seed=0, noise=0.2):
    """`classes` interleaved spiral arms in 2-D (the CS231n toy set)."""
    rng = np.random.default_rng(seed)
    per = n // classes
    X, y = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, per)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, per) + rng.normal(scale=noise, size=per)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(per, k))
    return np.concatenate(X), np.concatenate(y)


def housing(n=500, seed=0):
    """Synthetic house prices from two features: size (m^2) and floor. Returns X (n, 2), y (n,) in k$."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(40, 200, n)
    floor = rng.integers(0, 16, n).astype(float)
    price = 50 + 2.2 * size + 6.0 * floor - 0.25 * (floor - 8) ** 2 + rng.normal(scale=20, size=n)
    return np.c_[size, floor], price


def linear_regression(n=200, d=2, seed=0, noise=0.5):
    """y = X @ w_true + b_true + noise, with the true parameters: X, y, w_true, b_true."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w_true = rng.normal(size=d) * 2
    b_true = 1.5
    y = X @ w_true + b_true + rng.normal(scale=noise, size=n)
    return X, y, w_true, b_true


BREAST_CANCER_FEATURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                          "concave points", "symmetry", "fractal dimension")


def _bundled(name):
    """Path of a data file scikit-learn ships (read directly: importing scikit-learn takes seconds), or None."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name if spec else None
    return path if path and path.is_file() else None


def breast_cancer(features=None):
    """scikit-learn's bundled breast-cancer set (two classes): X, y, feature names."""
    path = _bundled("breast_cancer.csv")
    if path is None:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        X, y, names = data.data, data.target, list(data.feature_names)
    else:
        table = np.loadtxt(path, delimiter=",", skiprows=1)
        X, y = table[:, :-1], table[:, -1].astype(int)
        names = ([f"mean {f}" for f in BREAST_CANCER_FEATURES] + [f"{f} error" for f in BREAST_CANCER_FEATURES]
                 + [f"worst {f}" for f in BREAST_CANCER_FEATURES])
    if features is not None:
        X, names = X[:, features], [names[i] for i in features]
    return X, y, names


def digits():
    """scikit-learn's bundled 8x8 digits: X (1797, 64) in [0, 16], y (1797,) in 0..9."""
    path = _bundled("digits.csv.gz")
    if path is None:
        from sklearn.datasets import load_digits

        data = load_digits()
        return data.data, data.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def standardize(train, *others):
    """Scale columns to zero mean, unit variance using `train`'s statistics; returns the scaled arrays.

    A column constant in `train` is only centred (divided by 1), as scikit-learn's StandardScaler does.
    """
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std == 0, 1.0, std)
    scaled = [(a - mean) / std for a in (train, *others)]
    return scaled[0] if not others else tuple(scaled)


def train_test_split(X, y, test_fraction=0.25, seed=0):
    """A seeded random split: X_train, X_test, y_train, y_test."""
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(round(len(X) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return X[train], X[test], y[train], y[test]
