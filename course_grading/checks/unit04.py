"""Hidden checks for unit 04 (MLPs in PyTorch). Instructor-only.

Everything is checked by behaviour: architectures through the nn.Linear layers a forward pass
actually calls, training and evaluation against a reference loop run here on a copy of the model,
modes, devices and gradient tracking through models and losses that record how they were called.
The student's objects live in their kernel, so the models, losses, loaders and optimizers handed
to them are built there too (from torch and course_utils.fixtures, by requests); what comes back
is plain data (parameters as arrays, losses as floats, outputs as tensors) that is compared here.
The kernel trains on CUDA when it has one, and on the CPU otherwise; references run here on the CPU.
"""
import numbers

import numpy as np
import torch
from torch import nn

from course_grading.checks.harness import (CheckFailed, Remote, checking, hidden_check, is_instance, rel_error,
                                    student_call, type_name)
from course_utils import fixtures


def in_kernel(near, path):
    """The object at dotted `path` (torch..., course_utils...) in the kernel holding `near`, as a proxy."""
    return near._channel.ask({"op": "resolve", "path": path})


class _InKernel:
    """A module of the kernel holding `near`: `_InKernel(near, "torch.nn").Linear` is its nn.Linear."""

    def __init__(self, near, module):
        self._near, self._module = near, module

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return in_kernel(self._near, f"{self._module}.{name}")


def _device(near):
    """The kernel's torch.device (a proxy): CUDA when that kernel has it, the CPU otherwise."""
    cuda = in_kernel(near, "torch.cuda.is_available")()
    return _InKernel(near, "torch").device("cuda" if cuda else "cpu")


def _is_tensor(value):
    if isinstance(value, Remote):
        return is_instance(value, in_kernel(value, "torch.Tensor"))
    return isinstance(value, torch.Tensor)


# ----------------------------------------------------------------------------------------------
# HousePricesMLP
# ----------------------------------------------------------------------------------------------

def _diagnose_forward(out, w, x):
    """A hint naming the usual mistake when the output matches a known wrong network ([(weight, bias)] w)."""

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
        if out.shape == net(**kwargs).shape and rel_error(out, net(**kwargs)) < 1e-9:
            return hint
    return "expected Linear -> ReLU -> Linear -> ReLU -> Linear, with nothing else in between."


