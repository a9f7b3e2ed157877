"""Plots that several notebooks draw."""
import matplotlib.pyplot as plt
import numpy as np


def decision_regions(predict, X, y, ax=None, title=None, resolution=200, margin=0.5):
    """Shade the plane by `predict(points)` and scatter the labelled data on top."""
    ax = ax or plt.gca()
    (x0, y0), (x1, y1) = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    zz = np.asarray(predict(np.c_[gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax.contourf(gx, gy, zz, alpha=0.25, cmap="coolwarm", levels=np.unique(y).size - 1 or 1)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", edgecolor="k", s=20)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if title:
        ax.set_title(title)
    return ax


def line_boundary(w, b, X, ax=None, **style):
    """Draw the line w[0]*x + w[1]*y + b = 0 across the range of X."""
    ax = ax or plt.gca()
    xs = np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 2)
    if abs(w[1]) > 1e-12:
        ax.plot(xs, -(w[0] * xs + b) / w[1], **style)
    elif abs(w[0]) > 1e-12:
        ax.axvline(-b / w[0], **style)
    return ax


def loss_curves(curves, ax=None, title="Loss", log=False, xlabel="epoch"):
    """Plot {label: sequence of losses} on one axis."""
    ax = ax or plt.gca()
    for label, values in curves.items():
        ax.plot(np.arange(len(values)), values, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    return ax


def contour_path(loss, path=None, ax=None, bounds=(-3, 3, -3, 3), levels=30, title=None):
    """Contours of a 2-parameter loss(w0, w1) with an optional optimisation path (k, 2) on top."""
    ax = ax or plt.gca()
    a, b, c, d = bounds
    g0, g1 = np.meshgrid(np.linspace(a, b, 120), np.linspace(c, d, 120))
    zz = np.vectorize(lambda u, v: loss(np.array([u, v])))(g0, g1)
    ax.contour(g0, g1, zz, levels=levels, cmap="viridis")
    if path is not None:
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "o-", ms=3, color="crimson")
    if title:
        ax.set_title(title)
    return ax
