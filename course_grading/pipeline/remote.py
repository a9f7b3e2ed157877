"""The judge's side of a hidden check: channels to the kernel that holds the student's objects.

A check receives `Remote` proxies (course_grading.checks.proxy) of the student's objects; calling
one, reading an attribute or applying an operator is a request through a channel to the kernel
that holds the real object; the answer is plain data (course_utils.wire) or another proxy. Arguments the student's code changed
in place (arrays, dicts, lists, Generators) are changed here too after the call. The reference
computation and the comparison run here, in the judge, where student code cannot reach them.

`SocketChannel` talks to a sandboxed kernel (grading); `LocalChannel` serves the same requests in
this process (an instructor running the source notebook, quickcheck), so both behave alike.
"""
import ast
import contextlib
import importlib
import io
import socket

import numpy as np

from course_grading.checks.harness import require_own
from course_grading.checks.proxy import Remote
from course_utils import wire
from course_utils.checks import CheckFailed, student_error


class Channel:
    """Requests to the kernel that holds the student's objects (subclasses say how they travel)."""

    def __init__(self):
        self.callbacks = {}

    def ref_of(self, value):
        if isinstance(value, Remote):
            return {"$ref": [value._ref, value._type, value._name]}
        if callable(value):  # a function of the judge that student code may call back
            self.callbacks[len(self.callbacks) + 1] = value
            return {"$cb": len(self.callbacks)}
        raise TypeError(f"{type(value).__name__} cannot be sent to the student's kernel")

    def object_of(self, tree):
        kind, body = next(iter(tree.items()))
        if kind != "$ref":
            raise wire.WireError(f"unexpected {kind} from the kernel")
        name = body[2] if len(body) > 2 and isinstance(body[2], str) else None
        return Remote(self, body[0], str(body[1])[:80], name and name[:80])

    def ask(self, message, seconds=10):
        """Send one request, return its decoded answer; a student error is raised as an exception."""
        buffers = []
        message = {k: (v if k in ("op", "name", "path") else wire.encode(v, self.ref_of, buffers))
                   for k, v in message.items()}
        message["seconds"] = seconds
        reply, reply_buffers = self.request(message, buffers, seconds)
        return self.answer(reply, reply_buffers)

    def answer(self, reply, buffers):
        if "error" in reply:
            raise student_error(reply["error"])
        return wire.decode(reply["ok"], buffers, self.object_of)

    def call(self, target, args, kwargs, seconds=10, strict=False):
        """target(*args, **kwargs) in the kernel; `strict` makes numpy's overflow and invalid warnings errors."""
        buffers = []
        message = {"op": "call", "seconds": seconds, "strict": strict,
                   "target": wire.encode(target, self.ref_of, buffers),
                   "args": wire.encode(list(args), self.ref_of, buffers),
                   "kwargs": wire.encode(dict(kwargs), self.ref_of, buffers)}
        reply, reply_buffers = self.request(message, buffers, seconds)
        result = self.answer(reply, reply_buffers)
        after = wire.decode(reply["after"], reply_buffers, self.object_of)
        for before, now in zip((*args, *kwargs.values()), after):
            _sync(before, now)
        return result

    def callback(self, message, buffers):
        """Run a judge function the student's code called back; (reply, buffers)."""
        out = []
        try:
            args, kwargs = wire.decode(message["args"], buffers, self.object_of)
            result = self.callbacks[message["id"]](*args, **kwargs)
            return {"ok": wire.encode(result, self.ref_of, out)}, out
        except Exception as error:  # noqa: BLE001 - the student passed our function something odd
            return {"error": {"type": type(error).__name__, "message": str(error)}}, []


def _sync(before, now):
    """Make `before` (ours) equal to `now` (the kernel's after the call), in place where possible."""
    if isinstance(before, np.ndarray) and isinstance(now, np.ndarray):
        if before.shape == now.shape and before.flags.writeable:
            np.copyto(before, now, casting="unsafe")
    elif isinstance(before, dict) and isinstance(now, dict):
        for key in [k for k in before if k not in now]:
            del before[key]
        for key, value in now.items():
            if key in before and _same_kind(before[key], value):
                _sync(before[key], value)
            else:
                before[key] = value
    elif isinstance(before, list) and isinstance(now, list):
        if len(before) == len(now) and all(_same_kind(b, n) for b, n in zip(before, now)):
            for b, n in zip(before, now):
                _sync(b, n)
        else:
            before[:] = now
    elif isinstance(before, np.random.Generator) and isinstance(now, np.random.Generator):
        before.bit_generator.state = now.bit_generator.state


