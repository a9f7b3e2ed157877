"""What Canvas and Moodle share here: the roster (an LMS gradebook export) and matching names."""
import csv
import io
import re
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
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LmsError(f"cannot read the roster {path}: {error}") from None
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
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def unit_columns(header, units):
    """{unit: the roster column of its LMS assignment}: the one column whose title has the unit's number
    and name as words ('01 Perceptron (1234)', 'Assignment: 01_perceptron (Real)'); else the unit's name."""
    columns = {}
    for unit in units:
        found = [c for c in header if _words(unit) in _words(c)]
        columns[unit] = found[0] if len(found) == 1 else unit
    return columns
