"""Instruments a hidden check builds inside the notebook's kernel; none of them knows a solution.

A hidden check runs outside the kernel and reaches it only through requests (course_utils.judge).
With these helpers it sets up what it needs next to the student's objects (a model that records
how it was called, a loss that checks where its targets are, a loader whose batches show whether
they were moved) and reads back plain data: parameters and gradients as numpy arrays, outputs
computed without gradient tracking.
"""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class HostBatch(torch.Tensor):
    """A batch as the loader hands it out: `.to(...)` gives a plain tensor, so one can tell whether
    a batch went through `.to(device)` on the CPU as well as on a GPU."""

    def to(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).to(*args, **kwargs)


def where_unmoved(tensor, device):
    """None for a plain tensor on `device`'s kind of device; else where it is (a device or a type name)."""
    if (isinstance(tensor, HostBatch) or not isinstance(tensor, torch.Tensor)
            or tensor.device.type != device.type):
        return str(tensor.device) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
    return None


class NotMoved(RuntimeError):
    """A batch reached a model or a loss without `.to(device)`."""


class RecordingModel(nn.Module):
    """Wraps a network; `calls` holds (training mode, autograd recording) for every forward pass.

    An input that was not moved to `device` stops the call; `unmoved` then says where it was.
    """

    def __init__(self, net, device):
        super().__init__()
        self.net = net
        self.calls = []
        self.unmoved = None
        self.expected_device = device

    def forward(self, x):
        where = where_unmoved(x, self.expected_device)
        if where:
            self.unmoved = self.unmoved or where
            raise NotMoved("the inputs reached the model without `.to(device)`")
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.net(x)


class RecordingLoss(nn.Module):
    """Wraps a loss; targets that were not moved to `device` stop the call, `unmoved` says where they were."""

    def __init__(self, loss, device):
        super().__init__()
        self.loss = loss
        self.unmoved = None
        self.expected_device = device

    def forward(self, prediction, target):
        where = where_unmoved(target, self.expected_device)
        if where:
            self.unmoved = self.unmoved or where
            raise NotMoved("the targets reached the loss without `.to(device)`")
        return self.loss(prediction, target)


def host_loader(X, y, batch_size):
    """A DataLoader over (X, y) in order, whose batches are HostBatch tensors."""
    X, y = torch.as_tensor(X).as_subclass(HostBatch), torch.as_tensor(y).as_subclass(HostBatch)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=False)


def frozen(module, *prefixes):
    """`module` with the parameters whose names start with one of `prefixes` frozen (requires_grad=False)."""
    for name, parameter in module.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            parameter.requires_grad_(False)
    return module


def parameter_arrays(model):
    """{name: numpy copy} of the model's parameters."""
    return {name: p.detach().cpu().numpy().copy() for name, p in model.named_parameters()}


def grad_arrays(model):
    """{name: numpy copy of .grad, or None} of the model's parameters."""
    return {name: None if p.grad is None else p.grad.detach().cpu().numpy().copy()
            for name, p in model.named_parameters()}


def load_parameters(model, arrays):
    """Copy {name: array} into the model's parameters of those names; returns the model."""
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, array in arrays.items():
            parameters[name].copy_(torch.as_tensor(array))
    return model


def fill_grads(model, arrays):
    """Set the .grad of the model's parameters named in {name: array} to those values; returns the model."""
    parameters = dict(model.named_parameters())
    for name, array in arrays.items():
        p = parameters[name]
        p.grad = torch.as_tensor(array, dtype=p.dtype).to(p.device).clone()
    return model


def linears_in_call_order(model, x, device):
    """The nn.Linear modules `model(x)` calls (x moved to `device`, without gradients), in call order."""
    called, handles = [], []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(lambda m, i, o: called.append(m)))
    try:
        with torch.no_grad():
            model(torch.as_tensor(x).to(device))
    finally:
        for handle in handles:
            handle.remove()
    return called


def outputs_without_grad(model, x, device):
    """model(x) with x moved to `device`, computed without gradient tracking."""
    with torch.no_grad():
        return model(torch.as_tensor(x).to(device))
