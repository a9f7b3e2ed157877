"""Visible-test helpers: run a student's code safely and say precisely what is wrong.

Every message names the output, the shape, the largest error and where it is. Nothing here
knows a solution: the expected values always come from the test that calls these helpers.
"""
import contextlib
import inspect
import signal
import threading
import traceback
import warnings

import numpy as np


class CheckFailed(AssertionError):
    """A check failed; the message is written for the student."""


def _notebook_frame(tb):
    """The innermost frame of traceback `tb` that comes from a notebook cell, or None."""
    found = None
    for frame in traceback.extract_tb(tb):
        if "ipykernel" in frame.filename or frame.filename.startswith("<ipython-input"):
            found = frame
    return found


def student_location(tb):
    """' (in f, line N: `code`)' for the innermost frame that comes from a notebook cell, else ''."""
    frame = _notebook_frame(tb)
    return f" (in {frame.name}, line {frame.lineno}: `{(frame.line or '').strip()}`)" if frame else ""


def student_function(tb):
    """The name of the notebook function the innermost notebook frame of `tb` runs, else ''."""
    frame = _notebook_frame(tb)
    return frame.name if frame and not frame.name.startswith("<") else ""


class StudentError(Exception):
    """An exception raised by student code in another process, described as data."""

    def __init__(self, type_name, message, where=""):
        super().__init__(message)
        self.type_name, self.where = type_name, where


_SPECIAL = {"NotImplementedError": NotImplementedError, "TimeoutError": TimeoutError,
            "RecursionError": RecursionError, "FloatingPointError": FloatingPointError,
            "RuntimeWarning": RuntimeWarning, "OverflowError": OverflowError}


def student_error(described):
    """The exception to raise for a description made by course_utils.judge.describe."""
    special = _SPECIAL.get(described["type"])
    if special is not None:
        error = special(described["message"])
        error.function = described.get("function", "")
        return error
    return StudentError(described["type"], described["message"], described.get("where", ""))


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeoutError in the main thread after `seconds` (no limit where SIGALRM cannot be used)."""
    timer = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not timer:
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class checking:
    """Run student code under a time limit with warnings silenced; turn any error into CheckFailed.

    nbgrader scores a test cell that writes to stderr as zero, so numpy/torch warnings raised by a
    correct solution are swallowed here; the checks look for NaN and inf explicitly instead. A class,
    not a generator, so that a failure shows one short message with no contextlib frames.
    """

    def __init__(self, what, seconds=10):
        self.what, self.seconds = what, seconds

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(time_limit(self.seconds))
        self._stack.enter_context(warnings.catch_warnings())
        self._stack.enter_context(np.errstate(all="ignore"))
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, kind, error, tb):
        self._stack.close()
        if kind is None or not issubclass(kind, Exception) or issubclass(kind, CheckFailed):
            return False
        what = self.what
        if issubclass(kind, NotImplementedError):
            function = getattr(error, "function", "") or student_function(tb) or "it"
            failure = f"{what}: not implemented yet ({function} still raises NotImplementedError)."
        elif issubclass(kind, TimeoutError):
            failure = f"{what}: did not finish within {self.seconds} s. Look for a loop that never ends."
        elif issubclass(kind, RecursionError):
            failure = f"{what}: recursion too deep. Look for a function that calls itself without end."
        elif issubclass(kind, StudentError):
            failure = f"{what} raised {error.type_name}: {error}{error.where}"
        else:  # the student's code raised: report it, never crash the grader
            failure = f"{what} raised {kind.__name__}: {error}{student_location(tb)}"
        raise CheckFailed(failure) from None


def as_array(value, what):
    """`value` as a float/int numpy array, or CheckFailed saying what came back instead."""
    if value is None:
        raise CheckFailed(f"{what}: got None. Did you forget a `return`?")
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        raise CheckFailed(f"{what}: got a torch tensor; return a numpy array.")
    try:
        array = np.asarray(value)
    except Exception as error:
        raise CheckFailed(f"{what}: expected an array, got {type(value).__name__} ({error}).") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise CheckFailed(f"{what}: expected numbers, got {type(value).__name__} of dtype {array.dtype}.")
    return array


def _fmt(x):
    return np.array2string(np.asarray(x), precision=6, threshold=12, edgeitems=3)


def expect_close(actual, expected, what, rtol=1e-7, atol=1e-10, hint=""):
    """Fail unless `actual` has `expected`'s shape, is finite where it is, and matches within tolerance."""
    actual = as_array(actual, what)
    expected = np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        raise CheckFailed(f"{what}: shape {actual.shape}, expected {expected.shape}. {hint}".strip())
    actual = actual.astype(float)
    bad = ~np.isfinite(actual) & np.isfinite(expected)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckFailed(f"{what}: contains {actual[index]} at index {index} where a finite value "
                          f"({expected[index]:.6g}) was expected. {hint}".strip())
    error = np.abs(actual - expected)
    allowed = atol + rtol * np.abs(expected)
    if (error > allowed).any():
        index = np.unravel_index(np.argmax(error - allowed), error.shape)
        index = tuple(int(i) for i in index)
        raise CheckFailed(
            f"{what}: wrong values. Largest error {error[index]:.3g} at index {index} "
            f"(got {actual[index]:.8g}, expected {expected[index]:.8g}).\n"
            f"  got      {_fmt(actual)}\n  expected {_fmt(expected)}\n{hint}".rstrip())


