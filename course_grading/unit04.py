"""Hidden checks for unit 04 (MLPs in PyTorch). Instructor-only.

Everything is checked by behaviour: architectures through the nn.Linear layers a forward pass
actually calls, training and evaluation against a reference loop run on a fresh copy of the model,
modes, devices and gradient tracking through models and losses that record how they were called.
The checks pick CUDA when there is one, and the CPU otherwise.
"""
import copy
import numbers

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_grading.harness import CheckFailed, hidden_check, rel_error, student_call


def _device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# HousePricesMLP
# ----------------------------------------------------------------------------------------------

def _linears_in_call_order(model, x):
    """The nn.Linear modules `model(x)` calls, in the order it calls them, and the output."""
    called, handles = [], []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(lambda m, i, o: called.append(m)))
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return called, out


def _diagnose_forward(out, layers, x):
    """A hint naming the usual mistake when the output matches a known wrong network."""
    w = [(layer.weight, layer.bias) for layer in layers]

    def net(relu1=True, relu2=True, relu_out=False):
        h = x @ w[0][0].T + w[0][1]
        h = torch.relu(h) if relu1 else h
        h = h @ w[1][0].T + w[1][1]
        h = torch.relu(h) if relu2 else h
        h = h @ w[2][0].T + w[2][1]
        return torch.relu(h) if relu_out else h

    candidates = [
        (dict(relu_out=True), "there is a ReLU after the output layer: the last Linear must give raw "
                              "outputs (a price can be any real number)."),
        (dict(relu1=False), "the ReLU after the first Linear layer is missing."),
        (dict(relu2=False), "the ReLU after the second Linear layer is missing."),
        (dict(relu1=False, relu2=False), "there is no ReLU between the Linear layers."),
    ]
    for kwargs, hint in candidates:
        if out.shape == net(**kwargs).shape and rel_error(out.cpu(), net(**kwargs).cpu()) < 1e-9:
            return hint
    return "expected Linear -> ReLU -> Linear -> ReLU -> Linear, with nothing else in between."


@hidden_check()
def check_HousePricesMLP(HousePricesMLP):
    device = _device()
    for case, (d_in, d_out) in enumerate([(2, 1), (5, 3), (1, 2), (13, 1), (4, 4)]):
        what = f"HousePricesMLP({d_in}, {d_out})"
        torch.manual_seed(100 + case)
        model = student_call(HousePricesMLP, d_in, d_out, what=what)
        if not isinstance(model, nn.Module):
            raise CheckFailed(f"{what} is a {type(model).__name__}, not an nn.Module: "
                              "the class must inherit from nn.Module.")
        with torch.no_grad():
            model.to(device=device, dtype=torch.float64)
        expected_count = (d_in * 4 + 4) + (4 * 3 + 3) + (3 * d_out + d_out)
        count = sum(p.numel() for p in model.parameters())
        if count != expected_count:
            sizes = [tuple(p.shape) for p in model.parameters()]
            raise CheckFailed(f"{what} has {count} parameters (tensors of shapes {sizes}); the network "
                              f"Linear({d_in},4)-ReLU-Linear(4,3)-ReLU-Linear(3,{d_out}) "
                              f"has {expected_count}.")
        x = torch.randn(3, d_in, dtype=torch.float64, device=device)
        with torch.no_grad():
            layers, _ = student_call(_linears_in_call_order, model, x,
                                     what=f"{what} on a batch of shape (3, {d_in})")
        shapes = [(layer.in_features, layer.out_features) for layer in layers]
        if shapes != [(d_in, 4), (4, 3), (3, d_out)]:
            raise CheckFailed(f"{what}: the forward pass calls nn.Linear layers of (in, out) sizes {shapes} "
                              f"in this order; expected [({d_in}, 4), (4, 3), (3, {d_out})].")
        generator = torch.Generator().manual_seed(7 * case + 1)
        with torch.no_grad():
            for layer in layers:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64))
                bias = torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64)
                layer.bias.copy_(0.5 * bias)
        for n in (1, 9, 64):
            x = 2.0 * torch.randn(n, d_in, generator=generator, dtype=torch.float64).to(device)
            with torch.no_grad():
                out = student_call(model, x, what=f"{what} on a batch of shape {tuple(x.shape)}")
                if not isinstance(out, torch.Tensor):
                    raise CheckFailed(f"{what}(x) returned a {type(out).__name__}; expected a tensor.")
                h = torch.relu(x @ layers[0].weight.T + layers[0].bias)
                h = torch.relu(h @ layers[1].weight.T + layers[1].bias)
                expected = h @ layers[2].weight.T + layers[2].bias
                if tuple(out.shape) != (n, d_out):
                    raise CheckFailed(f"{what}: the output for a batch of shape {tuple(x.shape)} has shape "
                                      f"{tuple(out.shape)}; expected ({n}, {d_out}).")
                error = rel_error(out.cpu(), expected.cpu())
                if error > 1e-9:
                    raise CheckFailed(f"{what}: wrong output on a batch of shape {tuple(x.shape)} (relative "
                                      f"error {error:.3g}): {_diagnose_forward(out, layers, x)}")


