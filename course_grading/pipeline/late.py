"""Late work: due dates per unit and a penalty policy, both set in nbgrader_config.py.

`LatePenalty` is an nbgrader late-submission plugin (AssignLatePenalties calls it while
autograding); its `duedates` become each assignment's `duedate` in nbgrader's gradebook, and the
submission time is the `timestamp.txt` that `course collect` writes beside a notebook.
"""
import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Dict, Float

DAY = 24 * 3600


class LatePenalty(LateSubmissionPlugin):
    """A share of the notebook's score per started day late, at most the whole score."""

    percent_per_day = Float(10.0, help="percent of the score lost per started day late").tag(config=True)
    duedates = Dict(help="{unit: due date}, e.g. {'01_perceptron': '2027-02-05 23:59 UTC'}").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        days = math.ceil(total_seconds_late / DAY)
        return min(score, round(score * days * self.percent_per_day / 100, 6))


def duedates(root=None):
    """{unit: datetime in UTC} from nbgrader_config.py's LatePenalty.duedates."""
    from nbgrader.utils import parse_utc
    from traitlets.config.loader import PyFileConfigLoader

    from course_grading.course import ROOT

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root or ROOT)).load_config()
    return {unit: parse_utc(when) for unit, when in config.LatePenalty.get("duedates", {}).items()}