def expect_equal(actual, expected, what, hint=""):
    """Exact comparison for labels, counts and masks."""
    actual = as_array(actual, what)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise CheckFailed(f"{what}: shape {actual.shape}, expected {expected.shape}. {hint}".strip())
    wrong = actual != expected
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        raise CheckFailed(f"{what}: {int(wrong.sum())} of {wrong.size} entries differ; first at index {index} "
                          f"(got {actual[index]}, expected {expected[index]}).\n"
                          f"  got      {_fmt(actual)}\n  expected {_fmt(expected)}\n{hint}".rstrip())


def expect_tuple(result, names, what):
    """Fail unless `result` is a tuple/list of len(names) items; return it as a tuple."""
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise CheckFailed(f"{what} must return a tuple ({', '.join(names)}); got {got}.")
    return tuple(result)


def expect_scalar(value, what):
    """A Python float from a number or a size-1 array, else CheckFailed."""
    array = as_array(value, what)
    if array.size != 1:
        raise CheckFailed(f"{what}: expected a single number, got an array of shape {array.shape}.")
    number = float(array.reshape(()))
    if not np.isfinite(number):
        raise CheckFailed(f"{what}: got {number}; expected a finite number.")
    return number


def referenced_packages(obj):
    """{global name: top-level package of what it names} for a function or a class's methods."""
    if inspect.isfunction(obj):
        functions = [obj]
    elif isinstance(obj, type):
        members = vars(obj).values()
        functions = [v for v in members if inspect.isfunction(v)]
        functions += [v.fget for v in members if isinstance(v, property) and v.fget]
    else:
        functions = []
    found = {}
    for fn in functions:
        code_objects = [fn.__code__]
        while code_objects:
            code = code_objects.pop()
            code_objects += [c for c in code.co_consts if inspect.iscode(c)]
            for name in code.co_names:
                value = fn.__globals__.get(name)
                origin = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "") or ""
                found[name] = origin.split(".")[0]
    return found


def uses_torch(function):
    """Names of torch objects that `function` (or a class's methods) refers to through its globals."""
    return sorted(name for name, package in referenced_packages(function).items() if package == "torch")


def expect_numpy_only(function, what):
    """Fail when `function` uses torch: the exercise asks for numpy alone."""
    names = uses_torch(function)
    if names:
        raise CheckFailed(f"{what} must use numpy only, but it uses torch ({', '.join(names)}).")
