"""Unit 06 (batch normalization): classic wrong answers, broken code and correct alternatives."""
from course_grading.banks import Variant

_TRAIN_STATS = '''        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)'''

_CREATED = '''    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(d)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(d)

    if bn_param["mode"] == "train":
'''
_CREATED_IN_TRAIN = '''    if bn_param["mode"] == "train":
        if "running_mean" not in bn_param:
            bn_param["running_mean"] = np.zeros(d)
        if "running_var" not in bn_param:
            bn_param["running_var"] = np.ones(d)
'''

_BACKWARD_GRAPH_WALK = '''
def batchnorm_backward(dout, cache):
    """Walk the computational graph backwards, one node at a time."""
    x, mu, var, eps, gamma, x_hat = cache
    n = dout.shape[0]
    xc = x - mu
    std = np.sqrt(var + eps)
    istd = 1.0 / std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma                          # y = gamma * x_hat + beta
    distd = (dx_hat * xc).sum(axis=0)              # x_hat = xc * istd
    dxc = dx_hat * istd
    dstd = -distd / std ** 2                       # istd = 1 / std
    dvar = dstd * 0.5 / std                        # std = sqrt(var + eps)
    dxc += dvar * 2.0 * xc / n                     # var = mean(xc ** 2)
    dmu = -dxc.sum(axis=0)                         # xc = x - mu
    dx = dxc + dmu / n                             # mu = mean(x)
    return dx, dgamma, dbeta
'''

_DICT_CACHE_PAIR = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.setdefault("eps", 1e-5)
    momentum = bn_param.setdefault("momentum", 0.1)
    n, d = x.shape
    bn_param.setdefault("running_mean", np.zeros(d))
    bn_param.setdefault("running_var", np.ones(d))
    if bn_param["mode"] == "train":
        mu = np.sum(x, axis=0) / n
        var = np.sum((x - mu) ** 2, axis=0) / n
        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}


def batchnorm_backward(dout, cache):
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dx, dgamma, dbeta
'''

_LOOPED_BACKWARD = '''
def batchnorm_backward(dout, cache):
    x, mu, var, eps, gamma, x_hat = cache
    n, d = dout.shape
    dx, dgamma, dbeta = np.zeros((n, d)), np.zeros(d), np.zeros(d)
    for j in range(d):
        g = dout[:, j] * gamma[j]
        for i in range(n):
            dx[i, j] = (n * g[i] - g.sum() - x_hat[i, j] * (g * x_hat[:, j]).sum()) / (n * np.sqrt(var[j] + eps))
        dgamma[j] = np.dot(dout[:, j], x_hat[:, j])
        dbeta[j] = dout[:, j].sum()
    return dx, dgamma, dbeta
'''

_GLOBAL_CACHE = '''
_last = {}


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    n, d = x.shape
    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(d)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(d)
    if bn_param["mode"] == "train":
        mu, var = x.mean(axis=0), x.var(axis=0)
        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    x_hat = (x - mu) / np.sqrt(var + eps)
    _last.update(x_hat=x_hat, std=np.sqrt(var + eps), gamma=gamma)
    return gamma * x_hat + beta, None


def batchnorm_backward(dout, cache):
    x_hat, std, gamma = _last["x_hat"], _last["std"], _last["gamma"]   # ignores its cache
    n = dout.shape[0]
    g = dout * gamma
    dx = (n * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / (n * std)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
'''

_REBUILT_WITH_RUNNING = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    n, d = x.shape
    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(d)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(d)
    if bn_param["mode"] == "train":
        mu, var = x.mean(axis=0), x.var(axis=0)
        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    out = gamma * (x - mu) / np.sqrt(var + eps) + beta
    return out, (x, gamma, beta, bn_param)


def batchnorm_backward(dout, cache):
    x, gamma, beta, bn_param = cache
    # rebuild what is needed from bn_param: its running statistics, not this batch's
    eps = bn_param.get("eps", 1e-5)
    std = np.sqrt(bn_param["running_var"] + eps)
    x_hat = (x - bn_param["running_mean"]) / std
    n = dout.shape[0]
    g = dout * gamma
    dx = (n * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / (n * std)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
'''

_INFINITE_LOOP = '''
def batchnorm_backward(dout, cache):
    x, mu, var, eps, gamma, x_hat = cache
    n = dout.shape[0]
    g = dout * gamma
    dx = np.zeros_like(dout)
    i = 0
    while i < n:                      # i is never increased
        dx[i] = (n * g[i] - g.sum(axis=0) - x_hat[i] * (g * x_hat).sum(axis=0)) / (n * np.sqrt(var + eps))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
'''

_UNBIASED_FORWARD = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    """Normalises with the unbiased variance (N - 1): wrong, and graded in the forward's cells."""
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    d = x.shape[1]
    bn_param.setdefault("running_mean", np.zeros(d))
    bn_param.setdefault("running_var", np.ones(d))
    if bn_param["mode"] == "train":
        mu, var = x.mean(axis=0), x.var(axis=0, ddof=1)
        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x, mu, var, eps, gamma, x_hat)
