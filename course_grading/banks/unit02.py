"""Unit 02 bank: classic gradient-descent mistakes, broken code and correct alternatives."""
from course_grading.banks import Variant

MSE = "mse_gradients"
GD = "gradient_descent"
LOGISTIC = "logistic_regression_gradients"
T_MSE = "test_mse_gradients"
T_GD = "test_gradient_descent"
T_BATCH = "test_gradient_descent_batches"
T_LOG = "test_logistic_regression_gradients"
T_STAB = "test_logistic_regression_gradients_stability"

VARIANTS = [
    # ------------------------------------------------------------------ mse_gradients
    Variant("missing the factor 2", cell=MSE,
            replace=(("dw = 2.0 * X.T @ residual / N", "dw = X.T @ residual / N"),
                     ("db = 2.0 * np.sum(residual) / N", "db = np.sum(residual) / N")),
            breaks=(T_MSE,), says="dw"),
    Variant("sum instead of mean in the gradients", cell=MSE,
            replace=(("dw = 2.0 * X.T @ residual / N", "dw = 2.0 * X.T @ residual"),
                     ("db = 2.0 * np.sum(residual) / N", "db = 2.0 * np.sum(residual)")),
            breaks=(T_MSE,), says="dw"),
    Variant("db not averaged", cell=MSE,
            replace=(("db = 2.0 * np.sum(residual) / N", "db = 2.0 * np.sum(residual)"),),
            breaks=(T_MSE,), says="db"),
    Variant("averaged over the features (wrong axis)", cell=MSE,
            replace=(("N = X.shape[0]", "N = X.shape[1]"),),
            breaks=(T_MSE,), says="dw"),
    # a shape error inside mse_gradients also stops gradient_descent, which calls it
    Variant("missing transpose", cell=MSE,
            replace=(("X.T @ residual", "X @ residual"),),
            breaks=(T_MSE, T_GD, T_BATCH), says="raised ValueError"),
    Variant("looped gradient sums", cell=MSE, source='''
def mse_gradients(X, y, w, b):
    N, D = X.shape
    loss, dw, db = 0.0, np.zeros(D), 0.0
    for i in range(N):
        r = sum(X[i, j] * w[j] for j in range(D)) + b - y[i]
        loss += r * r / N
        for j in range(D):
            dw[j] += 2 * r * X[i, j] / N
        db += 2 * r / N
    return loss, dw, db
'''),
    Variant("einsum and mean", cell=MSE, source='''
def mse_gradients(X, y, w, b):
    r = np.einsum("nd,d->n", X, w) + b - y
    return (r ** 2).mean(), 2 * np.einsum("nd,n->d", X, r) / len(r), 2 * r.mean()
'''),
    # ------------------------------------------------------------------ gradient_descent
    Variant("losses recorded before the epoch's updates", cell=GD,
            replace=(("    for epoch in range(epochs):\n",
                      "    for epoch in range(epochs):\n"
                      "        losses.append(mse_gradients(X, y, w, b)[0])\n"),
                     ("        loss, _, _ = mse_gradients(X, y, w, b)\n        losses.append(loss)\n", "")),
            breaks=(T_GD, T_BATCH), says="losses[-1]"),
    Variant("one rng per epoch instead of per call", cell=GD,
            replace=(("    rng = np.random.default_rng(seed)\n", ""),
                     ("    for epoch in range(epochs):\n",
                      "    for epoch in range(epochs):\n        rng = np.random.default_rng(seed)\n")),
            breaks=(T_BATCH,), says="in the same order (batches ["),
    Variant("one permutation drawn before the epoch loop", cell=GD,
            replace=(("    for epoch in range(epochs):\n",
                      "    shuffled = rng.permutation(N)\n    for epoch in range(epochs):\n"),
                     ("else rng.permutation(N)", "else shuffled")),
            breaks=(T_BATCH,), says="in the same order (batches ["),
    Variant("np.array_split into ceil(N / batch_size) batches", cell=GD,
            replace=(("""        for start in range(0, N, size):
            batch = order[start:start + size]
""", """        for batch in np.array_split(order, -(-N // size)):
"""),),
            breaks=(T_BATCH,), says="had sizes [3, 3, 3, 3, 3, 3]"),
    Variant("mini-batch step scaled by len(batch) / N", cell=GD,
            replace=(("w = w - lr * dw", "w = w - lr * len(batch) / N * dw"),
                     ("b = b - lr * db", "b = b - lr * len(batch) / N * db")),
            breaks=(T_BATCH,), says="not scaled by the batch size"),
    Variant("no shuffling", cell=GD,
            replace=(("rng.permutation(N)", "np.arange(N)"),),
            breaks=(T_BATCH,), says="seeds 0 and 1"),
    Variant("gradient ascent (+lr * grad)", cell=GD,
            replace=(("w = w - lr * dw", "w = w + lr * dw"), ("b = b - lr * db", "b = b + lr * db")),
            breaks=(T_GD, T_BATCH), says="go down"),
    Variant("last partial mini-batch dropped", cell=GD,
            replace=(("range(0, N, size)", "range(0, N - size + 1, size)"),),
            breaks=(T_BATCH,), says="the last, smaller mini-batch is used too"),
    Variant("bias never updated", cell=GD,
            replace=(("b = b - lr * db", "b = b"),),
            breaks=(T_GD, T_BATCH), says="update both w and b"),
    Variant("exception: range() with batch_size None", cell=GD,
            replace=(("size = N if batch_size is None else batch_size", "size = batch_size"),),
            breaks=(T_GD, T_BATCH), says="raised TypeError"),
    Variant("NaN: parameters start as NaN", cell=GD,
            replace=(("b = 0.0", "b = np.nan"),),
            breaks=(T_GD, T_BATCH), says="nan"),
    Variant("gradient computed inline, fresh arange shuffled", cell=GD, source='''
def gradient_descent(X, y, lr, epochs, batch_size=None, seed=0):
    N, D = X.shape
    w, b = np.zeros(D), 0.0
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        if batch_size is None:
            batches = [np.arange(N)]
        else:
            idx = np.arange(N)
            rng.shuffle(idx)
            batches = [idx[i:i + batch_size] for i in range(0, N, batch_size)]
        for batch in batches:
            r = X[batch] @ w + b - y[batch]
            w = w - lr * 2 * X[batch].T @ r / len(batch)
            b = b - lr * 2 * r.mean()
        losses.append(np.mean((X @ w + b - y) ** 2))
    return w, b, losses
'''),
    Variant("full batch also shuffled, while loop over batches", cell=GD, source='''
def gradient_descent(X, y, lr, epochs, batch_size=None, seed=0):
    N = len(X)
    k = N if batch_size is None else min(batch_size, N)
    w, b = np.zeros(X.shape[1]), 0.0
    rng = np.random.default_rng(seed)
    losses = np.zeros(epochs)
    for e in range(epochs):
        order = rng.permutation(N)
        start = 0
        while start < N:
            rows = order[start:start + k]
            _, dw, db = mse_gradients(X[rows], y[rows], w, b)
            w -= lr * dw
            b -= lr * db
            start += k
        losses[e] = mse_gradients(X, y, w, b)[0]
    return w, b, losses
'''),
    # ------------------------------------------------------------------ logistic_regression_gradients
    Variant("sigmoid' factor kept (MSE-style gradient)", cell=LOGISTIC,
            replace=(("dw = X.T @ (p - y) / N", "dw = X.T @ ((p - y) * p * (1 - p)) / N"),
                     ("db = np.sum(p - y) / N", "db = np.sum((p - y) * p * (1 - p)) / N")),
            breaks=(T_LOG, T_STAB), says="dw"),
    Variant("logistic loss not averaged", cell=LOGISTIC,
            replace=(("loss = np.mean(", "loss = np.sum("),),
            breaks=(T_LOG, T_STAB), says="loss"),
    Variant("naive sigmoid and logs (unstable)", cell=LOGISTIC, source='''
def logistic_regression_gradients(X, y, w, b):
    N = X.shape[0]
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    dw = X.T @ (p - y) / N
    db = np.sum(p - y) / N
    return loss, dw, db
''', breaks=(T_STAB,), says="finite number"),
    Variant("loss as log(1 + exp(z)) - y z (overflows at z = 800)", cell=LOGISTIC,
            replace=(("np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z)))",
                      "np.log(1 + np.exp(z)) - y * z"),),
            breaks=(T_STAB,), says="loss for z = 800, -800, -800, 800: got inf"),
    Variant("z clipped to +-100 before the loss", cell=LOGISTIC,
            replace=(("    z = X @ w + b\n", "    z = np.clip(X @ w + b, -100, 100)\n"),),
            breaks=(T_STAB,), says="clipping z changes the loss"),
    Variant("p = exp(z) / (1 + exp(z)) (nan at z = 800)", cell=LOGISTIC,
            replace=(("    p = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))\n",
                      "    p = np.exp(z) / (1.0 + np.exp(z))\n"),),
            breaks=(T_STAB,), says="inf / inf = nan"),
    Variant("exception: np.dot(w, X)", cell=LOGISTIC,
            replace=(("z = X @ w + b", "z = np.dot(w, X) + b"),),
            breaks=(T_LOG, T_STAB), says="raised ValueError"),
    Variant("infinite loop over the samples", cell=LOGISTIC, source='''
def logistic_regression_gradients(X, y, w, b):
    N = X.shape[0]
    z = X @ w + b
    p = np.empty(N)
    i = 0
    while i < N:
        p[i] = 1.0 / (1.0 + np.exp(-z[i])) if z[i] >= 0 else np.exp(z[i]) / (1.0 + np.exp(z[i]))
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    return loss, X.T @ (p - y) / N, np.mean(p - y)
''', breaks=(T_LOG, T_STAB), says="did not finish"),
    Variant("wrong shape: dw as a column", cell=LOGISTIC,
            replace=(("dw = X.T @ (p - y) / N", "dw = X.T @ (p - y).reshape(-1, 1) / N"),),
            breaks=(T_LOG, T_STAB), says="shape"),
    Variant("np.logaddexp loss, sigmoid from exp(-logaddexp)", cell=LOGISTIC, source='''
def logistic_regression_gradients(X, y, w, b):
    z = X @ w + b
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    p = np.exp(-np.logaddexp(0.0, -z))
    error = p - y
    return loss, X.T @ error / len(y), error.mean()
'''),
    Variant("clipped probabilities", cell=LOGISTIC, source='''
def logistic_regression_gradients(X, y, w, b):
    z = np.clip(X @ w + b, -500, 500)
    p = np.clip(1 / (1 + np.exp(-z)), 1e-12, 1 - 1e-12)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return loss, X.T @ (p - y) / X.shape[0], np.mean(p - y)
''', breaks=(T_STAB,), says="clipping p"),
]
