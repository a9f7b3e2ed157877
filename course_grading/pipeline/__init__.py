"""Grading a class: intake, the sandbox, the judge and its channels, nbgrader autograde, feedback, CSVs.

Imports the checks (to judge) and course_utils (wire format); never the instructor's tools.
"""
