"""`course build`: regenerate release/ from source/ with nbgrader generate_assignment."""
import os
import shutil
import tempfile
from pathlib import Path

from course_grading.course import ROOT, nbgrader_api, units


def generate_release(release_dir, root=ROOT, only=()):
    """Write the student version of every unit into `release_dir` (a scratch gradebook is used).

    nbgrader regenerates a unit by deleting its folder first; it does so in a scratch folder here, and each
    file then replaces its old copy atomically, so a notebook someone is reading never goes missing."""
    release_dir = Path(release_dir).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "release"
        api = nbgrader_api(root, db_url=f"sqlite:///{scratch}/gradebook.db", release_directory=str(fresh))
        for unit in units(root, only):
            result = api.generate_assignment(unit, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment {unit} failed:\n{result.get('error', '')}")
            _replace_folder(fresh / unit, release_dir / unit)
    return sorted(p.relative_to(release_dir) for p in release_dir.rglob("*") if p.is_file())


def _replace_folder(fresh, old):
    """Make `old` hold exactly `fresh`'s files, replacing each changed one atomically."""
    made = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    for stale in (p for p in old.rglob("*") if p.is_file() and p.relative_to(old) not in made):
        stale.unlink()
    for name in made:
        target = old / name
        if target.is_file() and target.read_bytes() == (fresh / name).read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.building")
        shutil.copy2(fresh / name, staged)
        os.replace(staged, target)


def release_differences(root=ROOT):
    """Files under release/ that differ from a fresh generation (missing, extra or changed)."""
    committed = Path(root) / "release"
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "release"
        generate_release(fresh, root)
        names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        names |= {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()} if committed.exists() else set()
        return sorted(str(n) for n in names
                      if not (fresh / n).is_file() or not (committed / n).is_file()
                      or (fresh / n).read_bytes() != (committed / n).read_bytes())
