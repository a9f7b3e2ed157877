"""The course on disk: its units, and nbgrader's API configured from nbgrader_config.py."""
import functools
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def units(root=ROOT, only=()):
    """Unit folder names under source/ ('01_perceptron', ...), optionally those starting with `only`."""
    names = sorted(p.name for p in (Path(root) / "source").iterdir()
                   if p.is_dir() and p.name[:2].isdigit() and (p / f"{p.name}.ipynb").exists())
    if only:
        names = [n for n in names if any(n.startswith(str(o)) or n[3:] == o for o in only)]
    return names


@functools.lru_cache(maxsize=None)
def alembic_head():
    """The revision nbgrader stamps into a new gradebook, read once per process with alembic's API.
    nbgrader's own get_alembic_version starts the command `alembic heads` for every new gradebook:
    2-4 s of imports, paid by each worker for each unit's course template."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = Config()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def nbgrader_api(course_root, db_url=None, quiet=True, judge=None, **coursedir):
    """NbGraderAPI for `course_root`, with the project's nbgrader_config.py and overrides.

    `coursedir` entries override CourseDirectory settings (e.g. release_directory=...); `judge`
    entries override JudgedExecute settings (sandboxed=..., incidents_dir=...).
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    config.CourseDirectory.root = str(course_root)
    config.CourseDirectory.db_url = db_url or f"sqlite:///{Path(course_root) / 'gradebook.db'}"
    for key, value in coursedir.items():
        setattr(config.CourseDirectory, key, value)
    for key, value in (judge or {}).items():
        setattr(config.JudgedExecute, key, value)
    if quiet:
        config.NbGraderAPI.log_level = "ERROR"
        logging.getLogger("traitlets").setLevel(logging.ERROR)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
