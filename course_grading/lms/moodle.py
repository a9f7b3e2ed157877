"""Moodle: its "Download all submissions" zip, its grade export (the roster) and import CSV, and the
zip of feedback files that "Upload multiple feedback files in a zip" accepts.

Moodle names each downloaded file `Full Name_participantid_assignsubmission_file_name` (flat) or puts it
in a folder `Full Name_participantid_assignsubmission_file_/` (`..._file/` since Moodle 4.1); the
participant id is the assignment's own id for the student. Its feedback import reads the same form
with `assignfeedback` in place of `assignsubmission`.
"""
import re

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from course_grading.lms.common import Person, collector_match, valid_id

FIXED = ["First name", "Last name", "ID number", "Email address"]


class MoodleCollector(FileNameCollectorPlugin):
    """nbgrader collector plugin for Moodle file names (also usable as `nbgrader zip_collect --collector`)."""

    named_regexp = Unicode(r"(?P<full_name>[^_/]+)_(?P<participant_id>\d+)_assignsubmission_file"
                           r"(?:_/|/|_)(?P<file_id>[^/]+)").tag(config=True)

    def collect(self, submitted_file):
        info = collector_match(self.named_regexp, submitted_file)
        if info:
            info["student_id"] = info["participant_id"]
        return info


def person(row):
    """The roster's Person of one row of a Moodle grade export: keyed by ID number, else email."""
    email, number = (row.get("Email address") or "").strip(), (row.get("ID number") or "").strip()
    key = number if valid_id(number) else email
    if not valid_id(key):
        return None
    return Person(key, (row.get("First name") or "").strip(), (row.get("Last name") or "").strip(), email,
                  key, row)


def same_name(a, b):
    """Moodle writes the full name with `_` turned into spaces; compare ignoring case and spacing."""
    def norm(text):
        return " ".join(text.replace("_", " ").split()).casefold()
    return norm(a) == norm(b)


def feedback_name(info, unit):
    """A feedback file's name in the zip: the download's prefix with `assignfeedback`, flat."""
    name = re.sub(r"[\\/:*?\"<>|]", "", info["full_name"].replace("_", " "))
    return f"{name}_{info['participant_id']}_assignfeedback_file_{unit}_feedback.html"