def _same_kind(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape
    return isinstance(a, (dict, list, np.random.Generator)) and type(a) is type(b)


class LocalChannel(Channel):
    """The student's objects in this very process, reached through the same requests and copies."""

    def __init__(self):
        super().__init__()
        from course_utils.judge import Kernel
        self.kernel = Kernel(lambda message, buffers: self.callback(message, buffers))

    def request(self, message, buffers, seconds):
        return self.kernel.handle(message, buffers)

    def proxy(self, obj):
        buffers = []
        return wire.decode(wire.encode(obj, self.kernel.ref, buffers), buffers, self.object_of)

    def vet(self, obj, name, numpy_only):
        require_own(self.kernel.objects[obj._ref], numpy_only)


class SocketChannel(Channel):
    """A sandboxed kernel at the other end of a socket; `sources` are the notebook's code cells so far."""

    def __init__(self, sock, sources):
        super().__init__()
        self.sock, self.sources = sock, sources

    def request(self, message, buffers, seconds):
        self.sock.settimeout(seconds + 10)
        try:
            wire.send(self.sock, {"req": message}, buffers)
            while True:
                incoming, incoming_buffers = wire.receive(self.sock)
                if "rep" in incoming:
                    return incoming["rep"], incoming_buffers
                reply, out = self.callback(incoming["req"], incoming_buffers)
                wire.send(self.sock, {"rep": reply}, out)
        except socket.timeout:
            raise TimeoutError from None
        except (OSError, EOFError, wire.WireError, KeyError, TypeError) as error:
            raise CheckFailed(f"the notebook's kernel stopped answering the grader ({error})") from None

    def vet(self, obj, name, numpy_only):
        definition = find_definition(self.sources, name)
        if definition is None:
            raise CheckFailed(f"{name} must be defined in your notebook (with `def {name}` or `class {name}`).")
        if numpy_only:
            used = torch_uses(self.sources, definition)
            if used:
                raise CheckFailed(f"{name} must use numpy only, but it uses {', '.join(used)}.")


def _parse(source):
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def find_definition(sources, name):
    """The last top-level `def name` / `class name` in the notebook's code cells, or None."""
    found = None
    for source in sources:
        for node in _parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                found = node
    return found


DYNAMIC = {"__import__", "importlib", "exec", "eval", "globals", "getattr", "sys"}


def torch_uses(sources, definition):
    """Names in `definition` bound to torch at the notebook's top level, or used to reach it dynamically."""
    torch_names = set()
    for source in sources:
        for node in _parse(source).body:
            if isinstance(node, ast.Import):
                torch_names |= {(a.asname or a.name).split(".")[0] for a in node.names
                                if a.name.split(".")[0] == "torch"}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
                torch_names |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Assign) and _loads(node.value) & torch_names:
                torch_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    inner_imports = {a.name.split(".")[0] for n in ast.walk(definition) if isinstance(n, ast.Import) for a in n.names}
    inner_imports |= {(n.module or "").split(".")[0] for n in ast.walk(definition) if isinstance(n, ast.ImportFrom)}
    used = sorted(_loads(definition) & torch_names)
    if "torch" in inner_imports:
        used.append("an import of torch")
    dynamic = sorted(_loads(definition) & DYNAMIC)
    if dynamic:
        used.append(f"dynamic lookups ({', '.join(dynamic)}) the grader cannot follow")
    return used


def _loads(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def resolve_check(name):
    """course_grading.checks.unitNN.check_x for 'unitNN.check_x' (only names of that form)."""
    module, _, check = name.partition(".")
    if not (module.startswith("unit") and module[4:].isdigit() and check.startswith("check_")):
        raise CheckFailed(f"unknown hidden check {name!r}")
    return getattr(importlib.import_module(f"course_grading.checks.{module}"), check)


def run(check_name, channel, objects):
    """{'passed': bool, 'message': str, 'notes': str} of one hidden check on proxies of the student's
    objects; `notes` is what the check printed for the student (the kernel prints it in the cell)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            resolve_check(check_name)(*objects)
    except CheckFailed as error:
        return {"passed": False, "message": str(error), "notes": printed.getvalue()}
    return {"passed": True, "message": "", "notes": printed.getvalue()}


def run_local(check_name, student_objects):
    """A check in the instructor's own kernel, through the same requests as under grading."""
    channel = LocalChannel()
    return run(check_name, channel, [channel.proxy(obj) for obj in student_objects])