@hidden_check()
def check_HousePricesMLP(HousePricesMLP):
    device = _device(HousePricesMLP)
    kernel_torch = _InKernel(HousePricesMLP, "torch")
    kit = _InKernel(HousePricesMLP, "course_utils.fixtures")
    for case, (d_in, d_out) in enumerate([(2, 1), (5, 3), (1, 2), (13, 1), (4, 4)]):
        what = f"HousePricesMLP({d_in}, {d_out})"
        torch.manual_seed(100 + case)
        kernel_torch.manual_seed(100 + case)
        model = student_call(HousePricesMLP, d_in, d_out, what=what)
        if not is_instance(model, in_kernel(HousePricesMLP, "torch.nn.Module")):
            raise CheckFailed(f"{what} is a {type_name(model)}, not an nn.Module: "
                              "the class must inherit from nn.Module.")
        with checking(what):
            model.to(device=device, dtype=kernel_torch.float64)
        sizes = [p.shape for p in student_call(kit.parameter_arrays, model, what=what).values()]
        expected_count = (d_in * 4 + 4) + (4 * 3 + 3) + (3 * d_out + d_out)
        count = sum(int(np.prod(size)) for size in sizes)
        if count != expected_count:
            raise CheckFailed(f"{what} has {count} parameters (tensors of shapes {sizes}); the network "
                              f"Linear({d_in},4)-ReLU-Linear(4,3)-ReLU-Linear(3,{d_out}) "
                              f"has {expected_count}.")
        x = torch.randn(3, d_in, dtype=torch.float64)
        layers = student_call(kit.linears_in_call_order, model, x, device,
                              what=f"{what} on a batch of shape (3, {d_in})")
        shapes = [(layer.in_features, layer.out_features) for layer in layers]
        if shapes != [(d_in, 4), (4, 3), (3, d_out)]:
            raise CheckFailed(f"{what}: the forward pass calls nn.Linear layers of (in, out) sizes {shapes} "
                              f"in this order; expected [({d_in}, 4), (4, 3), (3, {d_out})].")
        generator = torch.Generator().manual_seed(7 * case + 1)
        weights = []
        for layer, (fan_in, fan_out) in zip(layers, shapes):
            weight = torch.randn((fan_out, fan_in), generator=generator, dtype=torch.float64)
            bias = 0.5 * torch.randn(fan_out, generator=generator, dtype=torch.float64)
            student_call(kit.load_parameters, layer, {"weight": weight, "bias": bias},
                         what=f"setting the weights of the nn.Linear({fan_in}, {fan_out}) layer of {what}")
            weights.append((weight, bias))
        for n in (1, 9, 64):
            x = 2.0 * torch.randn(n, d_in, generator=generator, dtype=torch.float64)
            out = student_call(kit.outputs_without_grad, model, x, device,
                               what=f"{what} on a batch of shape {tuple(x.shape)}")
            if not isinstance(out, torch.Tensor):
                raise CheckFailed(f"{what}(x) returned a {type_name(out)}; expected a tensor.")
            h = torch.relu(x @ weights[0][0].T + weights[0][1])
            h = torch.relu(h @ weights[1][0].T + weights[1][1])
            expected = h @ weights[2][0].T + weights[2][1]
            if tuple(out.shape) != (n, d_out):
                raise CheckFailed(f"{what}: the output for a batch of shape {tuple(x.shape)} has shape "
                                  f"{tuple(out.shape)}; expected ({n}, {d_out}).")
            error = rel_error(out, expected)
            if error > 1e-9:
                raise CheckFailed(f"{what}: wrong output on a batch of shape {tuple(x.shape)} (relative "
                                  f"error {error:.3g}): {_diagnose_forward(out, weights, x)}")


# ----------------------------------------------------------------------------------------------
# count_parameters
# ----------------------------------------------------------------------------------------------

_COUNT_CASES = [  # (description, builder of the model from an nn namespace and a freezing function)
    ("nn.Linear(3, 5)", lambda nn, frozen: nn.Linear(3, 5)),
    ("nn.Linear(1, 1)", lambda nn, frozen: nn.Linear(1, 1)),
    ("nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))",
     lambda nn, frozen: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))),
    ("nn.Linear(7, 3, bias=False)", lambda nn, frozen: nn.Linear(7, 3, bias=False)),
    ("nn.ReLU() (no parameters)", lambda nn, frozen: nn.ReLU()),
    ("nn.Conv1d(2, 3, kernel_size=5)", lambda nn, frozen: nn.Conv1d(2, 3, kernel_size=5)),
    ("nn.BatchNorm1d(6) (buffers are not parameters)", lambda nn, frozen: nn.BatchNorm1d(6)),
    ("nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)) with the first layer frozen",
     lambda nn, frozen: frozen(nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)), "0.")),
    ("nn.Linear(5, 4) with its weight frozen", lambda nn, frozen: frozen(nn.Linear(5, 4), "weight")),
    ("nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 1)) "
     "with the middle layer frozen",
     lambda nn, frozen: frozen(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 1)),
                               "2.")),
    ("a fully frozen nn.Linear(10, 10)", lambda nn, frozen: frozen(nn.Linear(10, 10), "")),
]


