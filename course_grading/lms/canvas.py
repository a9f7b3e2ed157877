"""Canvas: its "Download Submissions" zip, its gradebook CSV (the roster, and the import) and the
"Re-upload Submissions" zip that puts each student's feedback on their submission as a comment.

Canvas names each downloaded file `lastnamefirstname_[LATE_]userid_attachmentid_originalname`, with
`-1`, `-2` appended to a re-uploaded file's name; re-uploading files whose names keep the first two
numbers (user id, attachment id) of a submission attaches them to it as comments.
"""
from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from course_grading.lms.common import Person, collector_match, valid_id

FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"


class CanvasCollector(FileNameCollectorPlugin):
    """nbgrader collector plugin for Canvas file names (also usable as `nbgrader zip_collect --collector`)."""

    named_regexp = Unicode(r"(?P<name>[^_/]*)_(?P<late>LATE_)?(?P<student_id>\d+)_(?P<attachment_id>\d+)_"
                           r"(?P<file_id>[^/]+)").tag(config=True)

    def collect(self, submitted_file):
        return collector_match(self.named_regexp, submitted_file, flat=True)


def person(row):
    """The roster's Person of one row of a Canvas gradebook export (None for its Points Possible rows)."""
    lms_id = (row.get("ID") or "").strip()
    if not lms_id.isdigit():
        return None
    last, _, first = (row.get("Student") or "").partition(",")
    student_id = next((v for v in (row.get("SIS Login ID"), row.get("SIS User ID")) if valid_id(v)),
                      f"canvas-{lms_id}")
    return Person(student_id.strip(), first.strip(), last.strip(), "", lms_id, row)


def names(info):
    """The start of Canvas's file name, for the feedback zip: `lastnamefirstname_userid_attachmentid`."""
    return f"{info['name']}_{info['lms_user_id']}_{info['attachment_id']}"