'''

# A wrong forward must not make any backward right: the backward cell redefines the forward (as a
# student's later cell can), so the backward check sees the N - 1 forward and only it loses points.
_UNBIASED_PAIR = _UNBIASED_FORWARD + '''

def batchnorm_backward(dout, cache):
    x, mu, var, eps, gamma, x_hat = cache
    n = dout.shape[0]
    g = dout * gamma
    dx = {dx}
    return dx, {dgamma}, dout.sum(axis=0)
'''
_TEXTBOOK_DX = "(n * g - g.sum(axis=0) - x_hat * (g * x_hat).sum(axis=0)) / (n * np.sqrt(var + eps))"

# Any wrong forward x any backward: a right backward keeps the backward cell wherever the cache holds the
# true intermediate values (or its formula runs on the forward's own x_hat); a wrong one loses it.
_WRONG_FORWARD = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    n, d = x.shape
    bn_param.setdefault("running_mean", np.zeros(d))
    bn_param.setdefault("running_var", np.ones(d))
    if bn_param["mode"] == "train":
        mu, var = x.mean(axis=0), x.var(axis=0)
        bn_param["running_mean"] = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        bn_param["running_var"] = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    x_hat = {x_hat}
    return {out}, (x, mu, var, eps, gamma, x_hat)


def batchnorm_backward(dout, cache):
    x, mu, var, eps, gamma, x_hat = cache
    n = dout.shape[0]
    g = dout * gamma
    dx = {dx}
    return dx, {dgamma}, dout.sum(axis=0)
'''
_CENTRED = "(x - mu) / np.sqrt(var + eps)"
_WRONG_FORWARDS = {"gamma and beta swapped": (_CENTRED, "beta * x_hat + gamma"),
                   "no gamma (x_hat + beta)": (_CENTRED, "x_hat + beta"),
                   "no beta (gamma * x_hat)": (_CENTRED, "gamma * x_hat"),
                   "mean not subtracted": ("x / np.sqrt(var + eps)", "gamma * x_hat + beta")}
_BACKWARDS = {"right backward": (_TEXTBOOK_DX, "(dout * x_hat).sum(axis=0)"),
              "dgamma = 0": (_TEXTBOOK_DX, "np.zeros_like(gamma)"),
              "dgamma from x": (_TEXTBOOK_DX, "(dout * x).sum(axis=0)"),
              "dx without the variance path": ("(g - g.mean(axis=0)) / np.sqrt(var + eps)",
                                               "(dout * x_hat).sum(axis=0)")}
_PAIRS = [Variant(f"forward {forward} x {backward}", cell="batchnorm_backward",
                  source=_WRONG_FORWARD.format(x_hat=x_hat, out=out, dx=dx, dgamma=dgamma),
                  breaks=() if backward == "right backward" else ("test_batchnorm_backward",),
                  says="" if backward == "right backward" else "They match none")
          for forward, (x_hat, out) in _WRONG_FORWARDS.items()
          for backward, (dx, dgamma) in _BACKWARDS.items()]

_F = "batchnorm_forward"
_B = "batchnorm_backward"
_T_FWD, _T_RUN, _T_EVAL, _T_BWD = ("test_batchnorm_forward", "test_batchnorm_running_stats",
                                   "test_batchnorm_eval", "test_batchnorm_backward")