@hidden_check()
def check_count_parameters(count_parameters):
    kernel_nn = _InKernel(count_parameters, "torch.nn")
    kernel_frozen = in_kernel(count_parameters, "course_utils.fixtures.frozen")
    for description, build in _COUNT_CASES:
        reference = build(nn, fixtures.frozen)  # the same model here, to count
        expected = sum(p.numel() for p in reference.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in reference.parameters() if not p.requires_grad)
        what = f"count_parameters({description})"
        got = student_call(count_parameters, build(kernel_nn, kernel_frozen), what=what)
        if _is_tensor(got):
            raise CheckFailed(f"{what} returned a tensor; return a Python int.")
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            raise CheckFailed(f"{what} returned {got!r} (a {type_name(got)}); expected an int.")
        if got != expected:
            hint = ""
            if frozen and got == expected + frozen:
                hint = " Frozen parameters (requires_grad=False) are not trainable: leave them out."
            elif got == sum(p.numel() for n, p in reference.named_parameters()
                            if p.requires_grad and "bias" not in n):
                hint = " Biases are trainable parameters too."
            elif got == len([p for p in reference.parameters() if p.requires_grad]):
                hint = " That is the number of parameter tensors; count their elements (numel)."
            raise CheckFailed(f"{what} returned {got}; the model has {expected} trainable parameters.{hint}")
    return None


# ----------------------------------------------------------------------------------------------
# train_one_epoch and evaluate: recording models, losses and loaders in the kernel
# ----------------------------------------------------------------------------------------------

def _require_moved(recorder, what, name):
    """CheckFailed when a recording model ("inputs") or loss ("targets") got a batch without `.to(device)`."""
    where = recorder.unmoved
    if where:
        receiver = "model" if name == "inputs" else "criterion"
        raise CheckFailed(f"{what}: the {name} reached the {receiver} as the "
                          f"loader gave them ({where}), without `.to(device)`. Move every batch (inputs and "
                          "targets) to `device` before using it.")


def _recorded_call(fn, args, what, model, criterion):
    """student_call on a recording model and loss; a batch that skipped `.to(device)` is named as such."""
    try:
        return student_call(fn, *args, what=what)
    finally:
        _require_moved(model, what, "inputs")
        _require_moved(criterion, what, "targets")


def _reference_pass(model, X, y, batch_size, loss, optimizer=None):
    """Mean batch loss of one pass, training with `optimizer` when given (the model is changed)."""
    losses = []
    with torch.enable_grad():
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
    if _is_tensor(value):
        grad = " that still carries a graph (requires_grad=True)" if value.requires_grad else ""
        raise CheckFailed(f"{what} returned a tensor{grad}; return a Python float (use `loss.item()`).")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailed(f"{what} returned {value!r} (a {type_name(value)}); expected a Python float.")
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
    """(X, y, network builder, loss builder); the builders take an nn namespace (ours or the kernel's)."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    y = torch.randn(n, d_out, generator=generator, dtype=torch.float64)

    def network(nn):
        middle = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*[nn.Linear(d_in, 6), nn.Tanh()] + middle + [nn.Linear(6, d_out)])
    return X, y, network, lambda nn: nn.MSELoss()


def _classification_case(seed, n, d_in, classes, dropout=0.0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=generator)

    def network(nn):
        middle = [nn.Dropout(dropout)] if dropout else []
        return nn.Sequential(*[nn.Linear(d_in, 5), nn.ReLU()] + middle + [nn.Linear(5, classes)])
    return X, y, network, lambda nn: nn.CrossEntropyLoss()


def _stale_grads(model, seed):
    """{name: array} of random gradients for the model's parameters (stale ones, to be cleared)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(p.shape, generator=generator, dtype=p.dtype).numpy()
            for name, p in model.named_parameters()}


def _setup(near, make, dims, seed, n, batch_size, device, dropout=0.0):
    """The case's reference network here, and in the kernel a copy of it wrapped in a RecordingModel
    (its stale gradients filled in), a loader and a RecordingLoss: (X, y, reference, loss, kernel objects)."""
    kit = _InKernel(near, "course_utils.fixtures")
    X, y, network, make_loss = make(seed, n, *dims, dropout=dropout)
    torch.manual_seed(seed)
    reference = network(nn).double()
    kernel_nn = _InKernel(near, "torch.nn")
    net = kit.load_parameters(network(kernel_nn).double(), fixtures.parameter_arrays(reference))
    model = kit.RecordingModel(net.to(device), device)
    kit.fill_grads(model, {f"net.{name}": grad for name, grad in _stale_grads(reference, seed).items()})
    criterion = kit.RecordingLoss(make_loss(kernel_nn), device)
    return X, y, reference, make_loss(nn), (model, kit.host_loader(X, y, batch_size), criterion)


