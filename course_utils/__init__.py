"""Helpers shared by every notebook of the course: data, plots, device choice and visible checks.

Nothing in here solves an exercise.
"""
from course_utils.setup import setup

__all__ = ["setup"]
