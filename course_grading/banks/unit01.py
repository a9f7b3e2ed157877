"""Unit 01 (perceptron): classic wrong answers, broken code and correct alternatives."""
from course_grading.banks import Variant

PREDICT = ("test_perceptron_predict",)
TRAIN = ("test_perceptron_train",)
_INTEGER_X_DTYPE = "integer-valued X (dtype int64), epochs=0, lr=1.0: dtype int64, expected float64"

_TRAIN_VIA_WRONG_PREDICT = """
def perceptron_predict(X, w, b):
    return (X @ w + b >= 0).astype(int)


def perceptron_train(X, y, epochs=10, lr=1.0):
    X = np.asarray(X, dtype=float)
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        for i in range(len(X)):
            err = y[i] - perceptron_predict(X[i:i + 1], w, b)[0]
            w += lr * err * X[i]
            b += lr * err
    return w, b
"""

VARIANTS = [
    # ---- perceptron_predict: classic mistakes -------------------------------------------------
    Variant(">= instead of > in predict", cell="perceptron_predict",
            replace=(("scores > 0", "scores >= 0"),), breaks=PREDICT, says="exactly 0"),
    Variant("returns -1/+1 instead of 0/1", cell="perceptron_predict",
            replace=(("return (scores > 0).astype(int)", "return np.where(scores > 0, 1, -1)"),),
            breaks=PREDICT, says="-1"),
    Variant("returns a boolean array", cell="perceptron_predict",
            replace=(("return (scores > 0).astype(int)", "return scores > 0"),), breaks=PREDICT,
            says="dtype bool"),
    Variant("bias left out of the score", cell="perceptron_predict",
            replace=(("scores = X @ w + b", "scores = X @ w"),), breaks=PREDICT,
            says="The scores X_toy @ w_toy + b_toy are [1, -1, 0, 1]"),
    Variant("np.sign then astype: boundary and negatives wrong", cell="perceptron_predict",
            replace=(("return (scores > 0).astype(int)", "return np.sign(scores).astype(int)"),),
            breaks=PREDICT, says="got -1"),
    # ---- perceptron_predict: broken code ------------------------------------------------------
    Variant("wrong shape (n, 1)", cell="perceptron_predict",
            replace=(("scores = X @ w + b", "scores = X @ w.reshape(-1, 1) + b"),), breaks=PREDICT,
            says="shape (4, 1), expected (4,)"),
    # ---- perceptron_predict: correct alternatives ---------------------------------------------
    Variant("looped predict", cell="perceptron_predict", source='''
def perceptron_predict(X, w, b):
    labels = []
    for x in X:
        score = 0.0
        for xj, wj in zip(x, w):
            score += xj * wj
        labels.append(1 if score + b > 0 else 0)
    return np.array(labels, dtype=int)
'''),
    Variant("np.where predict", cell="perceptron_predict", source='''
def perceptron_predict(X, w, b):
    return np.where(np.dot(X, w) + b > 0, 1, 0)
'''),
    Variant("heaviside predict converted to int", cell="perceptron_predict", source='''
def perceptron_predict(X, w, b):
    return np.heaviside(np.asarray(X, dtype=float) @ np.asarray(w, dtype=float) + b, 0.0).astype(np.int64)
'''),

    # ---- perceptron_train: classic mistakes ---------------------------------------------------
    # a wrong perceptron_predict costs exercise 1 only: the train checks use their own copy of it
    Variant("train through perceptron_predict while a wrong (>=) predict is in scope",
            cell="perceptron_train",
            source=_TRAIN_VIA_WRONG_PREDICT),
    Variant(">= instead of > in training", cell="perceptron_train",
            replace=(("X[i] @ w + b > 0", "X[i] @ w + b >= 0"),), breaks=TRAIN,
            says="exactly 0, which is class 0"),
    Variant("bias not updated", cell="perceptron_train",
            replace=(("            b += lr * err\n", ""),), breaks=TRAIN,
            says="b after one sample labelled 1"),
    Variant("updates on every sample (adds lr*y_i*x_i)", cell="perceptron_train",
            replace=(("err = y[i] - yhat", "err = y[i]"),), breaks=TRAIN,
            says="change w and b only when the prediction is wrong"),
    Variant("w initialised randomly", cell="perceptron_train",
            replace=(("w = np.zeros(d)", "w = np.random.normal(scale=0.01, size=d)"),), breaks=TRAIN,
            says="w with epochs=0"),
    Variant("error sign flipped (yhat - y)", cell="perceptron_train",
            replace=(("err = y[i] - yhat", "err = yhat - y[i]"),), breaks=TRAIN, says="the error is +1"),
    Variant("samples shuffled", cell="perceptron_train",
            replace=(("for i in range(n):", "for i in np.random.permutation(n):"),), breaks=TRAIN,
            says="in the order given"),
    Variant("learning rate ignored", cell="perceptron_train",
            replace=(("w += lr * err * X[i]", "w += err * X[i]"), ("b += lr * err", "b += err")),
            breaks=TRAIN, says="lr scales every update"),
    Variant("batch update with the epoch-start weights", cell="perceptron_train",
            replace=(("""        for i in range(n):
            yhat = 1 if X[i] @ w + b > 0 else 0
            err = y[i] - yhat
            w += lr * err * X[i]
            b += lr * err
""", """        errs = y - (X @ w + b > 0).astype(int)
        w = w + lr * errs @ X
        b = b + lr * errs.sum()
"""),), breaks=TRAIN, says="updated by the samples before it"),
    Variant("only one epoch", cell="perceptron_train",
            replace=(("for _ in range(epochs):", "for _ in range(1):"),), breaks=TRAIN,
            says="no pass is made over the data"),
    Variant("w starts as integer zeros", cell="perceptron_train",
            replace=(("w = np.zeros(d)", "w = np.zeros(d, dtype=int)"),
                     ("w += lr * err * X[i]", "w = w + lr * err * X[i]")),
            breaks=TRAIN, says=_INTEGER_X_DTYPE),
    Variant("zeros_like of an integer X (casting error)", cell="perceptron_train",
            replace=(("X = np.asarray(X, dtype=float)\n", "X = np.asarray(X)\n"),
                     ("w = np.zeros(d)", "w = np.zeros_like(X[0])")),
            breaks=TRAIN, says=_INTEGER_X_DTYPE),
    Variant("zeros_like of the first row, updated by rebinding", cell="perceptron_train",
            replace=(("X = np.asarray(X, dtype=float)\n", "X = np.asarray(X)\n"),
                     ("w = np.zeros(d)", "w = np.zeros_like(X[0])"),
                     ("w += lr * err * X[i]", "w = w + lr * err * X[i]")),
            breaks=TRAIN, says="expected float64. Start from float zeros"),
    Variant("scales the caller's sample in place", cell="perceptron_train",
            replace=(("""            w += lr * err * X[i]
""", """            xi = X[i]
            xi *= lr * err
            w += xi
"""),), breaks=TRAIN, says="must not change its inputs"),
    Variant("bias as an array of shape (1,)", cell="perceptron_train",
            replace=(("b = 0.0", "b = np.zeros(1)"),), breaks=TRAIN, says="got an array of shape (1,)"),
    # ---- perceptron_train: broken code ---------------------------------------------------------
    Variant("exception: X.shape(1)", cell="perceptron_train",
            replace=(("w = np.zeros(d)", "w = np.zeros(X.shape(1))"),), breaks=TRAIN,
            says="raised TypeError"),
    Variant("infinite loop: epoch counter never incremented", cell="perceptron_train",
            replace=(("    for _ in range(epochs):\n", "    epoch = 0\n    while epoch < epochs:\n"),),
            breaks=TRAIN, says="did not finish"),
    Variant("NaN: heaviside with nan at zero", cell="perceptron_train",
            replace=(("yhat = 1 if X[i] @ w + b > 0 else 0", "yhat = np.heaviside(X[i] @ w + b, np.nan)"),),
            breaks=TRAIN, says="got nan"),
    # ---- perceptron_train: correct alternatives ------------------------------------------------
    Variant("train calling perceptron_predict per sample", cell="perceptron_train", source='''
def perceptron_train(X, y, epochs=10, lr=1.0):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        for xi, yi in zip(X, y):
            err = yi - perceptron_predict(xi[None, :], w, b)[0]
            if err != 0:
                w = w + lr * err * xi
                b = b + lr * err
    return w, b
'''),
    Variant("pure-Python lists converted at the end", cell="perceptron_train", source='''
def perceptron_train(X, y, epochs=10, lr=1.0):
    rows = [[float(v) for v in row] for row in X]
    w = [0.0] * len(rows[0]) if rows else [0.0] * X.shape[1]
    b = 0.0
    for _ in range(epochs):
        for row, target in zip(rows, y):
            score = sum(wj * xj for wj, xj in zip(w, row)) + b
            err = int(target) - (1 if score > 0 else 0)
            if err:
                w = [wj + lr * err * xj for wj, xj in zip(w, row)]
                b += lr * err
    return np.array(w), b
'''),
    Variant("bias kept as a 0-d array", cell="perceptron_train", source='''
def perceptron_train(X, y, epochs=10, lr=1.0):
    X = np.array(X, dtype=np.float64)
    w = np.zeros(X.shape[1], dtype=np.float64)
    b = np.array(0.0)
    for epoch in range(epochs):
        for i in range(len(X)):
            prediction = int(np.dot(w, X[i]) + b > 0)
            if prediction != y[i]:
                w = w + lr * (y[i] - prediction) * X[i]
                b = np.asarray(b + lr * (y[i] - prediction))
    return w, np.asarray(b)
'''),
]
