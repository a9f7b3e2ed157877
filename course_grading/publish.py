"""`course publish DIR`: the student edition, with no solution, hidden test or hidden-check code."""
import shutil
from pathlib import Path

from course_grading.course import ROOT

EDITION = ("release", "notebooks", "course_utils", "pyproject.toml", "environment.yml", "LICENSE")


def publish(dest, root=ROOT):
    """Write the student edition into `dest` (replacing what is there); return the files written."""
    dest, root = Path(dest), Path(root)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
    for name in EDITION:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    shutil.copy2(root / "docs" / "STUDENT_GUIDE.md", dest / "README.md")
    return sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
