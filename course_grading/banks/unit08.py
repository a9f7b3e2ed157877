"""Unit 08 bank: classic optimizer mistakes, broken code and correct alternatives."""
from course_grading.banks import Variant

T_SGD = "test_sgd"
T_MOM = "test_sgd_momentum"
T_NEST = "test_sgd_momentum_nesterov"
T_ADAGRAD = "test_adagrad"
T_RMS = "test_rmsprop"
T_ADAM = "test_adam"
T_CLIP = "test_clip_grad_norm"

VARIANTS = [
    # ------------------------------------------------------------------ sgd
    Variant("sgd ignores lr from config", cell="sgd",
            replace=(("next_w = w - config[\"lr\"] * dw", "next_w = w - 1e-3 * dw"),),
            breaks=(T_SGD,), says="w after step"),
    Variant("sgd default lr 1e-2 instead of torch's 1e-3", cell="sgd",
            replace=(("config.setdefault(\"lr\", 1e-3)", "config.setdefault(\"lr\", 1e-2)"),),
            breaks=(T_SGD,), says="config['lr']"),
    Variant("sgd in place, config built with explicit ifs", cell="sgd", source='''
def sgd(w, dw, config=None):
    if config is None:
        config = {}
    if "lr" not in config:
        config["lr"] = 1e-3
    w -= config["lr"] * dw
    return w, config
'''),
    # ------------------------------------------------------------------ sgd_momentum
    Variant("momentum with lr applied twice (buffer accumulates lr * dw)", cell="sgd_momentum",
            replace=(("buffer = config[\"momentum\"] * buffer + dw",
                      "buffer = config[\"momentum\"] * buffer + config[\"lr\"] * dw"),),
            breaks=(T_MOM, T_NEST), says="lr is applied twice"),
    Variant("momentum of the wrong sign", cell="sgd_momentum",
            replace=(("buffer = config[\"momentum\"] * buffer + dw", "buffer = dw - config[\"momentum\"] * buffer"),),
            breaks=(T_MOM, T_NEST), says="w after step 2"),
    Variant("Nesterov as plain momentum", cell="sgd_momentum",
            replace=(("direction = dw + config[\"momentum\"] * buffer if config[\"nesterov\"] else buffer",
                      "direction = buffer"),),
            breaks=(T_NEST,), says="nesterov"),
    Variant("momentum buffer never stored (plain SGD)", cell="sgd_momentum",
            replace=(("    config[\"momentum_buffer\"] = buffer\n", ""),),
            breaks=(T_MOM, T_NEST), says="w after step 2"),
    Variant("velocity scaled by lr stored as the buffer (CS231n v)", cell="sgd_momentum", source='''
def sgd_momentum(w, dw, config=None):
    if config is None:
        config = {}
    config.setdefault("lr", 1e-3)
    config.setdefault("momentum", 0.9)
    config.setdefault("nesterov", False)
    v = config.get("momentum_buffer", np.zeros_like(w))
    v = config["momentum"] * v - config["lr"] * dw
    config["momentum_buffer"] = v
    if config["nesterov"]:
        return w + config["momentum"] * v - config["lr"] * dw, config
    return w + v, config
''', breaks=(T_MOM, T_NEST), says="velocity v = -lr * momentum_buffer"),
    Variant("momentum default 0 (torch's) instead of the course's 0.9", cell="sgd_momentum",
            replace=(("config.setdefault(\"momentum\", 0.9)", "config.setdefault(\"momentum\", 0.0)"),),
            breaks=(T_MOM, T_NEST), says="config['momentum']"),
    Variant("look-ahead form of Nesterov, explicit ifs, in-place buffer", cell="sgd_momentum", source='''
def sgd_momentum(w, dw, config=None):
    config = {} if config is None else config
    if "lr" not in config:
        config["lr"] = 1e-3
    if "momentum" not in config:
        config["momentum"] = 0.9
    if "nesterov" not in config:
        config["nesterov"] = False
    mu, lr = config["momentum"], config["lr"]
    if "momentum_buffer" not in config:
        config["momentum_buffer"] = np.zeros_like(w)
    previous = config["momentum_buffer"].copy()
    config["momentum_buffer"] *= mu
    config["momentum_buffer"] += dw
    b = config["momentum_buffer"]
    if config["nesterov"]:
        # velocity form: v = -lr * b; w + (1 + mu) v - mu v_prev
        w -= lr * ((1 + mu) * b - mu * previous)
    else:
        w -= lr * b
    return w, config
'''),
    # ------------------------------------------------------------------ adagrad
    Variant("AdaGrad without accumulation", cell="adagrad",
            replace=(("config[\"sum\"] = config.get(\"sum\", np.zeros_like(w)) + dw ** 2",
                      "config[\"sum\"] = dw ** 2"),),
            breaks=(T_ADAGRAD,), says="w after step 2"),
    Variant("eps inside the square root (AdaGrad)", cell="adagrad",
            replace=(("(np.sqrt(config[\"sum\"]) + config[\"eps\"])", "np.sqrt(config[\"sum\"] + config[\"eps\"])"),),
            breaks=(T_ADAGRAD,), says="eps belongs outside the square root"),
    Variant("AdaGrad sums dw instead of dw**2", cell="adagrad",
            replace=(("+ dw ** 2", "+ dw"),), breaks=(T_ADAGRAD,), says="sum must accumulate dw**2, not dw"),
    Variant("AdaGrad sums |dw| instead of dw**2", cell="adagrad",
            replace=(("+ dw ** 2", "+ np.abs(dw)"),),
            breaks=(T_ADAGRAD,), says="w after step 1"),
    Variant("wrong shape: adagrad returns w flattened", cell="adagrad",
            replace=(("return next_w, config", "return next_w.ravel(), config"),),
            breaks=(T_ADAGRAD,), says="shape"),
    Variant("adagrad with in-place state (np.add out=)", cell="adagrad", source='''
def adagrad(w, dw, config=None):
    config = config if config is not None else {}
    lr = config.setdefault("lr", 1e-2)
    eps = config.setdefault("eps", 1e-10)
    total = config.setdefault("sum", np.zeros_like(w))
    np.add(total, dw * dw, out=total)
    w -= lr * (dw / (np.sqrt(total) + eps))
    return w, config
'''),
    # ------------------------------------------------------------------ rmsprop
    Variant("RMSProp with the wrong decay (alpha on the new square)", cell="rmsprop",
            replace=(("alpha * config.get(\"square_avg\", np.zeros_like(w)) + (1 - alpha) * dw ** 2",
                      "(1 - alpha) * config.get(\"square_avg\", np.zeros_like(w)) + alpha * dw ** 2"),),
            breaks=(T_RMS,), says="w after step 1"),
    Variant("eps inside the square root (RMSProp)", cell="rmsprop",
            replace=(("(np.sqrt(square_avg) + config[\"eps\"])", "np.sqrt(square_avg + config[\"eps\"])"),),
            breaks=(T_RMS,), says="eps belongs outside the square root"),
    Variant("RMSProp hyper-parameters read but not stored in config", cell="rmsprop", source='''
def rmsprop(w, dw, config=None):
    config = {} if config is None else config
    lr, alpha, eps = config.get("lr", 1e-2), config.get("alpha", 0.99), config.get("eps", 1e-8)
    config["square_avg"] = alpha * config.get("square_avg", 0.0) + (1 - alpha) * dw ** 2
    return w - lr * dw / (np.sqrt(config["square_avg"]) + eps), config
''', breaks=(T_RMS,), says="has no key"),
    Variant("exception: square_avg read before it exists", cell="rmsprop",
            replace=(("config.get(\"square_avg\", np.zeros_like(w))", "config[\"square_avg\"]"),),
            breaks=(T_RMS,), says="raised KeyError"),
    Variant("rmsprop returning a new config merged from the defaults", cell="rmsprop", source='''
def rmsprop(w, dw, config=None):
    config = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, **(config or {})}
    a = config["alpha"]
    config["square_avg"] = a * config.get("square_avg", np.zeros(np.shape(w))) + (1.0 - a) * np.square(dw)
    return w - config["lr"] * dw / (np.sqrt(config["square_avg"]) + config["eps"]), config
'''),
    # ------------------------------------------------------------------ adam
    Variant("Adam without bias correction", cell="adam",
            replace=(("m_hat = config[\"exp_avg\"] / (1 - beta1 ** t)", "m_hat = config[\"exp_avg\"]"),
                     ("v_hat = config[\"exp_avg_sq\"] / (1 - beta2 ** t)", "v_hat = config[\"exp_avg_sq\"]")),
            breaks=(T_ADAM,), says="without the bias correction"),
    Variant("Adam step starting at 0 (incremented after use)", cell="adam",
            replace=(("    config[\"step\"] = config.get(\"step\", 0) + 1\n    t = config[\"step\"]\n",
                      "    t = config.setdefault(\"step\", 0)\n"),
                     ("    next_w = w - config", "    config[\"step\"] += 1\n    next_w = w - config")),
            breaks=(T_ADAM,), says="1 on the first call"),
    Variant("Adam bias correction of the first moment only", cell="adam",
            replace=(("v_hat = config[\"exp_avg_sq\"] / (1 - beta2 ** t)", "v_hat = config[\"exp_avg_sq\"]"),),
            breaks=(T_ADAM,), says="w after step 1"),
    Variant("Adam step counter not incremented", cell="adam",
            replace=(("config[\"step\"] = config.get(\"step\", 0) + 1", "config.setdefault(\"step\", 1)"),),
            breaks=(T_ADAM,), says="w after step 2"),
    Variant("Adam betas swapped", cell="adam",
            replace=(("beta1, beta2 = config[\"betas\"]", "beta2, beta1 = config[\"betas\"]"),),
            breaks=(T_ADAM,), says="w after step 2"),
    Variant("eps inside the square root (Adam)", cell="adam",
            replace=(("(np.sqrt(v_hat) + config[\"eps\"])", "np.sqrt(v_hat + config[\"eps\"])"),),
            breaks=(T_ADAM,), says="eps"),
    Variant("NaN: bias correction with step - 1", cell="adam",
            replace=(("/ (1 - beta1 ** t)", "/ (1 - beta1 ** (t - 1))"),
                     ("/ (1 - beta2 ** t)", "/ (1 - beta2 ** (t - 1))")),
            breaks=(T_ADAM,), says="nan"),
    Variant("infinite loop: bias correction by a while loop", cell="adam",
            replace=(("    m_hat = config[\"exp_avg\"] / (1 - beta1 ** t)\n",
                      "    power, k = 1.0, 0\n    while k < t:\n        power *= beta1\n"
                      "    m_hat = config[\"exp_avg\"] / (1 - power)\n"),),
            breaks=(T_ADAM,), says="did not finish"),
    Variant("adam as torch writes it (step size and denominator), in place", cell="adam", source='''
def adam(w, dw, config=None):
    if config is None:
        config = {}
    for key, default in (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8)):
        config.setdefault(key, default)
    beta1, beta2 = config["betas"]
    if "step" not in config:
        config["step"] = 0
        config["exp_avg"] = np.zeros_like(w)
        config["exp_avg_sq"] = np.zeros_like(w)
    config["step"] += 1
    m, v = config["exp_avg"], config["exp_avg_sq"]
    m *= beta1
    m += (1 - beta1) * dw
    v *= beta2
    v += (1 - beta2) * dw * dw
    bias1, bias2 = 1 - beta1 ** config["step"], 1 - beta2 ** config["step"]
    denom = np.sqrt(v) / np.sqrt(bias2) + config["eps"]
    w -= (config["lr"] / bias1) * m / denom
    return w, config
'''),
    # ------------------------------------------------------------------ clip_grad_norm
    Variant("clipping per tensor", cell="clip_grad_norm", source='''
def clip_grad_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g ** 2) for g in grads)))
    clipped = []
    for g in grads:
        norm = np.sqrt(np.sum(g ** 2))
        clipped.append(g * (max_norm / (norm + 1e-6)) if norm > max_norm else g)
    return clipped, total_norm
''', breaks=(T_CLIP,), says="ONE factor"),
    Variant("clip without torch's eps: max_norm / total_norm", cell="clip_grad_norm",
            replace=(("max_norm / (total_norm + 1e-6)", "max_norm / total_norm"),),
            breaks=(T_CLIP,), says="eps"),
    Variant("clip returns the clipped norm instead of the original", cell="clip_grad_norm",
            replace=(("return clipped, total_norm",
                      "return clipped, float(np.sqrt(sum(np.sum(g ** 2) for g in clipped)))"),),
            breaks=(T_CLIP,), says="before clipping"),
    Variant("clip always rescales (no no-clip case)", cell="clip_grad_norm",
            replace=(("if total_norm > max_norm else 1.0", ""),),
            breaks=(T_CLIP,), says="unchanged"),
    Variant("clip norm as the sum of the tensors' norms", cell="clip_grad_norm",
            replace=(("total_norm = float(np.sqrt(sum(np.sum(g ** 2) for g in grads)))",
                      "total_norm = float(sum(np.sqrt(np.sum(g ** 2)) for g in grads))"),),
            breaks=(T_CLIP,), says="total_norm"),
    Variant("clip in place with np.linalg.norm of the concatenation", cell="clip_grad_norm", source='''
def clip_grad_norm(grads, max_norm):
    total_norm = np.linalg.norm(np.concatenate([np.ravel(g) for g in grads]))
    if total_norm > max_norm:
        for g in grads:
            g *= max_norm / (total_norm + 1e-6)
    return grads, total_norm
'''),
]
