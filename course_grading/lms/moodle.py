"""Moodle: its "Download all submissions" zip, its grading worksheet (the submission times), its grade
export (the roster) and import CSV, and the zip that "Upload multiple feedback files in a zip" accepts.

Moodle names each downloaded file `Full Name_participantid_assignsubmission_file_name` (flat) or puts it
in a folder `Full Name_participantid_assignsubmission_file/` (mod/assign/classes/downloader.php,
get_student_prefix and load_submissionplugin_filelist; other submission plugins in their own,
`..._assignsubmission_onlinetext/onlinetext.html`): the full name in the site's name order with `_`
turned into spaces and passed through clean_filename (lib/moodlelib.php, PARAM_FILE: control characters
and & < > " ` | ' : \\ / removed), or "Participant" under blind marking; the participant id is the
assignment's own id for the student. The zip's entries are dated when the zip was made (download_zip
passes no time to files/classes/local/archive_writer/zip_writer.php, so ZipStream takes the current
time), not when they were handed in: the time is in the grading worksheet (Submissions > Download grading
worksheet: mod/assign/feedback/offline/locallib.php download_grades, mod/assign/gradingtable.php
col_timesubmitted: `userdate` with its default format, "Friday, 5 February 2027, 9:00 PM", in the
downloading user's time zone, to the minute, "-" for none), keyed by the same participant id
(col_recordid: "Participant 501"), with the name and email where the downloading user may see them.
"""
import csv
import io
import re
from pathlib import Path

from dateutil import parser, tz
from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from course_grading.lms.common import LmsError, Person, collector_match, valid_id

FIXED = ["First name", "Last name", "ID number", "Email address"]
WORKSHEET = ("Identifier", "Last modified (submission)")
BLIND = "Participant"  # the name in file names under blind marking (downloader.php get_student_prefix)


class MoodleCollector(FileNameCollectorPlugin):
    """nbgrader collector plugin for Moodle file names (also usable as `nbgrader zip_collect --collector`)."""

    named_regexp = Unicode(r"(?P<full_name>[^_/]+)_(?P<participant_id>\d+)_assignsubmission_[a-z]+?"
                           r"(?:_/|/|_)(?P<file_id>[^/]+)").tag(config=True)  # file, onlinetext, ...

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


def clean_filename(text):
    """Moodle's clean_filename (PARAM_FILE) of a full name after the downloader turned `_` into spaces."""
    return re.sub(r"[\x00-\x1f\x7f&<>\"`|':\\/]", "", text.replace("_", " "))


def same_name(person, name):
    """Whether a downloaded file's full name is the roster person's, in either name order (the site's
    fullnamedisplay), ignoring case, spacing and the characters clean_filename removes."""
    def norm(text):
        return " ".join(clean_filename(text).split()).casefold()
    return norm(name) in {norm(f"{person.first_name} {person.last_name}"),
                          norm(f"{person.last_name} {person.first_name}")}


def read_worksheet(path, zone):
    """{participant id: (UTC datetime or None, email, full name, why no time)} of a grading worksheet."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = Path(path).read_text(encoding="cp1252")  # re-saved by a spreadsheet
    except OSError as error:
        raise LmsError(f"cannot read the grading worksheet {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    if not set(WORKSHEET) <= set(reader.fieldnames or ()):
        raise LmsError(f"{path} is not a Moodle grading worksheet: it lacks the columns "
                       f"{' and '.join(WORKSHEET)} (download it with the site in English)")
    times = {}
    for row in reader:
        number = re.search(r"(\d+)\s*$", row.get("Identifier") or "")
        if not number:
            continue
        shown = (row.get(WORKSHEET[1]) or "").strip()
        when, why = None, ""
        if shown in ("", "-"):
            why = "the grading worksheet gives no submission time"
        else:
            try:
                when = parser.parse(shown).replace(tzinfo=zone).astimezone(tz.UTC).replace(tzinfo=None)
            except (ValueError, OverflowError):
                why = f"the grading worksheet's time {shown[:40]!r} is unreadable"
        times[number.group(1)] = (when, (row.get("Email address") or "").strip(),
                                  (row.get("Full name") or "").strip(), why)
    return times


def feedback_name(info, unit):
    """A feedback file's name in the zip: the download's prefix with `assignfeedback`, flat."""
    name = clean_filename(info["full_name"])
    return f"{name}_{info['participant_id']}_assignfeedback_file_{unit}_feedback.html"