# ----------------------------------------------------------------------------------------------
# count_parameters
# ----------------------------------------------------------------------------------------------

def _frozen(module, *names):
    for name, parameter in module.named_parameters():
        if any(name.startswith(prefix) for prefix in names):
            parameter.requires_grad_(False)
    return module


@hidden_check()
def check_count_parameters(count_parameters):
    torch.manual_seed(0)
    cases = [
        ("nn.Linear(3, 5)", nn.Linear(3, 5)),
        ("nn.Linear(1, 1)", nn.Linear(1, 1)),
        ("nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))",
         nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))),
        ("nn.Linear(7, 3, bias=False)", nn.Linear(7, 3, bias=False)),
        ("nn.ReLU() (no parameters)", nn.ReLU()),
        ("nn.Conv1d(2, 3, kernel_size=5)", nn.Conv1d(2, 3, kernel_size=5)),
        ("nn.BatchNorm1d(6) (buffers are not parameters)", nn.BatchNorm1d(6)),
        ("nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)) with the first layer frozen",
         _frozen(nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)), "0.")),
        ("nn.Linear(5, 4) with its weight frozen", _frozen(nn.Linear(5, 4), "weight")),
        ("nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 1)) "
         "with the middle layer frozen",
         _frozen(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 1)), "2.")),
        ("a fully frozen nn.Linear(10, 10)", _frozen(nn.Linear(10, 10), "")),
    ]
    for description, model in cases:
        expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        what = f"count_parameters({description})"
        got = student_call(count_parameters, model, what=what)
        if isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what} returned a tensor; return a Python int.")
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            raise CheckFailed(f"{what} returned {got!r} (a {type(got).__name__}); expected an int.")
        if got != expected:
            hint = ""
            if frozen and got == expected + frozen:
                hint = " Frozen parameters (requires_grad=False) are not trainable: leave them out."
            elif got == sum(p.numel() for n, p in model.named_parameters()
                            if p.requires_grad and "bias" not in n):
                hint = " Biases are trainable parameters too."
            elif got == len([p for p in model.parameters() if p.requires_grad]):
                hint = " That is the number of parameter tensors; count their elements (numel)."
            raise CheckFailed(f"{what} returned {got}; the model has {expected} trainable parameters.{hint}")
    return None


# ----------------------------------------------------------------------------------------------
# train_one_epoch and evaluate: recording models, losses and loaders
# ----------------------------------------------------------------------------------------------

class _HostBatch(torch.Tensor):
    """A batch as the loader hands it out: `.to(...)` gives a plain tensor, so the checks can tell
    whether a batch went through `.to(device)` on the CPU as well as on a GPU."""

    def to(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).to(*args, **kwargs)


def _require_moved(tensor, device, what, name):
    if (isinstance(tensor, _HostBatch) or not isinstance(tensor, torch.Tensor)
            or tensor.device.type != device.type):
        where = tensor.device if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        receiver = "model" if name == "inputs" else "criterion"
        raise CheckFailed(f"{what}: the {name} reached the {receiver} as the "
                          f"loader gave them ({where}), without `.to(device)`. Move every batch (inputs and "
                          "targets) to `device` before using it.")


