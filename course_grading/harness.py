"""What every hidden check shares: student-object hygiene, clean failures, float64 references.

Hidden test cells call `check_*` functions of `course_grading.unitNN`; those are decorated with
`hidden_check`, so a failure reaches the student as one message raised from here, with no frame
(and no source line) of the reference code in the traceback nbgrader shows in its feedback.
"""
import functools
import inspect

import numpy as np

from course_utils.checks import (CheckFailed, checking, expect_close, expect_numpy_only,
                                 referenced_packages)

__all__ = ["CheckFailed", "checking", "expect_close", "hidden_check", "numerical_gradient_ref",
           "rel_error", "student_call"]


def _require_own(obj):
    """Student objects must be written in the notebook, not imported from the grader or elsewhere."""
    name = getattr(obj, "__name__", type(obj).__name__)
    if obj is None:
        raise CheckFailed(f"{name} is None: define it in the exercise cell.")
    module = getattr(obj, "__module__", None)
    if module != "__main__":
        raise CheckFailed(f"{name} must be defined in your notebook (it comes from module {module!r}).")
    for ref, package in referenced_packages(obj).items():
        if package == "course_grading":
            raise CheckFailed(f"{name} calls the grader's own code ({ref}); write your own.")


def hidden_check(numpy_only=False):
    """Decorate a check taking the student's objects: vet them, run, re-raise failures cleanly."""
    def decorate(check):
        @functools.wraps(check)
        def run(*student_objects, **options):
            failure = None
            try:
                for obj in student_objects:
                    _require_own(obj)
                    if numpy_only and (inspect.isfunction(obj) or isinstance(obj, type)):
                        expect_numpy_only(obj, obj.__name__)
                check(*student_objects, **options)
            except CheckFailed as error:
                failure = str(error)
            except Exception as error:  # a bug in the student's return value that our check tripped on
                failure = f"unexpected result: {type(error).__name__}: {error}"
            if failure is not None:
                raise CheckFailed(failure)
            print(f"{check.__name__}: all hidden checks passed")
        return run
    return decorate


def student_call(fn, *args, what=None, seconds=10, **kwargs):
    """Call a student function under `checking` and return its result."""
    what = what or f"{getattr(fn, '__name__', 'your function')}(...)"
    with checking(what, seconds=seconds):
        return fn(*args, **kwargs)


def rel_error(actual, expected):
    """max |a - e| / max(|a| + |e|, tiny): the relative error used against torch float64."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(actual) + np.abs(expected), 1e-300),
                        initial=0.0))


def numerical_gradient_ref(f, x, h=1e-5):
    """Float64 centred differences of scalar f at x (x is restored)."""
    x = np.asarray(x, dtype=float)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        plus = f(x)
        x[index] = old - h
        minus = f(x)
        x[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad
