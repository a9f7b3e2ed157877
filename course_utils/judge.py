"""The student kernel's side of a hidden check: answer the judge's requests, then show its verdict.

A hidden test cell calls `hidden_check("unitNN.<check>", <the student's functions or classes>)`.
Under grading, the environment variable COURSE_JUDGE names a socket of the judge, a process outside
this kernel's sandbox that holds the check: it asks this kernel to call the student's functions on
inputs it chooses, receives plain data back (course_utils.wire), computes the reference and
compares, and records the verdict where this kernel cannot reach it. Elsewhere (an instructor
running the source notebook, CI) the grader's in-process judge, registered as the entry point
`course_utils.hidden_checks`, runs the check here through the same requests.
Nothing in this module knows a solution or a check. Loaded as an IPython extension under grading, it
also keeps each cell's printed output to COURSE_OUTPUT_LIMIT characters inside the kernel.
"""
import importlib
import operator
import os
import socket
import sys
import warnings
from importlib.metadata import entry_points

import numpy as np

from course_utils import wire
from course_utils.checks import CheckFailed, student_function, student_location, time_limit

OPERATORS = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "neg", "pos", "abs",
    "eq", "ne", "lt", "le", "gt", "ge", "truth", "getitem", "contains")}
OPERATORS.update(float=float, int=int, len=len, bool=bool, str=str, repr=repr)
RESOLVABLE = ("torch.", "numpy.", "math.", "course_utils.")
MAX_TEXT = 2000


class Kernel:
    """Objects the judge refers to, and the requests it may make about them."""

    def __init__(self, request_callback):
        self.objects = {}
        self.request_callback = request_callback  # sends a request to the judge and returns its reply

    def ref(self, obj):
        self.objects[len(self.objects) + 1] = obj
        name = getattr(obj, "__name__", None) if callable(obj) else None
        return {"$ref": [len(self.objects), type(obj).__name__, name if isinstance(name, str) else None]}

    def resolve(self, tree):
        kind, body = next(iter(tree.items()))
        if kind == "$ref":
            return self.objects[body[0]]
        if kind == "$cb":
            return _Callback(self, body)
        raise wire.WireError(f"unknown reference {kind}")

    def handle(self, message, buffers):
        """(reply, reply buffers) for one request of the judge."""
        out = []
        try:
            decode = lambda tree: wire.decode(tree, buffers, self.resolve)  # noqa: E731
            op = message["op"]
            seconds = float(message.get("seconds", 10))
            if op == "call":
                target, args, kwargs = decode(message["target"]), decode(message["args"]), decode(message["kwargs"])
                with _student_code(seconds, strict=message.get("strict", False)):
                    result = target(*args, **kwargs)
                mutable = [a for a in (*args, *kwargs.values())]
                return {"ok": wire.encode(result, self.ref, out),
                        "after": wire.encode(mutable, self.ref, out)}, out
            if op == "getattr":
                with _student_code(seconds):
                    value = getattr(decode(message["target"]), message["name"])
                return {"ok": wire.encode(value, self.ref, out)}, out
            if op == "setattr":
                with _student_code(seconds):
                    setattr(decode(message["target"]), message["name"], decode(message["value"]))
                return {"ok": None}, out
            if op == "operator":
                function = OPERATORS[message["name"]]
                args = decode(message["args"])
                with _student_code(seconds):
                    value = function(*args)
                return {"ok": wire.encode(value, self.ref, out)}, out
            if op == "setglobal":  # e.g. the judge's reference for a helper the checked function calls
                namespace = decode(message["target"]).__globals__
                previous = namespace.get(message["name"], _MISSING)
                value = decode(message["value"])
                if value is None:
                    namespace.pop(message["name"], None)
                else:
                    namespace[message["name"]] = value
                return {"ok": None if previous is _MISSING else wire.encode(previous, self.ref, out)}, out
            if op == "isinstance":
                obj, cls = decode(message["args"])
                return {"ok": isinstance(obj, cls)}, out
            if op == "resolve":
                path = message["path"]
                if not path.startswith(RESOLVABLE):
                    raise ValueError(f"{path} cannot be resolved")
                module, name = path.rsplit(".", 1)
                return {"ok": wire.encode(getattr(importlib.import_module(module), name), self.ref, out)}, out
            raise ValueError(f"unknown request {op!r}")
        except KeyboardInterrupt:  # the grader interrupting a cell that ran too long
            raise
        except BaseException as error:  # noqa: BLE001 - every failure of student code goes back as data
            return {"error": describe(error)}, []


def describe(error):
    """A student's exception as plain data: its type, message and the notebook line it came from."""
    return {"type": type(error).__name__, "message": _short(_safe_str(error)),
            "where": student_location(error.__traceback__),
            "function": student_function(error.__traceback__)}


def _safe_str(error):
    try:
        return str(error)
    except BaseException:  # noqa: BLE001 - a student's exception whose __str__ fails
        return "<no message>"


