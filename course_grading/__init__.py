"""Instructor-only code: the `course` CLI and the rooms behind it.

    checks/    hidden checks of each unit (unitNN.py) and what they share
    banks/     wrong-answer and correct-alternative banks that prove the checks
    pipeline/  grading a class: intake, sandbox, judge, nbgrader autograde, feedback, CSVs
    tools/     build, verify, run, publish, demo, bench, quickcheck
    course.py, samples.py   the course on disk and its notebooks (used by all of the above)

Never part of the student edition (`course publish` leaves it out, and `course verify` proves no file
of the edition mentions it outside hidden-test markers).
"""
