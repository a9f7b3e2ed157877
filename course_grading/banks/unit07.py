"""Unit 07 (dropout and regularization): classic wrong answers, broken code and correct alternatives."""
from course_grading.banks import Variant

_FWD = "test_dropout_forward"
_BWD = "test_dropout_backward"
_L2 = "test_l2_penalty"
_L1 = "test_l1_penalty"
_ES = "test_EarlyStopping"

_DROPOUT_GLOBAL_RANDOM = '''
def dropout_forward(x, p, mode, rng):
    if mode == "train":
        mask = (np.random.rand(*x.shape) >= p) / (1.0 - p)
        return x * mask, (mask, mode)
    return x.copy(), (None, mode)
'''

_DROPOUT_OWN_GENERATOR = '''
def dropout_forward(x, p, mode, rng):
    if mode == "train":
        mask = (np.random.default_rng(0).random(x.shape) >= p) / (1.0 - p)
        return x * mask, (mask, mode)
    return x.copy(), (None, mode)
'''

_DROPOUT_ROW_MASK = '''
def dropout_forward(x, p, mode, rng):
    if mode == "train":
        keep = rng.random(x.shape[:1]) >= p
        mask = np.broadcast_to(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x.shape) / (1.0 - p)
        return x * mask, (mask, mode)
    return x.copy(), (None, mode)
'''

_DROPOUT_BINOMIAL = '''
def dropout_forward(x, p, mode, rng):
    if mode != "train":
        return x, (None, mode)
    mask = rng.binomial(1, 1.0 - p, size=x.shape).astype(float) / (1.0 - p)
    return x * mask, (mask, mode)
'''

_DROPOUT_BOOL_MASK_FWD = '''
def dropout_forward(x, p, mode, rng):
    """Cache: a boolean mask of kept entries and the keep probability."""
    if mode == "eval":
        return x, {"mode": "eval"}
    keep = rng.random(x.shape) < 1.0 - p
    return np.where(keep, x / (1.0 - p), 0.0), {"mode": "train", "keep": keep, "q": 1.0 - p}
'''

_DROPOUT_BOOL_MASK_BWD = '''
def dropout_backward(dout, cache):
    if cache["mode"] == "eval":
        return dout
    return np.where(cache["keep"], dout / cache["q"], 0.0)
'''

_DROPOUT_NEW_MASK_FWD = '''
def dropout_forward(x, p, mode, rng):
    if mode == "train":
        mask = (rng.random(x.shape) >= p) / (1.0 - p)
        return x * mask, (rng, p, mode)
    return x.copy(), (rng, p, mode)
'''

_DROPOUT_NEW_MASK_BWD = '''
def dropout_backward(dout, cache):
    rng, p, mode = cache
    if mode == "train":
        return dout * (rng.random(dout.shape) >= p) / (1.0 - p)
    return dout.copy()
'''

_L2_LOOP = '''
def l2_penalty(weights, lam):
    penalty, grads = 0.0, []
    for W in weights:
        penalty += 0.5 * lam * np.vdot(W, W)
        grads.append(lam * np.array(W, dtype=float))
    return penalty, grads
'''

_L1_WHERE = '''
def l1_penalty(weights, lam):
    penalty = lam * sum(np.abs(W).sum() for W in weights)
    grads = [np.where(W > 0, lam, np.where(W < 0, -lam, 0.0)) for W in weights]
    return penalty, grads
'''

_ES_HISTORY = '''
class EarlyStopping:
    """Keeps every loss it is given and recomputes the best epoch from the history."""

    def __init__(self, patience, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.history = []

    @property
    def best_epoch(self):
        best, best_epoch = np.inf, None
        for epoch, loss in enumerate(self.history):
            if loss < best - self.min_delta:
                best, best_epoch = loss, epoch
        return best_epoch

    def step(self, val_loss):
        self.history.append(val_loss)
        return len(self.history) - 1 - self.best_epoch >= self.patience
'''

_ES_SHARED_HISTORY = '''
class EarlyStopping:
    history = []

    def __init__(self, patience, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta

    @property
    def best_epoch(self):
        best, best_epoch = np.inf, None
        for epoch, loss in enumerate(self.history):
            if loss < best - self.min_delta:
                best, best_epoch = loss, epoch
        return best_epoch

    def step(self, val_loss):
        self.history.append(val_loss)
        return len(self.history) - 1 - self.best_epoch >= self.patience
'''

