"""Instructor-only code: hidden checks, reference algorithms and wrong-answer banks.

This package is never part of the student edition (`course publish` leaves it out, and
`course verify` proves no file of the edition mentions it outside hidden-test markers).
"""
