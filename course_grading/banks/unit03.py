"""Unit 03 (backprop by hand): classic wrong answers, broken code and correct alternatives."""
from course_grading.banks import Variant

_SIGMOID_CACHE_X_BUG = '''
def sigmoid_forward(x):
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return out, x


def sigmoid_backward(dout, cache):
    x = cache
    return dout * x * (1.0 - x)
'''

_SIGMOID_CACHE_X_ALT = '''
def sigmoid_forward(x):
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return out, x


def sigmoid_backward(dout, cache):
    x = cache
    s, _ = sigmoid_forward(x)
    return dout * s * (1.0 - s)
'''

_SIGMOID_EXP_FORMULA_NAN = '''
def sigmoid_forward(x):
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return out, x


def sigmoid_backward(dout, cache):
    x = cache
    return dout * np.exp(-x) / (1.0 + np.exp(-x)) ** 2
'''

_TANH_CACHE_X_BUG = '''
def tanh_forward(x):
    return np.tanh(x), x


def tanh_backward(dout, cache):
    x = cache
    return dout * (1.0 - x ** 2)
'''

_TANH_CACHE_X_ALT = '''
def tanh_forward(x):
    return np.tanh(x), {"input": x}


def tanh_backward(dout, cache):
    return dout / np.cosh(np.clip(cache["input"], -300, 300)) ** 2
'''

# a wrong forward (e^x / (1 + e^x): nan at x = +1000, cached as the output) beside a backward: the right
# backward keeps its points, a wrong one loses them (each exercise is judged on its own)
_SIGMOID_NAN_FORWARD = '''
def sigmoid_forward(x):
    out = np.exp(x) / (1.0 + np.exp(x))
    return out, out
'''

# a forward without the bias (its cache holds the true x and W) beside a backward
_LINEAR_NO_BIAS_FORWARD = '''
def linear_forward(x, W, b):
    return x @ W, (x, W)
'''

_RELU_IN_PLACE_FORWARD = '''
def relu_forward(x):
    x[x < 0] = 0.0
    return x, x
'''

_LINEAR_BACKWARD_LOOPED = '''
def linear_backward(dout, cache):
    x, W = cache
    n, d_in = x.shape
    d_out = W.shape[1]
    dx, dW, db = np.zeros((n, d_in)), np.zeros((d_in, d_out)), np.zeros(d_out)
    for i in range(n):
        for j in range(d_out):
            dx[i] += dout[i, j] * W[:, j]
            dW[:, j] += x[i] * dout[i, j]
            db[j] += dout[i, j]
    return dx, dW, db
'''