_ES_LOOP_FOREVER = '''
class EarlyStopping:
    def __init__(self, patience, min_delta=0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best_loss, self.best_epoch, self.epoch, self.waited = float("inf"), None, -1, 0

    def step(self, val_loss):
        self.epoch += 1
        while val_loss >= self.best_loss - self.min_delta:
            self.waited += 1
        self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        return False
'''

# A wrong forward x a backward (the backward cell redefines the forward, as a student's later cell can):
# the backward keeps its points when it scales the forward's kept entries by 1 / (1 - p), or reuses the
# forward's own scaled mask; an unscaled backward loses them whatever the forward did.
_DROPOUT_PAIR = '''
def dropout_forward(x, p, mode, rng):
    if mode != "train":
        return x.copy(), (None, mode, p)
    keep = rng.random(x.shape) >= p
    return x * keep{scale}, (keep{scale}, mode, p)


def dropout_backward(dout, cache):
    mask, mode, p = cache
    if mode != "train":
        return dout.copy()
    return dout * {dx}
'''
_PAIRS = [
    Variant("unscaled forward x backward scaling the kept entries by 1/(1-p)", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" * 1.0", dx="(mask != 0) / (1.0 - p)")),
    Variant("unscaled forward x unscaled backward", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" * 1.0", dx="mask"), breaks=(_BWD,), says="dout / (1 - p)"),
    Variant("unscaled forward x backward dividing by p", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" * 1.0", dx="mask / p"), breaks=(_BWD,),
            says="dout / (1 - p)"),
    Variant("forward scaled by 1/p x backward reusing its scaled mask", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" / p", dx="mask")),
    Variant("forward scaled by 1/p x backward scaling by 1/(1-p)", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" / p", dx="(mask != 0) / (1.0 - p)")),
    Variant("forward scaled by 1/p x unscaled backward", cell="dropout_backward",
            source=_DROPOUT_PAIR.format(scale=" / p", dx="(mask != 0)"), breaks=(_BWD,),
            says="dout / (1 - p)"),
]

