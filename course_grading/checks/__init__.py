"""The hidden checks, one module per unit (`unitNN.check_*`), and what they share (harness, proxy).

They run in the judge, outside the student's kernel, on proxies of the student's objects; they import
only each other and the student package's wire format and visible-check helpers (course_utils).
"""
