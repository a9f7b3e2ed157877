"""`course build`: regenerate release/ from source/ with nbgrader generate_assignment."""
import tempfile
from pathlib import Path

from course_grading.course import ROOT, nbgrader_api, units


def generate_release(release_dir, root=ROOT, only=()):
    """Write the student version of every unit into `release_dir` (a scratch gradebook is used)."""
    release_dir = Path(release_dir).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        api = nbgrader_api(root, db_url=f"sqlite:///{scratch}/gradebook.db", release_directory=str(release_dir))
        for unit in units(root, only):
            result = api.generate_assignment(unit, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment {unit} failed:\n{result.get('error', '')}")
    return sorted(p.relative_to(release_dir) for p in release_dir.rglob("*") if p.is_file())


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