VARIANTS = [
    # dropout_forward
    Variant("dropout scaled in eval", cell="dropout_forward",
            replace=(("out = x.copy()", "out = x * (1.0 - p)"),), breaks=(_FWD,), says="eval mode"),
    Variant("keep-probability used as drop-probability", cell="dropout_forward",
            replace=(("mask = (rng.random(x.shape) >= p) / (1.0 - p)",
                      "mask = (rng.random(x.shape) < p) / (1.0 - p)"),),
            breaks=(_FWD,), says="probability of DROPPING"),
    Variant("no inverted scaling", cell="dropout_forward",
            replace=(("mask = (rng.random(x.shape) >= p) / (1.0 - p)",
                      "mask = (rng.random(x.shape) >= p) * 1.0"),),
            breaks=(_FWD, _BWD), says="1 / (1 - p)"),
    Variant("scaling by p instead of 1-p", cell="dropout_forward",
            replace=(("/ (1.0 - p)", "/ p"),), breaks=(_FWD,), says="1 / (1 - p)"),
    Variant("mask from np.random instead of rng", cell="dropout_forward", source=_DROPOUT_GLOBAL_RANDOM,
            breaks=(_FWD,), says="rng argument"),
    Variant("mask from a fixed generator of its own", cell="dropout_forward", source=_DROPOUT_OWN_GENERATOR,
            breaks=(_FWD,), says="generator of your own"),
    Variant("one keep/drop draw per row", cell="dropout_forward", source=_DROPOUT_ROW_MASK,
            breaks=(_FWD,), says="independent"),
    # dropout_backward
    Variant("new mask in backward", cell="dropout_backward",
            source=_DROPOUT_NEW_MASK_FWD + _DROPOUT_NEW_MASK_BWD,
            breaks=(_BWD,), says="reuse the forward's mask"),
    Variant("backward without the 1/(1-p) scale", cell="dropout_backward",
            replace=(("return dout * mask", "return dout * (mask != 0)"),),
            breaks=(_BWD,), says="dout / (1 - p)"),
    Variant("backward masks in eval mode too", cell="dropout_backward",
            replace=(("return dout.copy()", "return dout * 0.5"),), breaks=(_BWD,), says="eval mode"),
    Variant("backward returns a flattened dx (wrong shape)", cell="dropout_backward",
            replace=(("return dout * mask", "return (dout * mask).ravel()"),), breaks=(_BWD,), says="shape"),
    # l2_penalty
    Variant("L2 without the 1/2", cell="l2_penalty",
            replace=(("lam / 2 * sum", "lam * sum"), ("lam * W for", "2 * lam * W for")), breaks=(_L2,),
            says="lam / 2"),
    Variant("L2 gradient without lam", cell="l2_penalty",
            replace=(("grads = [lam * W for W in weights]", "grads = [W.copy() for W in weights]"),),
            breaks=(_L2,), says="lam * W"),
    Variant("L2 penalty of the sum, not the squares", cell="l2_penalty",
            replace=(("np.sum(W ** 2)", "np.sum(W) ** 2"),), breaks=(_L2,), says="squares"),
    Variant("L2 shrinks the weights in place", cell="l2_penalty",
            replace=(("grads = [lam * W for W in weights]",
                      "grads = [np.multiply(W, lam, out=W) for W in weights]"),),
            breaks=(_L2,), says="weights"),
    Variant("exception: L2 over np.array(weights) raises on ragged shapes", cell="l2_penalty",
            replace=(("sum(float(np.sum(W ** 2)) for W in weights)", "np.sum(np.array(weights) ** 2)"),),
            breaks=(_L2,), says="raised"),
    # l1_penalty
    Variant("L1 gradient W itself", cell="l1_penalty",
            replace=(("lam * np.sign(W)", "lam * W"),), breaks=(_L1,), says="sign(W)"),
    Variant("L1 penalty without abs", cell="l1_penalty",
            replace=(("np.sum(np.abs(W))", "np.sum(W)"),), breaks=(_L1,), says="absolute values"),
    Variant("L1 gradient W / |W| (NaN at zero)", cell="l1_penalty",
            replace=(("lam * np.sign(W)", "lam * W / np.abs(W)"),), breaks=(_L1,), says="exactly 0"),
    Variant("L1 gradient without lam", cell="l1_penalty",
            replace=(("lam * np.sign(W)", "np.sign(W)"),), breaks=(_L1,), says="lam * sign(W)"),
    # EarlyStopping
    Variant("early stopping that never resets patience", cell="EarlyStopping",
            replace=(("            self.waited = 0\n", ""),), breaks=(_ES,), says="resets the count"),
    Variant("early stopping ignoring min_delta", cell="EarlyStopping",
            replace=(("val_loss < self.best_loss - self.min_delta", "val_loss < self.best_loss"),),
            breaks=(_ES,), says="min_delta"),
    Variant("best_epoch off by one", cell="EarlyStopping",
            replace=(("self.best_epoch = self.epoch\n", "self.best_epoch = self.epoch + 1\n"),),
            breaks=(_ES,), says="best_epoch"),
    Variant("equal loss counts as an improvement", cell="EarlyStopping",
            replace=(("val_loss < self.best_loss - self.min_delta",
                      "val_loss <= self.best_loss - self.min_delta"),),
            breaks=(_ES,), says="best_epoch"),
    Variant("stops one epoch late", cell="EarlyStopping",
            replace=(("return self.waited >= self.patience", "return self.waited > self.patience"),),
            breaks=(_ES,), says="patience"),
    Variant("step forgets to return", cell="EarlyStopping",
            replace=(("return self.waited >= self.patience", "self.stop = self.waited >= self.patience"),),
            breaks=(_ES,), says="None"),
    Variant("history shared by all instances", cell="EarlyStopping", source=_ES_SHARED_HISTORY,
            breaks=(_ES,), says="returned"),
    Variant("early stopping loops forever", cell="EarlyStopping", source=_ES_LOOP_FOREVER,
            breaks=(_ES,), says="did not finish"),
    # correct alternatives
    Variant("mask from rng.binomial, eval returns x itself", cell="dropout_forward",
            source=_DROPOUT_BINOMIAL),
    Variant("boolean mask from rng.random < 1-p, kept in a dict", cell="dropout_backward",
            source=_DROPOUT_BOOL_MASK_FWD + _DROPOUT_BOOL_MASK_BWD),
    Variant("L2 with a loop and np.vdot", cell="l2_penalty", source=_L2_LOOP),
    Variant("L1 sign with np.where", cell="l1_penalty", source=_L1_WHERE),
    Variant("EarlyStopping storing the loss history", cell="EarlyStopping", source=_ES_HISTORY),
] + _PAIRS