# (description, case maker, dims, seed, n, batch size, optimizer maker)
_TRAIN_CASES = [
    ("regression, 10 samples in batches of 4", _regression_case, (3, 2), 1, 10, 4,
     lambda optim, params: optim.SGD(params, lr=0.1)),
    ("regression, 6 samples in batches of 1", _regression_case, (1, 3), 2, 6, 1,
     lambda optim, params: optim.SGD(params, lr=0.05)),
    ("regression, 8 samples in one batch", _regression_case, (4, 1), 3, 8, 8,
     lambda optim, params: optim.SGD(params, lr=0.2)),
    ("classification (CrossEntropyLoss), 23 samples in batches of 5", _classification_case, (4, 3), 4, 23, 5,
     lambda optim, params: optim.SGD(params, lr=0.3, momentum=0.9)),
]


@hidden_check()
def check_train_one_epoch(train_one_epoch):
    device = _device(train_one_epoch)
    kit = _InKernel(train_one_epoch, "course_utils.fixtures")
    for description, make, dims, seed, n, batch_size, make_optimizer in _TRAIN_CASES:
        what = f"train_one_epoch on {description}"
        X, y, reference, loss, (model, loader, criterion) = _setup(train_one_epoch, make, dims, seed, n,
                                                                   batch_size, device)
        model.eval()  # the student's function must switch it to training mode itself
        optimizer = make_optimizer(_InKernel(train_one_epoch, "torch.optim"), model.parameters())
        before = kit.parameter_arrays(model)
        got = _recorded_call(train_one_epoch, (model, loader, criterion, optimizer, device), what, model,
                             criterion)

        expected, batch_losses = _reference_pass(reference, X, y, batch_size, loss,
                                                 make_optimizer(torch.optim, reference.parameters()))
        batches = len(batch_losses)
        calls = model.calls
        if not calls:
            raise CheckFailed(f"{what}: the model was never called.")
        if not all(training for training, _ in calls):
            raise CheckFailed(f"{what}: the model ran in eval mode. Call `model.train()` at the start: "
                              "dropout and batch norm behave differently while training.")
        if not all(grad for _, grad in calls):
            raise CheckFailed(f"{what}: the forward pass ran with gradient tracking switched off (no_grad), "
                              "so nothing can be learned.")
        if len(calls) != batches:
            raise CheckFailed(f"{what}: the model was called {len(calls)} times for {batches} batches; "
                              "expected one forward pass per batch.")
        after = kit.parameter_arrays(model)
        if all(np.array_equal(after[name], before[name]) for name in before):
            raise CheckFailed(f"{what}: the parameters did not change. Did you call `optimizer.step()`?")
        value = _as_float(got, what)
        worst = max(rel_error(a, r.detach()) for a, r in zip(after.values(), reference.parameters()))
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
    device = _device(evaluate)
    kit = _InKernel(evaluate, "course_utils.fixtures")
    kernel_torch = _InKernel(evaluate, "torch")
    for description, make, dims, seed, n, batch_size in _EVAL_CASES:
        what = f"evaluate on {description}"
        X, y, reference, loss, (model, loader, criterion) = _setup(evaluate, make, dims, seed, n, batch_size,
                                                                   device, dropout=0.5)
        reference.eval()
        model.train()  # the student's function must switch it to eval mode itself
        params, grads = kit.parameter_arrays(model), kit.grad_arrays(model)
        kernel_torch.set_grad_enabled(True)
        try:
            got = _recorded_call(evaluate, (model, loader, criterion, device), what, model, criterion)
        finally:
            grad_left_off = not kernel_torch.is_grad_enabled()
            kernel_torch.set_grad_enabled(True)
        if grad_left_off:
            raise CheckFailed(f"{what}: gradient tracking was still switched off after the call. Use "
                              "`with torch.no_grad():` so that it is switched back on.")
        expected, batch_losses = _reference_pass(reference, X, y, batch_size, loss)
        batches = len(batch_losses)
        calls = model.calls
        if not calls:
            raise CheckFailed(f"{what}: the model was never called.")
        if any(training for training, _ in calls):
            raise CheckFailed(f"{what}: the model ran in training mode (dropout was active). Call "
                              "`model.eval()` before evaluating.")
        if any(grad for _, grad in calls):
            raise CheckFailed(f"{what}: the forward pass built an autograd graph. Evaluate inside "
                              "`with torch.no_grad():` to save the memory and time.")
        if len(calls) != batches:
            raise CheckFailed(f"{what}: the model was called {len(calls)} times for {batches} batches; "
                              "expected one forward pass per batch.")
        params_after, grads_after = kit.parameter_arrays(model), kit.grad_arrays(model)
        for name in params:
            if not np.array_equal(params_after[name], params[name]):
                raise CheckFailed(f"{what}: parameter {name} changed. Evaluation must not train the model.")
            if grads_after[name] is None or not np.array_equal(grads_after[name], grads[name]):
                raise CheckFailed(f"{what}: the .grad of parameter {name} changed. Evaluation must leave "
                                  "gradients alone (no backward, no zero_grad).")
        value = _as_float(got, what)
        if abs(value - expected) > 1e-7 * max(1.0, abs(expected)):
            raise CheckFailed(f"{what} returned {value:.8g}; the mean of the {batches} batch losses is "
                              f"{expected:.8g}.{_loss_hint(value, batch_losses, batch_size, n)}")


