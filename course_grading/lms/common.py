"""What Canvas and Moodle share here: the roster (an LMS gradebook export) and matching names."""
import csv
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from course_grading.pipeline.intake import STUDENT_ID


class LmsError(ValueError):
    """Input that cannot be used at all (a file that is not a zip, a roster without its columns)."""


@dataclass
class Person:
    student_id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str
    row: dict = field(default_factory=dict, repr=False)

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}".strip()


def shown(text, limit=300):
    """`text` safe to print: escape sequences and other unprintable characters written as escapes, cut to
    `limit` characters."""
    text = str(text)
    text = text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def cell(text):
    """A CSV cell a spreadsheet shows as text: cells starting with = + - @ (a formula) get a leading `'`.
    A plain number such as -1.5 stays a number."""
    text = str(text)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"-?\d+(\.\d+)?", text):
        return "'" + text
    return text


def write_csv(path, header, rows):
    """Write a CSV atomically (a temporary file renamed over `path`): a reader never finds it half written
    or empty, and a failure leaves the previous file as it was."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=path.parent,
                                     prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        try:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    os.replace(f.name, path)


def valid_id(text):
    return bool(text) and bool(STUDENT_ID.fullmatch(text.strip()))


def collector_match(pattern, path, flat=False):
    """The named groups of `pattern` matched against the end of `path` (its last part only if `flat`)."""
    path = str(path).replace("\\", "/")
    match = re.fullmatch(pattern, path.rsplit("/", 1)[-1] if flat else path) or (
        None if flat else re.search(r"(?:^|/)(" + pattern + r")\Z", path))
    return match.groupdict() if match else None


def read_roster(path, person):
    """(header, [Person]) of an LMS gradebook export CSV; `person` reads one row (None to skip it)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise LmsError(f"cannot read the roster {path}: {error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # re-saved by a spreadsheet
    reader = csv.DictReader(io.StringIO(text))
    people = [p for p in map(person, reader) if p]
    if not people:
        columns = ", ".join(reader.fieldnames or [])
        raise LmsError(f"the roster {path} has no student rows (columns: {columns})")
    seen = {}
    for p in people:
        if p.student_id in seen:
            raise LmsError(f"the roster {path} gives two students the id {p.student_id}")
        seen[p.student_id] = p
    return reader.fieldnames, people


def _words(text):
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _title(column):
    """An assignment column's title without Canvas's `(assignment id)` or Moodle's `Assignment: ` and
    `(Real)`."""
    return re.sub(r"^[^:]*:\s*", "", re.sub(r"\s*\([^()]*\)\s*$", "", column))


def unit_columns(header, units):
    """{unit: the roster column of its LMS assignment}: the one column whose title is the unit's number
    and name ('01 Perceptron (1234)', 'Assignment: 01_perceptron (Real)'; not 'Quiz 01 perceptron');
    else the unit's name."""
    columns = {}
    for unit in units:
        found = [c for c in header if _words(_title(c)) == _words(unit)]
        columns[unit] = found[0] if len(found) == 1 else unit
    return columns
