"""The student's objects as the hidden checks see them: `Remote` proxies living in the student's kernel.

Calling a proxy, reading an attribute or applying an operator is a request through the proxy's
channel (course_grading.pipeline.remote) to the kernel that holds the real object; the answer is
plain data (course_utils.wire) or another proxy. This module is all a check needs of that machinery.
"""
import contextlib


class Remote:
    """A student's object living in their kernel; every use is a request to that kernel."""

    __slots__ = ("_channel", "_ref", "_type", "_name")

    def __init__(self, channel, ref, type_name, name=None):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_name", name)

    @property
    def __name__(self):
        return self._name or self._type

    def __call__(self, *args, **kwargs):
        return self._channel.call(self, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._channel.ask({"op": "getattr", "target": self, "name": name})

    def __setattr__(self, name, value):
        self._channel.ask({"op": "setattr", "target": self, "name": name, "value": value})

    def __repr__(self):
        return f"<{self._type} object>"

    __hash__ = object.__hash__

    def __iter__(self):
        raise TypeError(f"a {self._type} from the student's kernel cannot be iterated here")


def _operator(name, reflected=False):
    def apply(self, *others):
        args = (*others, self) if reflected else (self, *others)
        return self._channel.ask({"op": "operator", "name": name, "args": list(args)})
    return apply


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul"):
    setattr(Remote, f"__{_name}__", _operator(_name))
    setattr(Remote, f"__r{_name}__", _operator(_name, reflected=True))
for _name in ("neg", "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge", "getitem", "contains"):
    setattr(Remote, f"__{_name}__", _operator(_name))
for _dunder, _name in (("__bool__", "truth"), ("__float__", "float"), ("__int__", "int"), ("__len__", "len")):
    setattr(Remote, _dunder, _operator(_name))


def is_instance(obj, cls):
    """isinstance() asked of the kernel that holds `obj` (a proxy) and `cls` (a proxy)."""
    if not isinstance(obj, Remote):
        return False
    return bool(obj._channel.ask({"op": "isinstance", "args": [obj, cls]}))


@contextlib.contextmanager
def global_replaced(fn, name, value):
    """While checking `fn` (a proxy), its global `name` is `value` (a function of ours, called back)."""
    previous = fn._channel.ask({"op": "setglobal", "target": fn, "name": name, "value": value})
    try:
        yield
    finally:
        fn._channel.ask({"op": "setglobal", "target": fn, "name": name, "value": previous})


def type_name(obj):
    """The class name of a value, a proxy's as the kernel reported it."""
    return obj._type if isinstance(obj, Remote) else type(obj).__name__
