"""nbgrader configuration for the course (run nbgrader and `course` from this folder)."""
import os

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "nn-fundamentals"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.db"]
# SQLite by default; set NBGRADER_DB_URL (e.g. postgresql://...) to grade into a server database.
c.CourseDirectory.db_url = os.environ.get(
    "NBGRADER_DB_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db"))

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearOutput.remove_metadata_fields = ["collapsed", "scrolled", "execution"]

# Per-cell limit while grading: training cells need more than nbgrader's 30 s default, and a
# student's infinite loop at the top level of a cell costs this much wall time, once.
c.Execute.timeout = 90
c.Execute.interrupt_on_timeout = True

# Autograde runs each kernel in a sandbox, with hidden checks judged outside it (course_grading.pipeline.judge).
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import AssignLatePenalties, IgnorePattern, LimitOutput, SaveAutoGrades  # noqa: E402

from course_grading.pipeline.judge import JudgedExecute  # noqa: E402

# Late work: each unit's due date (UTC) goes into the gradebook when `course grade` sets a unit up; a
# submission's time comes from the timestamp.txt beside it (`course collect` writes it from the LMS).
# The penalty is a share of the notebook's score per started day late (course_grading/pipeline/late.py).
from course_grading.pipeline.late import LatePenalty  # noqa: E402

c.AssignLatePenalties.plugin_class = LatePenalty
c.LatePenalty.percent_per_day = 10
c.LatePenalty.duedates = {unit: f"2027-{month:02d}-{day:02d} 23:59:00 UTC" for unit, month, day in [
    ("01_perceptron", 2, 5), ("02_gradient_descent", 2, 12), ("03_backprop_by_hand", 2, 19),
    ("04_mlp_pytorch", 2, 26), ("05_initialization", 3, 5), ("06_batchnorm", 3, 12),
    ("07_dropout_regularization", 3, 19), ("08_optimizers", 3, 26), ("09_double_descent", 4, 2)]}

# What one notebook's kernel may use (course_grading/pipeline/sandbox.py): memory for its processes and
# /dev/shm together, disk for the files it writes (its folder and /tmp, a tmpfs: memory too). A notebook
# over budget loses its remaining cells, named in the problems column. COURSE_MEMORY_BUDGET and
# COURSE_DISK_BUDGET (bytes) override them for one run.
c.JudgedExecute.memory_budget = int(os.environ.get("COURSE_MEMORY_BUDGET", 4 << 30))
c.JudgedExecute.disk_budget = int(os.environ.get("COURSE_DISK_BUDGET", 1 << 30))

# nbgrader's own list, but for its second CheckCellMetadata: the sanitizing pass before has checked the
# cells' metadata, which running the cells does not change (0.1 s a notebook of jsonschema).
c.Autograde.autograde_preprocessors = [JudgedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties]

# Feedback compiles its HTML templates once per process instead of once per notebook.
from course_grading.pipeline.feedback import CachedHTMLExporter  # noqa: E402

c.GenerateFeedback.exporter_class = CachedHTMLExporter

# Feedback opens with a summary: each exercise by name, its score and why it lost points, linked to its cell.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from course_grading.pipeline.summary import FeedbackSummary  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, FeedbackSummary]

# The class report (`course report`, after every `course grade`): who is at risk over the units graded so far.
c.CourseReport.at_risk_below = 50.0   # percent of the points of the units graded so far
c.CourseReport.at_risk_missing = 2    # ... or this many of those units not graded (missing, unreadable)
