"""Canvas: its "Download Submissions" zip, its gradebook CSV (the roster, and the import) and the
"Re-upload Submissions" zip that puts each student's feedback on their submission as a comment.

Canvas names each downloaded file `sortablename_[LATE_]userid_attachmentid_originalname`
(lib/content_zipper.rb, get_filename, get_user_name, sanitize_user_name, sanitize_file_name and
add_upload_submission): the sortable name ("Lovelace, Ada") with `_<digits>_` collapsed and lowercased,
then everything but Ruby's [[:word:]] characters removed, so the name itself may end in `_<digits>` and the
original name (its `\ / : * ? " < > |` runs turned into `_`) may hold `_<digits>_`; the ids are found here
where the name before them is the roster's own student of that user id. Canvas marks a submission LATE
but gives no time. Re-uploaded feedback is matched by the first two all-digit `_` parts of its name
(app/models/assignment.rb, infer_comment_context_from_filename: user id, attachment id, which must be
one of that submission's attachments), so the name written here holds no digits-only part before them.
"""
import re
import unicodedata

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from course_grading.lms.common import Person, collector_match, valid_id

FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"  # as Canvas writes it, read with spaces stripped


class CanvasCollector(FileNameCollectorPlugin):
    """nbgrader collector plugin for Canvas file names (also usable as `nbgrader zip_collect --collector`):
    the first `_[LATE_]digits_digits_` after the name; `collect` also checks the name against the roster."""

    named_regexp = Unicode(r"(?P<name>\w*?)_(?P<late>LATE_)?(?P<student_id>\d+)_(?P<attachment_id>\d+)_"
                           r"(?P<file_id>[^/]+)").tag(config=True)

    def collect(self, submitted_file):
        return collector_match(self.named_regexp, submitted_file, flat=True)


def sortable_name(row):
    """The student's sortable name, "Last, First", from the export's Student column (or its LastName and
    FirstName columns where the export shows names split)."""
    if (row.get("Student") or "").strip():
        return row["Student"].strip()
    last, first = (row.get("LastName") or "").strip(), (row.get("FirstName") or "").strip()
    return f"{last}, {first}" if first else last


def _word(char):
    """Ruby's [[:word:]] (Onigmo, Unicode): a letter, a mark, a decimal digit or connector punctuation
    (Python's \\w differs: it drops combining marks and keeps other numbers such as ²)."""
    kind = unicodedata.category(char)
    return kind[0] in "LM" or kind in ("Nd", "Pc")


def file_name_part(name):
    """What content_zipper.rb makes of a sortable name: `_<digits>_` collapsed, lowercased, [[:word:]]
    characters only."""
    return "".join(c for c in re.sub(r"_([0-9]+)_", r"\1", name).lower() if _word(c))


def person(row):
    """The roster's Person of one row of a Canvas gradebook export (None for its Points Possible rows)."""
    lms_id = (row.get("ID") or "").strip()
    if not lms_id.isdigit():
        return None
    last, _, first = sortable_name(row).partition(",")
    student_id = next((v for v in (row.get("SIS Login ID"), row.get("SIS User ID")) if valid_id(v)),
                      f"canvas-{lms_id}")
    return Person(student_id.strip(), first.strip(), last.strip(), "", lms_id, row)


def parse(name, people):
    """(collector info, '') for a Canvas file name whose ids are those of a rostered student of that name,
    else (None, why)."""
    if re.match(r"(LATE_)?anon_", name):  # get_filename: "anon_<anonymous id>" where the name would be
        return None, "anonymous grading: Canvas's file name names no student (download with it off)"
    by_id = {p.lms_user_id: p for p in people}
    found = []
    for match in re.finditer(r"(?=_(LATE_)?(\d+)_(\d+)_(.+))", name):
        prefix = name[:match.start()]
        if all(map(_word, prefix)) and match.group(2) in by_id:
            found.append((prefix, match))
    named = [(prefix, m) for prefix, m in found
             if file_name_part(sortable_name(by_id[m.group(2)].row)) == prefix]
    if not found:
        if not re.search(r"_(LATE_)?\d+_\d+_.", name):
            return None, "file name is not in Canvas's form sortablename_[LATE_]userid_attachmentid_name"
        return None, "unknown student: no Canvas user id in the file name is in the roster"
    if len(named) != 1:
        ids = ", ".join(sorted({m.group(2) for _, m in found}))
        return None, (f"the name before Canvas user id {ids} is not that student's in the roster: "
                      "not placed (a roster from another course?)" if not named else
                      "the file name reads as two rostered students: not placed")
    prefix, match = named[0]
    return {"name": prefix, "late": match.group(1), "student_id": match.group(2),
            "attachment_id": match.group(3), "file_id": match.group(4)}, ""


def names(info):
    """The start of a feedback file's name: `sortablename_userid_attachmentid`, with the name's `_` left
    out (the whole name if it is all digits) so that Canvas's re-upload reads the first two all-digit
    parts as the user and attachment ids."""
    name = info["name"].replace("_", "")
    name = "" if re.fullmatch(r"[0-9]+", name) else name
    return f"{name}_{info['lms_user_id']}_{info['attachment_id']}"