def _short(text):
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " ..."


_MISSING = object()


class _student_code:
    """Student code under a time limit, with warnings silenced (stderr zeroes an nbgrader cell).

    `strict` turns numpy's overflow, invalid and divide warnings into exceptions instead.
    """

    def __init__(self, seconds, strict=False):
        self.limit = time_limit(seconds)
        self.warnings = warnings.catch_warnings()
        self.strict = strict
        self.errstate = (np.errstate(over="raise", invalid="raise", divide="raise", under="ignore") if strict
                         else np.errstate(all="ignore"))

    def __enter__(self):
        self.warnings.__enter__()
        warnings.simplefilter("error" if self.strict else "ignore")
        self.errstate.__enter__()
        self.limit.__enter__()

    def __exit__(self, *exc):
        try:
            self.limit.__exit__(*exc)
        finally:
            self.errstate.__exit__(*exc)
            self.warnings.__exit__(*exc)
        return False


class _Callback:
    """A function of the judge (say the f of a numerical gradient) that student code may call."""

    def __init__(self, kernel, ident):
        self.kernel, self.ident = kernel, ident

    def __call__(self, *args, **kwargs):
        buffers = []
        tree = wire.encode([list(args), kwargs], self.kernel.ref, buffers)
        reply, reply_buffers = self.kernel.request_callback({"op": "callback", "id": self.ident, "args": tree},
                                                            buffers)
        if "error" in reply:
            raise RuntimeError(reply["error"]["message"])
        return wire.decode(reply["ok"], reply_buffers, self.kernel.resolve)


class _Connection:
    """A socket to the judge: requests both ways, each answered before the next is read."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.kernel = Kernel(self.request)

    def request(self, message, buffers=()):
        wire.send(self.sock, {"req": message}, buffers)
        return self.serve()

    def serve(self):
        """Answer the judge's requests until a reply (or the verdict) arrives; return it."""
        while True:
            message, buffers = wire.receive(self.sock)
            if "req" in message:
                reply, out = self.kernel.handle(message["req"], buffers)
                wire.send(self.sock, {"rep": reply}, out)
            else:
                return message["rep"], buffers


def hidden_check(name, *student_objects):
    """Run hidden check `name` ('unitNN.check_x') on the student's objects; raise CheckFailed if it fails."""
    path = os.environ.get("COURSE_JUDGE")
    if path:
        verdict = _judged(path, name, student_objects)
    else:
        verdict = _local(name, student_objects)
    if verdict.get("notes"):
        print(str(verdict["notes"]).rstrip())
    if verdict.get("passed"):
        print(f"{name.rsplit('.', 1)[-1]}: all hidden checks passed")
        return
    raise CheckFailed(verdict.get("message") or "the hidden check failed")


def _judged(path, name, student_objects):
    try:
        connection = _Connection(path)
    except OSError as error:
        return {"passed": False, "message": f"could not reach the grader's judge ({error})"}
    buffers = []
    objects = [wire.encode(obj, connection.kernel.ref, buffers) for obj in student_objects]
    try:
        reply, _ = connection.request({"op": "begin", "check": name, "objects": objects}, buffers)
    except (OSError, EOFError, wire.WireError) as error:
        return {"passed": False, "message": f"the connection to the grader's judge broke ({error})"}
    finally:
        connection.sock.close()
    return reply


def _local(name, student_objects):
    """The instructor's own run: the in-process judge the grader registers as an entry point, if any."""
    runners = entry_points(group="course_utils.hidden_checks")
    if not runners:
        return {"passed": False, "message": "the hidden checks run only when the instructor grades"}
    try:
        run_local = next(iter(runners)).load()
    except ImportError:  # an environment that lost the grader but kept its registration
        return {"passed": False, "message": "the hidden checks run only when the instructor grades"}
    return run_local(name, student_objects)


def load_ipython_extension(shell):
    """Under grading: a cell's stdout and stderr together keep COURSE_OUTPUT_LIMIT characters and one more
    (which tells the grader the cell went over), cut here, so that a flood of output cannot fill the
    kernel's memory before the grader cuts it. The cut goes on top of whatever writes the cell's output
    (IPython 9 keeps a copy of it all for its history), from pre_execute to post_execute."""
    limit = int(os.environ.get("COURSE_OUTPUT_LIMIT") or 0)
    if not limit:
        return
    uncut = {}

    def cut():
        written = [0]
        for stream in (sys.stdout, sys.stderr):
            uncut[stream] = stream.write
            stream.write = _capped(stream.write, written, limit + 1)

    def restore():
        for stream, write in uncut.items():
            stream.write = write
        uncut.clear()

    shell.events.register("pre_execute", cut)
    shell.events.register("post_execute", restore)


def _capped(write, written, most):
    def capped(text):
        room = most - written[0]
        if room > 0:
            written[0] += min(len(text), room)
            write(text[:room])
        return len(text)
    return capped