class _Recording(nn.Module):
    """Wraps a network and records, for each call, the mode and whether autograd was recording."""

    def __init__(self, net, device, what):
        super().__init__()
        self.net = net
        self.calls = []
        self._device, self._what = device, what

    def forward(self, x):
        _require_moved(x, self._device, self._what, "inputs")
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.net(x)


class _RecordingLoss(nn.Module):
    def __init__(self, loss, device, what):
        super().__init__()
        self.loss = loss
        self._device, self._what = device, what

    def forward(self, prediction, target):
        _require_moved(target, self._device, self._what, "targets")
        return self.loss(prediction, target)


def _loader(X, y, batch_size):
    return DataLoader(TensorDataset(X.as_subclass(_HostBatch), y.as_subclass(_HostBatch)),
                      batch_size=batch_size, shuffle=False)


def _reference_pass(model, X, y, batch_size, loss, optimizer=None):
    """Mean batch loss of one pass, training with `optimizer` when given (the model is changed)."""
    losses = []
    for start in range(0, len(X), batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        if optimizer is None:
            with torch.no_grad():
                losses.append(loss(model(xb), yb).item())
        else:
            optimizer.zero_grad()
            value = loss(model(xb), yb)
            value.backward()
            optimizer.step()
            losses.append(value.item())
    return float(np.mean(losses)), losses


def _as_float(value, what):
    if isinstance(value, torch.Tensor):
        grad = " that still carries a graph (requires_grad=True)" if value.requires_grad else ""
        raise CheckFailed(f"{what} returned a tensor{grad}; return a Python float (use `loss.item()`).")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailed(f"{what} returned {value!r} (a {type(value).__name__}); expected a Python float.")
    value = float(value)
    if not np.isfinite(value):
        raise CheckFailed(f"{what} returned {value}; expected a finite mean loss.")
    return value


def _loss_hint(got, batch_losses, batch_size, n):
    sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    if abs(got - batch_losses[-1]) <= 1e-9 * max(1.0, abs(got)):
        return " That is the loss of the last batch only; return the mean over all batches."
    if abs(got - sum(batch_losses)) <= 1e-9 * max(1.0, abs(got)):
        return " That is the sum of the batch losses; divide by the number of batches."
    if abs(got - float(np.dot(batch_losses, sizes)) / n) <= 1e-9 * max(1.0, abs(got)):
        return (" That is the mean weighted by batch size; the exercise asks for the plain mean of the "
                "per-batch losses (the last batch here is smaller).")
    return ""


def _regression_case(seed, n, d_in, d_out, dropout=0.0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    y = torch.randn(n, d_out, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    middle = [nn.Dropout(dropout)] if dropout else []
    layers = [nn.Linear(d_in, 6), nn.Tanh()] + middle + [nn.Linear(6, d_out)]
    return X, y, nn.Sequential(*layers).double(), nn.MSELoss()


def _classification_case(seed, n, d_in, classes, dropout=0.0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=generator)
    torch.manual_seed(seed)
    middle = [nn.Dropout(dropout)] if dropout else []
    layers = [nn.Linear(d_in, 5), nn.ReLU()] + middle + [nn.Linear(5, classes)]
    return X, y, nn.Sequential(*layers).double(), nn.CrossEntropyLoss()


def _fill_grads(model, seed):
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)


# (description, case maker, seed, n, batch size, optimizer maker)
_TRAIN_CASES = [
    ("regression, 10 samples in batches of 4", _regression_case, (3, 2), 1, 10, 4,
     lambda params: torch.optim.SGD(params, lr=0.1)),
    ("regression, 6 samples in batches of 1", _regression_case, (1, 3), 2, 6, 1,
     lambda params: torch.optim.SGD(params, lr=0.05)),
    ("regression, 8 samples in one batch", _regression_case, (4, 1), 3, 8, 8,
     lambda params: torch.optim.SGD(params, lr=0.2)),
    ("classification (CrossEntropyLoss), 23 samples in batches of 5", _classification_case, (4, 3), 4, 23, 5,
     lambda params: torch.optim.SGD(params, lr=0.3, momentum=0.9)),
]


@hidden_check()
def check_train_one_epoch(train_one_epoch):
    device = _device()
    for description, make, dims, seed, n, batch_size, make_optimizer in _TRAIN_CASES:
        what = f"train_one_epoch on {description}"
        X, y, net, loss = make(seed, n, *dims)
        net.to(device)
        reference = copy.deepcopy(net)
        model = _Recording(net, device, what)
        model.eval()  # the student's function must switch it to training mode itself
        _fill_grads(model, seed)  # stale gradients: the function must clear them before each backward
        optimizer = make_optimizer(model.parameters())
        before = [p.detach().clone() for p in model.parameters()]
        got = student_call(train_one_epoch, model, _loader(X, y, batch_size),
                           _RecordingLoss(loss, device, what), optimizer, device, what=what)

        expected, batch_losses = _reference_pass(reference, X.to(device), y.to(device), batch_size, loss,
                                                 make_optimizer(reference.parameters()))
        batches = len(batch_losses)
        if not model.calls:
            raise CheckFailed(f"{what}: the model was never called.")
        if not all(training for training, _ in model.calls):
            raise CheckFailed(f"{what}: the model ran in eval mode. Call `model.train()` at the start: "
                              "dropout and batch norm behave differently while training.")
        if not all(grad for _, grad in model.calls):
            raise CheckFailed(f"{what}: the forward pass ran with gradient tracking switched off (no_grad), "
                              "so nothing can be learned.")
        if len(model.calls) != batches:
            raise CheckFailed(f"{what}: the model was called {len(model.calls)} times for {batches} batches; "
                              "expected one forward pass per batch.")
        after = [p.detach() for p in model.parameters()]
        if all(torch.equal(a, b) for a, b in zip(after, before)):
            raise CheckFailed(f"{what}: the parameters did not change. Did you call `optimizer.step()`?")
        value = _as_float(got, what)
        worst = max(rel_error(a.cpu(), r.detach().cpu()) for a, r in zip(after, reference.parameters()))
        if worst > 1e-6:
            raise CheckFailed(
                f"{what}: after the epoch the parameters differ from those of a correct epoch (largest "
                f"relative error {worst:.3g}). Each batch needs `optimizer.zero_grad()` (the model came in "
                "with stale gradients), the forward pass, the loss, `loss.backward()` and one "
                "`optimizer.step()`, in that order.")
        if abs(value - expected) > 1e-7 * max(1.0, abs(expected)):
            raise CheckFailed(f"{what} returned {value:.8g}; the mean of the {batches} batch losses is "
                              f"{expected:.8g}.{_loss_hint(value, batch_losses, batch_size, n)}")


# (description, case maker, dims, seed, n, batch size)
_EVAL_CASES = [
    ("regression with dropout, 10 samples in batches of 4", _regression_case, (3, 2), 11, 10, 4),
    ("regression with dropout, 5 samples in batches of 1", _regression_case, (2, 1), 12, 5, 1),
    ("regression with dropout, 7 samples in one batch", _regression_case, (4, 3), 13, 7, 7),
    ("classification with dropout (CrossEntropyLoss), 17 samples in batches of 6", _classification_case,
     (5, 4), 14, 17, 6),
]


@hidden_check()
def check_evaluate(evaluate):
    device = _device()
    for description, make, dims, seed, n, batch_size in _EVAL_CASES:
        what = f"evaluate on {description}"
        X, y, net, loss = make(seed, n, *dims, dropout=0.5)
        net.to(device)
        reference = copy.deepcopy(net).eval()
        model = _Recording(net, device, what)
        model.train()  # the student's function must switch it to eval mode itself
        _fill_grads(model, seed)
        params = [p.detach().clone() for p in model.parameters()]
        grads = [p.grad.clone() for p in model.parameters()]
        torch.set_grad_enabled(True)
        try:
            got = student_call(evaluate, model, _loader(X, y, batch_size), _RecordingLoss(loss, device, what),
                               device, what=what)
        finally:
            grad_left_off = not torch.is_grad_enabled()
            torch.set_grad_enabled(True)
        if grad_left_off:
            raise CheckFailed(f"{what}: gradient tracking was still switched off after the call. Use "
                              "`with torch.no_grad():` so that it is switched back on.")
        expected, batch_losses = _reference_pass(reference, X.to(device), y.to(device), batch_size, loss)
        batches = len(batch_losses)
        if not model.calls:
            raise CheckFailed(f"{what}: the model was never called.")
        if any(training for training, _ in model.calls):
            raise CheckFailed(f"{what}: the model ran in training mode (dropout was active). Call "
                              "`model.eval()` before evaluating.")
        if any(grad for _, grad in model.calls):
            raise CheckFailed(f"{what}: the forward pass built an autograd graph. Evaluate inside "
                              "`with torch.no_grad():` to save the memory and time.")
        if len(model.calls) != batches:
            raise CheckFailed(f"{what}: the model was called {len(model.calls)} times for {batches} batches; "
                              "expected one forward pass per batch.")
        for (name, p), old, old_grad in zip(model.named_parameters(), params, grads):
            if not torch.equal(p.detach(), old):
                raise CheckFailed(f"{what}: parameter {name} changed. Evaluation must not train the model.")
            if p.grad is None or not torch.equal(p.grad, old_grad):
                raise CheckFailed(f"{what}: the .grad of parameter {name} changed. Evaluation must leave "
                                  "gradients alone (no backward, no zero_grad).")
        value = _as_float(got, what)
        if abs(value - expected) > 1e-7 * max(1.0, abs(expected)):
            raise CheckFailed(f"{what} returned {value:.8g}; the mean of the {batches} batch losses is "
                              f"{expected:.8g}.{_loss_hint(value, batch_losses, batch_size, n)}")


# ----------------------------------------------------------------------------------------------
# train_digits_classifier
# ----------------------------------------------------------------------------------------------

def _digits_accuracy(model, X_test, y_test, device):
    """Test accuracy of `model` on standardized digits (numpy arrays), computed in eval mode."""
    model = model.to(device)
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(X_test, dtype=torch.float32, device=device))
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(X_test), 10):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CheckFailed(f"the returned model maps a batch of shape {tuple(X_test.shape)} to {shape}; "
                          f"expected one score per class, shape ({len(X_test)}, 10).")
    if not torch.isfinite(logits).all():
        raise CheckFailed("the returned model outputs NaN or inf on the test digits.")
    return float((logits.argmax(dim=1).cpu().numpy() == np.asarray(y_test)).mean())


