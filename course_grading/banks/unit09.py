"""Unit 09 bank: classic double-descent mistakes, broken code and correct alternatives."""
from course_grading.banks import Variant

RELU = "random_relu_features"
MIN_NORM = "min_norm_solution"
RIDGE = "ridge_solution"
CURVE = "double_descent_curve"
T_RELU = "test_random_relu_features"
T_TALL = "test_min_norm_solution"
T_WIDE = "test_min_norm_solution_wide"
T_RIDGE = "test_ridge_solution"
T_CURVE = "test_double_descent_curve"

VARIANTS = [
    # ------------------------------------------------------------------ random_relu_features
    Variant("ReLU as abs", cell=RELU,
            replace=(("np.maximum(0.0, X @ W)", "np.abs(X @ W)"),), breaks=(T_RELU,), says="negative projections"),
    Variant("ReLU missing (linear features)", cell=RELU,
            replace=(("np.maximum(0.0, X @ W)", "X @ W"),), breaks=(T_RELU,), says="negative projections"),
    Variant("W transposed", cell=RELU,
            replace=(("X @ W", "X @ W.T"),), breaks=(T_RELU,), says="raised ValueError"),
    Variant("ReLU on the inputs instead of the projections", cell=RELU,
            replace=(("np.maximum(0.0, X @ W)", "np.maximum(0.0, X) @ W"),), breaks=(T_RELU,),
            says="negative projections"),
    Variant("wrong shape: features transposed", cell=RELU,
            replace=(("np.maximum(0.0, X @ W)", "np.maximum(0.0, X @ W).T"),), breaks=(T_RELU,),
            says="shape"),
    Variant("mask product X @ W * (X @ W > 0)", cell=RELU, source='''
def random_relu_features(X, W):
    Z = X @ W
    return Z * (Z > 0)
'''),
    Variant("np.where and einsum", cell=RELU, source='''
def random_relu_features(X, W):
    Z = np.einsum("nd,dp->np", X, W)
    return np.where(Z > 0, Z, 0.0)
'''),
    # ------------------------------------------------------------------ min_norm_solution
    Variant("normal equations also when over-parameterised", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.inv(Phi.T @ Phi) @ Phi.T @ y"),),
            breaks=(T_WIDE,)),
    Variant("dual formula also when N > p", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "Phi.T @ np.linalg.inv(Phi @ Phi.T) @ y"),),
            breaks=(T_TALL, T_WIDE)),
    Variant("pinv with a huge cut-off (rcond=0.1)", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi)", "np.linalg.pinv(Phi, rcond=0.1)"),),
            breaks=(T_TALL, T_WIDE), says="cut-off"),
    Variant("QR on the wide system: a basic, not minimum-norm, solution", cell=MIN_NORM, source='''
def min_norm_solution(Phi, y):
    N, p = Phi.shape
    if N >= p:
        Q, R = np.linalg.qr(Phi)
        return np.linalg.solve(R, Q.T @ y)
    w = np.zeros(p)
    w[:N] = np.linalg.solve(Phi[:, :N], y)
    return w
''', breaks=(T_WIDE,), says="null"),
    Variant("exception: lstsq on the transposed system", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.lstsq(Phi.T, y, rcond=None)[0]"),),
            breaks=(T_TALL, T_WIDE), says="raised LinAlgError"),
    Variant("wrong shape: w as a column", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.pinv(Phi) @ y.reshape(-1, 1)"),),
            breaks=(T_TALL, T_WIDE), says="shape"),
    Variant("pinv truncated at rcond=1e-4", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi)", "np.linalg.pinv(Phi, rcond=1e-4)"),),
            breaks=(T_TALL, T_WIDE), says="1.5e-4"),
    Variant("pinv truncated at rcond=5e-4", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi)", "np.linalg.pinv(Phi, rcond=5e-4)"),),
            breaks=(T_TALL, T_WIDE), says="1.5e-4"),
    Variant("lstsq truncated at rcond=1e-4", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.lstsq(Phi, y, rcond=1e-4)[0]"),),
            breaks=(T_TALL, T_WIDE), says="1.5e-4"),
    Variant("normal equations, primal for N >= p and dual for p > N (visible: dependent columns)",
            cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.solve(Phi.T @ Phi, Phi.T @ y) if Phi.shape[0] >= "
                      "Phi.shape[1] else Phi.T @ np.linalg.solve(Phi @ Phi.T, y)"),),
            breaks=(T_WIDE,), says="dependent columns"),
    Variant("lstsq with rcond=None", cell=MIN_NORM,
            replace=(("np.linalg.pinv(Phi) @ y", "np.linalg.lstsq(Phi, y, rcond=None)[0]"),)),
    Variant("SVD with a relative cut-off", cell=MIN_NORM, source='''
def min_norm_solution(Phi, y):
    U, s, Vt = np.linalg.svd(Phi, full_matrices=False)
    keep = s > 1e-12 * s.max()
    return Vt[keep].T @ ((U[:, keep].T @ y) / s[keep])
'''),
    Variant("textbook switch: dual formula for p > N, wrong on dependent features", cell=MIN_NORM, source='''
def min_norm_solution(Phi, y):
    N, p = Phi.shape
    if N >= p:
        return np.linalg.lstsq(Phi, y, rcond=None)[0]
    return Phi.T @ np.linalg.solve(Phi @ Phi.T, y)
''', breaks=(T_WIDE,), says="rank 3"),
    # ------------------------------------------------------------------ ridge_solution
    Variant("ridge penalising nothing (lam ignored)", cell=RIDGE,
            replace=((" + lam * np.eye(p)", ""), (" + lam * np.eye(N)", "")),
            breaks=(T_RIDGE,), says="closest to the minimiser for lam"),
    Variant("lam times the number of samples (mean-squared-error convention)", cell=RIDGE,
            replace=(("lam * np.eye(p)", "N * lam * np.eye(p)"), ("lam * np.eye(N)", "N * lam * np.eye(N)")),
            breaks=(T_RIDGE,), says="closest to the minimiser for lam"),
    Variant("lam doubled", cell=RIDGE,
            replace=(("lam * np.eye(p)", "2 * lam * np.eye(p)"), ("lam * np.eye(N)", "2 * lam * np.eye(N)")),
            breaks=(T_RIDGE,), says="closest to the minimiser for lam"),
    Variant("penalty subtracted", cell=RIDGE,
            replace=(("+ lam * np.eye(p)", "- lam * np.eye(p)"), ("+ lam * np.eye(N)", "- lam * np.eye(N)")),
            breaks=(T_RIDGE,), says="closest to the minimiser for lam"),
    Variant("np.ones instead of the identity", cell=RIDGE,
            replace=(("lam * np.eye(p)", "lam * np.ones((p, p))"), ("lam * np.eye(N)", "lam * np.ones((N, N))")),
            breaks=(T_RIDGE,), says="closest to the minimiser for lam"),
    Variant("identity of the wrong size in the primal form", cell=RIDGE, source='''
def ridge_solution(Phi, y, lam):
    N, p = Phi.shape
    return np.linalg.solve(Phi.T @ Phi + lam * np.eye(N), Phi.T @ y)
''', breaks=(T_RIDGE,), says="raised ValueError"),
    Variant("NaN: lam turned into sqrt(-lam)", cell=RIDGE,
            replace=(("    N, p = Phi.shape\n", "    N, p = Phi.shape\n    lam = np.sqrt(-lam)\n"),),
            breaks=(T_RIDGE,), says="nan"),
    Variant("primal form only, with solve", cell=RIDGE, source='''
def ridge_solution(Phi, y, lam):
    p = Phi.shape[1]
    return np.linalg.solve(Phi.T @ Phi + lam * np.eye(p), Phi.T @ y)
'''),
    Variant("dual form only, with an explicit inverse", cell=RIDGE, source='''
def ridge_solution(Phi, y, lam):
    return Phi.T @ np.linalg.inv(Phi @ Phi.T + lam * np.eye(len(y))) @ y
'''),
    Variant("augmented least squares", cell=RIDGE, source='''
def ridge_solution(Phi, y, lam):
    p = Phi.shape[1]
    A = np.vstack([Phi, np.sqrt(lam) * np.eye(p)])
    b = np.concatenate([y, np.zeros(p)])
    return np.linalg.lstsq(A, b, rcond=None)[0]
'''),
    # ------------------------------------------------------------------ double_descent_curve
    Variant("a curve from one draw only", cell=CURVE,
            replace=(("range(N_DRAWS)", "range(1)"), (" / N_DRAWS", "")),
            breaks=(T_CURVE,), says="ONE draw"),
    Variant("train and test swapped", cell=CURVE,
            replace=(("return train_mse, test_mse", "return test_mse, train_mse"),),
            breaks=(T_CURVE,), says="swapped"),
    Variant("a fresh generator for every feature count", cell=CURVE,
            replace=(("        for _ in range(N_DRAWS):\n",
                      "        rng = np.random.default_rng(seed)\n        for _ in range(N_DRAWS):\n"),),
            breaks=(T_CURVE,), says="one generator"),
    Variant("W drawn transposed", cell=CURVE,
            replace=(("rng.standard_normal((d, p))", "rng.standard_normal((p, d)).T"),),
            breaks=(T_CURVE,), says="shape (d, p)"),
    Variant("test features from a new W", cell=CURVE,
            replace=(("Phi_test = random_relu_features(X_test, W)",
                      "Phi_test = random_relu_features(X_test, rng.standard_normal((d, p)) / np.sqrt(d))"),),
            breaks=(T_CURVE,), says="same W"),
    Variant("sum of squared errors instead of the mean", cell=CURVE,
            replace=(("np.mean((Phi_train", "np.sum((Phi_train"), ("np.mean((Phi_test", "np.sum((Phi_test")),
            breaks=(T_CURVE,), says="mean over the samples"),
    Variant("no ReLU in the curve", cell=CURVE,
            replace=(("Phi_train = random_relu_features(X_train, W)", "Phi_train = X_train @ W"),
                     ("Phi_test = random_relu_features(X_test, W)", "Phi_test = X_test @ W")),
            breaks=(T_CURVE,), says="max(0, X @ W)"),
    Variant("infinite loop over the feature counts", cell=CURVE,
            replace=(("    for k, p in enumerate(feature_counts):\n",
                      "    k = 0\n    while k < len(feature_counts):\n        p = feature_counts[k]\n"),),
            breaks=(T_CURVE,), says="did not finish"),
    Variant("NaN: training errors never stored", cell=CURVE,
            replace=(("train_mse = np.zeros(len(feature_counts))", "train_mse = np.full(len(feature_counts), np.nan)"),),
            breaks=(T_CURVE,), says="nan"),
    Variant("the last draw only (errors overwritten, not averaged)", cell=CURVE,
            replace=(("train_mse[k] += np.mean((Phi_train @ w - y_train) ** 2) / N_DRAWS",
                      "train_mse[k] = np.mean((Phi_train @ w - y_train) ** 2)"),
                     ("test_mse[k] += np.mean((Phi_test @ w - y_test) ** 2) / N_DRAWS",
                      "test_mse[k] = np.mean((Phi_test @ w - y_test) ** 2)")),
            breaks=(T_CURVE,), says="averaged"),
    Variant("errors summed over the draws", cell=CURVE,
            replace=((") ** 2) / N_DRAWS", ") ** 2)"),), breaks=(T_CURVE,), says="averaged"),
    Variant("loops swapped (draws outside, counts inside)", cell=CURVE, source='''
def double_descent_curve(X_train, y_train, X_test, y_test, feature_counts, seed=0):
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    train_mse, test_mse = np.zeros(len(feature_counts)), np.zeros(len(feature_counts))
    for _ in range(N_DRAWS):
        for k, p in enumerate(feature_counts):
            W = rng.standard_normal((d, p)) / np.sqrt(d)
            Phi_train, Phi_test = random_relu_features(X_train, W), random_relu_features(X_test, W)
            w = min_norm_solution(Phi_train, y_train)
            train_mse[k] += np.mean((Phi_train @ w - y_train) ** 2) / N_DRAWS
            test_mse[k] += np.mean((Phi_test @ w - y_test) ** 2) / N_DRAWS
    return train_mse, test_mse
''', breaks=(T_CURVE,), says="outer loop"),
    Variant("median over the draws", cell=CURVE, source='''
def double_descent_curve(X_train, y_train, X_test, y_test, feature_counts, seed=0):
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    train_mse, test_mse = [], []
    for p in feature_counts:
        errors = []
        for _ in range(N_DRAWS):
            W = rng.standard_normal((d, p)) / np.sqrt(d)
            Phi_train, Phi_test = random_relu_features(X_train, W), random_relu_features(X_test, W)
            w = min_norm_solution(Phi_train, y_train)
            errors.append((np.mean((Phi_train @ w - y_train) ** 2), np.mean((Phi_test @ w - y_test) ** 2)))
        train_mse.append(np.median([e[0] for e in errors]))
        test_mse.append(np.median([e[1] for e in errors]))
    return np.array(train_mse), np.array(test_mse)
''', breaks=(T_CURVE,), says="median"),
    Variant("W unscaled (the minimum-norm fit does not care)", cell=CURVE,
            replace=(("rng.standard_normal((d, p)) / np.sqrt(d)", "rng.standard_normal((d, p))"),)),
    Variant("lists of draws, rng.normal and lstsq inline", cell=CURVE, source='''
def double_descent_curve(X_train, y_train, X_test, y_test, feature_counts, seed=0):
    rng = np.random.default_rng(seed)
    d = X_train.shape[1]
    train_mse, test_mse = [], []
    for p in feature_counts:
        train_errors, test_errors = [], []
        for draw in range(N_DRAWS):
            W = rng.normal(0.0, 1.0 / np.sqrt(d), size=(d, p))
            A, B = np.maximum(X_train @ W, 0), np.maximum(X_test @ W, 0)
            w = np.linalg.lstsq(A, y_train, rcond=None)[0]
            train_errors.append(((A @ w - y_train) ** 2).mean())
            test_errors.append(((B @ w - y_test) ** 2).mean())
        train_mse.append(np.mean(train_errors))
        test_mse.append(np.mean(test_errors))
    return np.array(train_mse), np.array(test_mse)
'''),
]
