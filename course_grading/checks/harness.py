"""What every hidden check shares: student-object hygiene, clean failures, float64 references.

Hidden test cells call `course_utils.judge.hidden_check("unitNN.check_x", ...)`; the `check_x`
functions of `course_grading.checks.unitNN` run in the judge (course_grading.pipeline.remote) on proxies of the
student's objects and are decorated with `hidden_check`, so any failure becomes one message.
"""
import functools
import inspect

import numpy as np

from course_grading.checks.proxy import Remote, is_instance, type_name
from course_utils.checks import (CheckFailed, checking, expect_close, expect_numpy_only,
                                 referenced_packages)

__all__ = ["CheckFailed", "Remote", "checking", "expect_close", "hidden_check", "is_instance",
           "numerical_gradient_ref", "rel_error", "student_call", "type_name"]


def require_own(obj, numpy_only=False):
    """Student objects must be written in the notebook, not imported from the grader or elsewhere."""
    name = getattr(obj, "__name__", type(obj).__name__)
    module = getattr(obj, "__module__", None)
    if module != "__main__":
        raise CheckFailed(f"{name} must be defined in your notebook (it comes from module {module!r}).")
    for ref, package in referenced_packages(obj).items():
        if package == "course_grading":
            raise CheckFailed(f"{name} calls the grader's own code ({ref}); write your own.")
    if numpy_only and (inspect.isfunction(obj) or isinstance(obj, type)):
        expect_numpy_only(obj, obj.__name__)


def hidden_check(numpy_only=False):
    """Decorate a check taking proxies of the student's objects: vet them, run, re-raise failures cleanly.

    The check's parameter names are the names of the student's objects in the notebook.
    """
    def decorate(check):
        names = list(inspect.signature(check).parameters)

        @functools.wraps(check)
        def run(*student_objects, **options):
            failure = None
            try:
                for name, obj in zip(names, student_objects):
                    if obj is None:
                        raise CheckFailed(f"{name} is None: define it in the exercise cell.")
                    if not isinstance(obj, Remote):
                        raise CheckFailed(f"{name} must be a function or class defined in your notebook.")
                    obj._channel.vet(obj, name, numpy_only)
                check(*student_objects, **options)
            except CheckFailed as error:
                failure = str(error)
            except Exception as error:  # a bug in the student's return value that our check tripped on
                failure = f"unexpected result: {type(error).__name__}: {error}"
            if failure is not None:
                raise CheckFailed(failure)
        return run
    return decorate


def student_call(fn, *args, what=None, seconds=10, **kwargs):
    """Call a student function (a proxy) with a time limit; errors become CheckFailed naming `what`."""
    what = what or f"{type_name(fn)}(...)"
    with checking(what, seconds=seconds):
        if isinstance(fn, Remote):
            return fn._channel.call(fn, args, kwargs, seconds=seconds)
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