@hidden_check()
def check_train_digits_classifier(train_digits_classifier, min_accuracy=0.93):
    from course_utils.data import digits, standardize, train_test_split

    device = _device()
    X, y = digits()
    # splits whose training part has no constant pixel that is non-zero in the test part
    for split_seed, seed in ((2, 5), (0, 11)):
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=split_seed)
        X_train, X_test = standardize(X_train, X_test)
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
        what = (f"train_digits_classifier(X_train, y_train, device, seed={seed}) "
                f"on a split of {len(X_train)} digits")
        torch.manual_seed(0)
        torch.set_grad_enabled(True)
        model = student_call(train_digits_classifier, X_train.copy(), y_train.copy(), device, seed=seed,
                             what=what, seconds=30)
        if not isinstance(model, nn.Module):
            raise CheckFailed(f"{what} returned a {type(model).__name__}; expected the trained nn.Module.")
        with torch.no_grad():
            accuracy = student_call(_digits_accuracy, model, X_test, y_test, device,
                                    what=f"the model returned by {what}, on {len(X_test)} test digits")
        if accuracy < min_accuracy:
            raise CheckFailed(f"{what}: test accuracy {accuracy:.3f}, below the required {min_accuracy:.2f}. "
                              "Train longer, or check the learning rate and the loss "
                              "(CrossEntropyLoss on logits).")