VARIANTS = [
    # ---- forward, training-mode output -------------------------------------------------------
    Variant("unbiased variance used to normalise", cell=_F,
            replace=(("var = x.var(axis=0)\n", "var = x.var(axis=0, ddof=1)\n"),
                     ("momentum * var * n / (n - 1)", "momentum * var")),
            breaks=(_T_FWD,), says="biased variance"),
    Variant("eps outside the square root", cell=_F,
            replace=(("std = np.sqrt(var + eps)", "std = np.sqrt(var) + eps"),),
            breaks=(_T_FWD,), says="eps inside the square root"),
    Variant("eps ignored (hard-coded 1e-5)", cell=_F,
            replace=(('eps = bn_param.get("eps", 1e-5)', "eps = 1e-5"),),
            breaks=(_T_FWD, _T_EVAL), says="eps"),
    Variant("gamma and beta swapped", cell=_F,
            replace=(("out = gamma * x_hat + beta", "out = beta * x_hat + gamma"),),
            breaks=(_T_FWD, _T_EVAL), says="gamma * x_hat + beta"),
    # ---- forward, running statistics ---------------------------------------------------------
    Variant("momentum the wrong way round (0.9 on the new batch)", cell=_F,
            replace=((_TRAIN_STATS, _TRAIN_STATS.replace("(1 - momentum) *", "@@").replace(
                "+ momentum *", "+ (1 - momentum) *").replace("@@", "momentum *")),),
            breaks=(_T_RUN,), says="weight of the new batch"),
    Variant("biased variance in the running estimate", cell=_F,
            replace=(("momentum * var * n / (n - 1)", "momentum * var"),),
            breaks=(_T_RUN,), says="UNBIASED"),
    Variant("running statistics replaced instead of averaged", cell=_F,
            replace=((_TRAIN_STATS, '''        bn_param["running_mean"] = mu
        bn_param["running_var"] = var * n / (n - 1)'''),),
            breaks=(_T_RUN,), says="(1 - momentum) * previous"),
    Variant("momentum ignored (hard-coded 0.1)", cell=_F,
            replace=(('momentum = bn_param.get("momentum", 0.1)', "momentum = 0.1"),),
            breaks=(_T_RUN,), says="momentum"),
    Variant("bn_param not updated in place (a new dict)", cell=_F,
            replace=(('    eps = bn_param.get("eps", 1e-5)\n',
                      '    bn_param = dict(bn_param)\n    eps = bn_param.get("eps", 1e-5)\n'),),
            breaks=(_T_RUN, _T_EVAL), says="not in a copy"),
    Variant("running statistics never stored back", cell=_F,
            replace=((_TRAIN_STATS, '''        running_mean = (1 - momentum) * bn_param["running_mean"] + momentum * mu
        running_var = (1 - momentum) * bn_param["running_var"] + momentum * var * n / (n - 1)'''),),
            breaks=(_T_RUN,), says="running_mean"),
    Variant("running mean of shape (1, D) (keepdims)", cell=_F,
            replace=(("mu = x.mean(axis=0)", "mu = x.mean(axis=0, keepdims=True)"),),
            breaks=(_T_RUN,), says="shape (1,"),
    # ---- forward, evaluation mode ------------------------------------------------------------
    Variant("running statistics updated in eval mode", cell=_F,
            replace=(('''        x_hat = (x - mu) / np.sqrt(var + eps)
    else:''', '''        x_hat = (x - mu) / np.sqrt(var + eps)
        bn_param["running_mean"] = (1 - momentum) * mu + momentum * x.mean(axis=0)
        bn_param["running_var"] = (1 - momentum) * var + momentum * x.var(axis=0)
    else:'''),),
            breaks=(_T_EVAL,), says="exactly as they were"),
    Variant("eval mode uses the batch statistics", cell=_F,
            replace=(('        mu, var = bn_param["running_mean"], bn_param["running_var"]\n',
                      '        mu, var = x.mean(axis=0), x.var(axis=0)\n'),),
            breaks=(_T_EVAL,), says="not with the batch statistics"),
    Variant("running statistics created in train mode only (KeyError in eval)", cell=_F,
            replace=((_CREATED, _CREATED_IN_TRAIN),),
            breaks=(_T_EVAL,), says="KeyError"),
    Variant("absent running statistics used but not stored in eval mode", cell=_F,
            replace=((_CREATED, _CREATED_IN_TRAIN),
                     ('        mu, var = bn_param["running_mean"], bn_param["running_var"]\n',
                      '        mu = bn_param.get("running_mean", np.zeros(d))\n'
                      '        var = bn_param.get("running_var", np.ones(d))\n')),
            breaks=(_T_EVAL,), says="store it in the dictionary"),
    # ---- backward ----------------------------------------------------------------------------
    Variant("dgamma not summed over the batch", cell=_B,
            replace=(("dgamma = (dout * x_hat).sum(axis=0)", "dgamma = dout * x_hat"),),
            breaks=(_T_BWD,), says="summed over the batch"),
    Variant("dbeta averaged instead of summed", cell=_B,
            replace=(("dbeta = dout.sum(axis=0)", "dbeta = dout.mean(axis=0)"),),
            breaks=(_T_BWD,), says="dbeta"),
    Variant("dx missing the mean and variance terms", cell=_B,
            replace=(("dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) "
                      "/ (n * np.sqrt(var + eps))", "dx = dx_hat / np.sqrt(var + eps)"),),
            breaks=(_T_BWD,), says="three paths"),
    Variant("dx missing the variance term", cell=_B,
            replace=(("dx = (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0)) "
                      "/ (n * np.sqrt(var + eps))", "dx = (n * dx_hat - dx_hat.sum(axis=0)) / (n * np.sqrt(var + eps))"),),
            breaks=(_T_BWD,), says="variance"),
    Variant("dx without gamma", cell=_B,
            replace=(("dx_hat = dout * gamma", "dx_hat = dout"),),
            breaks=(_T_BWD,), says="dx"),
    Variant("backward from a rebuilt cache (running statistics)", cell=_B,
            source=_REBUILT_WITH_RUNNING, breaks=(_T_BWD,), says="this batch's statistics"),
    Variant("backward ignores its cache (a global from the last forward)", cell=_B,
            source=_GLOBAL_CACHE, breaks=(_T_BWD,), says="use the cache you are given"),
    Variant("N - 1 forward, backward without the variance path", cell=_B,
            source=_UNBIASED_PAIR.format(dx="(g - g.mean(axis=0)) / np.sqrt(var + eps)",
                                         dgamma="(dout * x_hat).sum(axis=0)"),
            breaks=(_T_BWD,), says="your own x_hat"),
    Variant("N - 1 forward, dgamma from x instead of x_hat", cell=_B,
            source=_UNBIASED_PAIR.format(dx=_TEXTBOOK_DX, dgamma="(dout * x).sum(axis=0)"),
            breaks=(_T_BWD,), says="your own x_hat"),
    # ---- broken code -------------------------------------------------------------------------
    Variant("exception: cache unpacked into the wrong number of names", cell=_B,
            replace=(("x, mu, var, eps, gamma, x_hat = cache", "x, x_hat, gamma = cache"),),
            breaks=(_T_BWD,), says="ValueError"),
    Variant("infinite loop in backward", cell=_B, source=_INFINITE_LOOP, breaks=(_T_BWD,),
            says="did not finish"),
    Variant("NaN: backward without eps (constant feature)", cell=_B,
            replace=(("/ (n * np.sqrt(var + eps))", "/ (n * np.sqrt(var))"),),
            breaks=(_T_BWD,), says="nan"),
    Variant("wrong shape: dx transposed", cell=_B,
            replace=(("    return dx, dgamma, dbeta", "    return dx.T, dgamma, dbeta"),),
            breaks=(_T_BWD,), says="shape"),
    # ---- correct alternatives ----------------------------------------------------------------
    Variant("graph-walk backward", cell=_B, source=_BACKWARD_GRAPH_WALK),
    Variant("simplified backward in a loop", cell=_B, source=_LOOPED_BACKWARD),
    Variant("cache as a dict, with its own forward", cell=_B, source=_DICT_CACHE_PAIR),
    Variant("N - 1 forward with the textbook backward (the forward's cells pay)", cell=_B,
            source=_UNBIASED_PAIR.format(dx=_TEXTBOOK_DX, dgamma="(dout * x_hat).sum(axis=0)")),
    Variant("running statistics updated in place with *= and +=", cell=_F,
            replace=((_TRAIN_STATS, '''        bn_param["running_mean"] *= 1 - momentum
        bn_param["running_mean"] += momentum * mu
        bn_param["running_var"] *= 1 - momentum
        bn_param["running_var"] += momentum * x.var(axis=0, ddof=1)'''),)),
    Variant("forward with setdefault and sums", cell=_F, source=_DICT_CACHE_PAIR.split("\n\ndef batchnorm_backward")[0]
            .replace('{"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma}', "(x, mu, var, eps, gamma, x_hat)")),
] + _PAIRS