_NUMGRAD_FORWARD = '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros(x.shape)
    base = f(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        grad[index] = (f(x) - base) / h
        x[index] = old
    return grad
'''

_NUMGRAD_COPIES = '''
def numerical_gradient(f, x, h=1e-5):
    flat = np.asarray(x, dtype=float).ravel()
    grad = np.empty(flat.size)
    for k in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[k] += h
        down[k] -= h
        grad[k] = (f(up.reshape(x.shape)) - f(down.reshape(x.shape))) / (2 * h)
    return grad.reshape(x.shape)
'''

_NUMGRAD_LOOP_FOREVER = '''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros(x.shape)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    i = 0
    while i < flat_x.size:
        old = flat_x[i]
        flat_x[i] = old + h
        f_plus = f(x)
        flat_x[i] = old - h
        f_minus = f(x)
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad
'''

_MLP_THREE_LAYERS = '''
def mlp_loss_and_grads(params, X, y):
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    z1 = X @ W1 + b1
    h1 = np.maximum(z1, 0)
    z2 = h1 @ W2 + b2
    h2 = np.maximum(z2, 0)
    pred = h2 @ W3 + b3
    diff = pred - y
    loss = np.mean(diff ** 2)
    d3 = 2 * diff / diff.size
    d2 = (d3 @ W3.T) * (z2 > 0)
    d1 = (d2 @ W2.T) * (z1 > 0)
    grads = {"W3": h2.T @ d3, "b3": d3.sum(0), "W2": h1.T @ d2, "b2": d2.sum(0),
             "W1": X.T @ d1, "b1": d1.sum(0)}
    return loss, grads
'''

_MLP_WITH_LAYERS = '''
def mlp_loss_and_grads(params, X, y):
    depth = len(params) // 2
    caches, h = [], X
    for layer in range(1, depth + 1):
        h, linear_cache = linear_forward(h, params[f"W{layer}"], params[f"b{layer}"])
        relu_cache = None
        if layer < depth:
            h, relu_cache = relu_forward(h)
        caches.append((linear_cache, relu_cache))
    loss, d = mse_loss(h, y)
    grads = {}
    for layer in range(depth, 0, -1):
        linear_cache, relu_cache = caches[layer - 1]
        if relu_cache is not None:
            d = relu_backward(d, relu_cache)
        d, grads[f"W{layer}"], grads[f"b{layer}"] = linear_backward(d, linear_cache)
    return loss, grads
'''

_WRONG_LINEAR_BACKWARD = """

def linear_backward(dout, cache):
    x, W = cache
    return dout @ W.T, x.T @ dout, dout[0]
"""

_WRONG_RELU_BACKWARD = """

def relu_backward(dout, cache):
    return dout.copy()
"""

_BACKWARD_BODY = '''        topo, visited = [], set()

        def build(node):
            if node not in visited:
                visited.add(node)
                for child in node._prev:
                    build(child)
                topo.append(node)
        build(self)
        for node in topo:
            if node._prev:              # intermediate results start from zero on every call
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(topo):
            node._backward()
'''

_BACKWARD_BFS = '''        from collections import deque
        seen, order, queue = {self}, [], deque([self])
        while queue:
            node = queue.popleft()
            order.append(node)
            for child in node._prev:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0
        for node in order:
            node._backward()
'''

_BACKWARD_NAIVE_RECURSION = '''        self.grad = 1.0

        def go(node):
            node._backward()
            for child in node._prev:
                go(child)
        go(self)
'''

_BACKWARD_STACK = '''        topo, visited, stack = [], set(), [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                topo.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
        for node in topo:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(topo):
            node._backward()
'''

VARIANTS = [
    # ---- linear layer ----------------------------------------------------------------------
    Variant("linear: bias not added", cell="linear_forward",
            replace=(("out = x @ W + b", "out = x @ W"),),
            breaks=("test_linear_forward",), says="out of linear_forward"),
    Variant("linear: dx without the transpose (dout @ W)", cell="linear_backward",
            replace=(("dx = dout @ W.T", "dx = dout @ W"),),
            breaks=("test_linear_backward",), says="matmul"),
    Variant("linear: dW transposed (dout.T @ x)", cell="linear_backward",
            replace=(("dW = x.T @ dout", "dW = dout.T @ x"),),
            breaks=("test_linear_backward",), says="dW"),
    Variant("linear: db from the first sample only", cell="linear_backward",
            replace=(("db = dout.sum(axis=0)", "db = dout[0]"),),
            breaks=("test_linear_backward",), says="db"),
    Variant("linear: db averaged over the batch", cell="linear_backward",
            replace=(("db = dout.sum(axis=0)", "db = dout.mean(axis=0)"),),
            breaks=("test_linear_backward",), says="db"),
    Variant("wrong shape: db keeps the batch axis (keepdims)", cell="linear_backward",
            replace=(("db = dout.sum(axis=0)", "db = dout.sum(axis=0, keepdims=True)"),),
            breaks=("test_linear_backward",), says="shape (1, 2), expected (2,)"),
    Variant("linear_backward with explicit loops", cell="linear_backward", source=_LINEAR_BACKWARD_LOOPED),
    Variant("linear forward without the bias, right backward", cell="linear_backward",
            source=_LINEAR_NO_BIAS_FORWARD + _LINEAR_BACKWARD_LOOPED),
    Variant("linear forward without the bias, db from the first sample only", cell="linear_backward",
            source=_LINEAR_NO_BIAS_FORWARD + _LINEAR_BACKWARD_LOOPED.replace("db[j] += dout[i, j]",
                                                                              "db[j] = dout[0, j]"),
            breaks=("test_linear_backward",), says="db"),
    # ---- activations -----------------------------------------------------------------------
    Variant("wrong shape: relu with np.max (a reduction) instead of np.maximum", cell="relu_forward",
            replace=(("np.maximum(x, 0.0)", "np.max(x, 0)"),),
            breaks=("test_relu_forward",), says="shape (3,), expected (2, 3)"),
    Variant("relu forward in place (x[x < 0] = 0)", cell="relu_forward", source=_RELU_IN_PLACE_FORWARD,
            breaks=("test_relu_forward",), says="relu_forward changed its input"),
    Variant("relu in-place forward beside a right backward", cell="relu_backward",
            source=_RELU_IN_PLACE_FORWARD + '''

def relu_backward(dout, cache):
    return dout * (cache > 0)
'''),
    Variant("relu backward in place (dout[x <= 0] = 0)", cell="relu_backward", source='''
def relu_backward(dout, cache):
    dout[cache <= 0] = 0.0
    return dout
''', breaks=("test_relu_backward",), says="do not write into dout or the cache"),
    Variant("relu: mask inverted (x < 0)", cell="relu_backward",
            replace=(("dout * (x > 0)", "dout * (x < 0)"),),
            breaks=("test_relu_backward",), says="dx of relu_backward"),
    Variant("relu: mask taken from dout instead of the input", cell="relu_backward",
            replace=(("dout * (x > 0)", "dout * (dout > 0)"),),
            breaks=("test_relu_backward",), says="dx of relu_backward"),
    Variant("sigmoid: textbook 1/(1+exp(-x)) overflows at -1000", cell="sigmoid_forward",
            replace=(("out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
                      "out = 1.0 / (1.0 + np.exp(-x))"),),
            breaks=("test_sigmoid_forward",), says="overflow"),
    Variant("sigmoid: np.where over both textbook formulas (both branches evaluated)",
            cell="sigmoid_forward",
            replace=(("out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
                      "out = np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))"),),
            breaks=("test_sigmoid_forward",), says="overflow"),
    Variant("sigmoid via tanh: (1 + tanh(x/2)) / 2", cell="sigmoid_forward",
            replace=(("out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
                      "out = 0.5 * (1.0 + np.tanh(0.5 * x))"),)),
    Variant("sigmoid with boolean masks for the two halves", cell="sigmoid_forward",
            replace=(("out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
                      "out = np.empty_like(x, dtype=float)\n"
                      "    pos = x >= 0\n"
                      "    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))\n"
                      "    e = np.exp(x[~pos])\n"
                      "    out[~pos] = e / (1.0 + e)"),)),
    Variant("sigmoid: derivative s(1-s) applied to the cached input", cell="sigmoid_backward",
            source=_SIGMOID_CACHE_X_BUG, breaks=("test_sigmoid_backward",), says="dx of sigmoid_backward"),
    Variant("NaN: sigmoid derivative as exp(-x)/(1+exp(-x))**2 (nan at -1000)", cell="sigmoid_backward",
            source=_SIGMOID_EXP_FORMULA_NAN, breaks=("test_sigmoid_backward",), says="contains nan"),
    Variant("sigmoid forward with nan at +1000, right backward", cell="sigmoid_backward",
            source=_SIGMOID_NAN_FORWARD + '''

def sigmoid_backward(dout, cache):
    return dout * cache * (1.0 - cache)
'''),
    Variant("sigmoid forward with nan at +1000, backward without (1 - s)", cell="sigmoid_backward",
            source=_SIGMOID_NAN_FORWARD + '''

def sigmoid_backward(dout, cache):
    return dout * cache
''', breaks=("test_sigmoid_backward",), says="dx of sigmoid_backward"),
    Variant("sigmoid caching the input, backward recomputes s", cell="sigmoid_backward",
            source=_SIGMOID_CACHE_X_ALT),
    Variant("exception: math.tanh on an array", cell="tanh_forward",
            replace=(("out = np.tanh(x)", "out = math.tanh(x)"),),
            breaks=("test_tanh_forward", "test_tanh_backward"), says="raised TypeError"),
    Variant("tanh: derivative 1 - x**2 from the cached input", cell="tanh_backward",
            source=_TANH_CACHE_X_BUG, breaks=("test_tanh_backward",), says="dx of tanh_backward"),
    Variant("tanh caching a dict with the input, backward via 1/cosh^2", cell="tanh_backward",
            source=_TANH_CACHE_X_ALT),
    # ---- losses ----------------------------------------------------------------------------
    Variant("mse: mean over the batch only", cell="mse_loss",
            replace=(("np.mean(diff ** 2)", "np.sum(diff ** 2) / diff.shape[0]"),
                     ("diff.size", "diff.shape[0]")),
            breaks=("test_mse_loss",), says="loss of mse_loss"),
    Variant("mse: gradient without the factor 2", cell="mse_loss",
            replace=(("dpred = 2.0 * diff / diff.size", "dpred = diff / diff.size"),),
            breaks=("test_mse_loss",), says="dpred of mse_loss"),
    Variant("mse written as (y - pred) with the sign carried through", cell="mse_loss",
            replace=(("diff = pred - y", "diff = y - pred"),
                     ("dpred = 2.0 * diff / diff.size", "dpred = -2.0 * diff / np.size(pred)"))),
    Variant("softmax: no max shift (overflow at 1000)", cell="softmax_cross_entropy",
            replace=(("shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits"),),
            breaks=("test_softmax_cross_entropy",), says="±1000"),
    Variant("softmax: log of probabilities that underflowed to 0", cell="softmax_cross_entropy",
            replace=(("log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                      "probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)\n"
                      "    log_probs = np.log(probs)"),),
            breaks=("test_softmax_cross_entropy",), says="±1000"),
    Variant("softmax: gradient not divided by the batch size", cell="softmax_cross_entropy",
            replace=(("    dlogits /= n\n", ""),),
            breaks=("test_softmax_cross_entropy",), says="dlogits"),
    Variant("softmax: log-sum-exp with np.logaddexp.reduce", cell="softmax_cross_entropy",
            replace=(("log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))",
                      "log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)"),)),
    # ---- numerical gradient ----------------------------------------------------------------
    Variant("numerical gradient: forward differences", cell="numerical_gradient", source=_NUMGRAD_FORWARD,
            breaks=("test_numerical_gradient",), says="centred"),
    Variant("numerical gradient: x left changed", cell="numerical_gradient",
            replace=(("        x[index] = old\n", ""),),
            breaks=("test_numerical_gradient",), says="restored"),
    Variant("numerical gradient: divided by h instead of 2h", cell="numerical_gradient",
            replace=(("(2 * h)", "h"),),
            breaks=("test_numerical_gradient",), says="2h"),
    Variant("infinite loop: numerical gradient never advances its index", cell="numerical_gradient",
            source=_NUMGRAD_LOOP_FOREVER, breaks=("test_numerical_gradient",), says="did not finish"),
    Variant("numerical gradient on perturbed copies", cell="numerical_gradient", source=_NUMGRAD_COPIES),
    # ---- MLP -------------------------------------------------------------------------------
    Variant("mlp: hidden ReLU mask missing in the backward pass", cell="mlp_loss_and_grads",
            replace=(("            d = d * (pre_activations[layer - 1] > 0)\n", "            pass\n"),),
            breaks=("test_mlp_loss_and_grads",), says="grads['W1']"),
    Variant("mlp: ReLU after the output layer too", cell="mlp_loss_and_grads",
            replace=(("h = np.maximum(z, 0.0) if layer < n_layers else z", "h = np.maximum(z, 0.0)"),
                     ("        if layer < n_layers:\n            d = d",
                      "        if True:\n            d = d")),
            breaks=("test_mlp_loss_and_grads",), says="some of these five outputs are negative"),
    Variant("mlp: written for exactly three layers", cell="mlp_loss_and_grads", source=_MLP_THREE_LAYERS,
            breaks=("test_mlp_loss_and_grads",), says="1 layer"),
    Variant("mlp built from the layer functions", cell="mlp_loss_and_grads", source=_MLP_WITH_LAYERS),
    # a wrong helper costs its own exercise only: the mlp checks put correct layer functions in its place
    Variant("mlp from the layer functions while linear_backward forgets to sum db", cell="mlp_loss_and_grads",
            source=_MLP_WITH_LAYERS + _WRONG_LINEAR_BACKWARD),
    Variant("mlp from the layer functions while relu_backward keeps the gradient everywhere",
            cell="mlp_loss_and_grads", source=_MLP_WITH_LAYERS + _WRONG_RELU_BACKWARD),
    # ---- Value -----------------------------------------------------------------------------
    Variant("Value: gradients overwritten (=) instead of accumulated (+=)", cell="Value",
            replace=(("self.grad += other.data * out.grad", "self.grad = other.data * out.grad"),
                     ("other.grad += self.data * out.grad", "other.grad = self.data * out.grad")),
            breaks=("test_Value", "test_Value_backward"), says="grad after"),
    Variant("Value: __rsub__ with the wrong sign", cell="Value",
            replace=(("return other + (-self)", "return self + (-other)"),),
            breaks=("test_Value",), says="__rsub__"),
    Variant("Value: __pow__ derivative k * x**k", cell="Value",
            replace=(("exponent * self.data ** (exponent - 1)", "exponent * self.data ** exponent"),),
            breaks=("test_Value",), says="a.grad after out.backward()"),
    Variant("Value: tanh derivative from the input", cell="Value",
            replace=(("(1.0 - out.data ** 2) * out.grad", "(1.0 - self.data ** 2) * out.grad"),),
            breaks=("test_Value", "test_Value_backward"), says="x.grad"),
    Variant("Value: backward does not seed the output gradient with 1", cell="Value",
            replace=(("        self.grad += 1.0\n", ""),),
            breaks=("test_Value", "test_Value_backward"), says="got 0"),
    Variant("Value: breadth-first order instead of reverse topological", cell="Value",
            replace=((_BACKWARD_BODY, _BACKWARD_BFS),),
            breaks=("test_Value_backward",), says="topological"),
    Variant("Value: naive recursion without a visited set", cell="Value",
            replace=((_BACKWARD_BODY, _BACKWARD_NAIVE_RECURSION),),
            breaks=("test_Value_backward",), says="x.grad after"),
    Variant("Value: intermediate gradients not reset (second backward over-counts)", cell="Value",
            replace=(("        for node in topo:\n            if node._prev:              "
                      "# intermediate results start from zero on every call\n"
                      "                node.grad = 0.0\n", ""),),
            breaks=("test_Value_backward",), says="must start from 0 in every backward()"),
    Variant("Value: iterative topological sort with an explicit stack", cell="Value",
            replace=((_BACKWARD_BODY, _BACKWARD_STACK),)),
]