# ----------------------------------------------------------------------------------------------
# train_digits_classifier
# ----------------------------------------------------------------------------------------------

@hidden_check()
def check_train_digits_classifier(train_digits_classifier, min_accuracy=0.93):
    from course_utils.data import digits, standardize, train_test_split

    device = _device(train_digits_classifier)
    kernel_torch = _InKernel(train_digits_classifier, "torch")
    kit = _InKernel(train_digits_classifier, "course_utils.fixtures")
    X, y = digits()
    for split_seed, seed in ((1, 5), (0, 11)):     # split 1: a pixel constant in training varies in test
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=split_seed)
        X_train, X_test = standardize(X_train, X_test)
        X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
        what = (f"train_digits_classifier(X_train, y_train, device, seed={seed}) "
                f"on a split of {len(X_train)} digits")
        kernel_torch.manual_seed(0)
        kernel_torch.set_grad_enabled(True)
        model = student_call(train_digits_classifier, X_train.copy(), y_train.copy(), device, seed=seed,
                             what=what, seconds=30)
        if not is_instance(model, in_kernel(train_digits_classifier, "torch.nn.Module")):
            raise CheckFailed(f"{what} returned a {type_name(model)}; expected the trained nn.Module.")
        tested = f"the model returned by {what}, on {len(X_test)} test digits"
        with checking(tested):
            model = model.to(device)
            model.eval()
        logits = student_call(kit.outputs_without_grad, model, X_test, device, what=tested)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(X_test), 10):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type_name(logits)
            raise CheckFailed(f"the returned model maps a batch of shape {tuple(X_test.shape)} to {shape}; "
                              f"expected one score per class, shape ({len(X_test)}, 10).")
        if not torch.isfinite(logits).all():
            raise CheckFailed("the returned model outputs NaN or inf on the test digits.")
        row_sums = logits.double().sum(dim=1)
        if bool((logits >= 0).all()) and torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4):
            raise CheckFailed(f"the model returned by {what} outputs probabilities (every row is "
                              "non-negative and sums to 1): it ends with a softmax. As the section 'A "
                              "classifier for handwritten digits' says, nn.CrossEntropyLoss applies the softmax "
                              "itself, so the network must not end with one: return the logits "
                              "(log-probabilities from LogSoftmax are logits too).")
        accuracy = float((logits.argmax(dim=1).numpy() == np.asarray(y_test)).mean())
        if accuracy < min_accuracy:
            raise CheckFailed(f"{what}: test accuracy {accuracy:.3f}, below the required {min_accuracy:.2f}. "
                              "Train longer, or check the learning rate and the loss "
                              "(CrossEntropyLoss on logits).")
