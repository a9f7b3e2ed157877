"""The house's layout: imports run one way, and the student package stands alone without the grader."""
import ast
import subprocess
import sys
from pathlib import Path

from course_grading.course import ROOT

BLOCK_GRADER = """
import importlib.abc, sys
class NoGrader(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "course_grading":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoGrader())
"""


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """Course modules `path` imports anywhere in the file (module level or inside functions)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return {name for name in found if name.split(".")[0] in ("course_grading", "course_utils")}


def graph():
    """{module: course modules it imports that exist as files}."""
    files = {module_name(p): p for package in ("course_grading", "course_utils")
             for p in (ROOT / package).rglob("*.py")}
    return {name: {i for i in imports_of(path) if i in files} - {name} for name, path in files.items()}


def test_the_student_package_never_names_the_grader():
    for path in (ROOT / "course_utils").rglob("*.py"):
        assert "course_grading" not in path.read_text(), path


def test_no_import_circle():
    edges = graph()
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import circle: " + " -> ".join(trail + [node])
        state[node] = "open"
        for target in sorted(edges[node]):
            visit(target, trail + [node])
        state[node] = "done"

    for node in sorted(edges):
        visit(node, [])


def test_rooms_import_one_way():
    for module, targets in graph().items():
        if module.startswith("course_grading.pipeline"):
            assert not {t for t in targets if t.startswith("course_grading.tools")}, module
        if module.startswith("course_grading.checks"):
            assert all(t.startswith(("course_grading.checks", "course_utils")) for t in targets), (module, targets)
        if module.startswith("course_grading.banks"):
            assert all(t.startswith("course_grading.banks") for t in targets), (module, targets)


def test_student_package_imports_and_passes_its_tests_without_the_grader(tmp_path):
    script = BLOCK_GRADER + """
import importlib, pkgutil, course_utils
for module in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
    importlib.import_module(module.name)
from course_utils.checks import CheckFailed
from course_utils.judge import hidden_check
try:
    hidden_check("unit01.check_perceptron_predict", lambda x: 0)
except CheckFailed as failure:
    assert "only when the instructor grades" in str(failure), failure
else:
    raise AssertionError("a hidden check passed without the grader")
import pytest
sys.exit(pytest.main(["-q", "-o", "addopts=", "-p", "no:cacheprovider", "--noconftest", sys.argv[1]]))
"""
    result = subprocess.run([sys.executable, "-c", script, str(ROOT / "tests" / "test_course_utils.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


def test_console_script_is_the_graders_and_the_edition_has_none():
    from course_grading.tools.publish import edition_contents

    edition = edition_contents()[Path("pyproject.toml")].decode()
    assert "[project.scripts]" not in edition and "course_grading" not in edition.split("[tool")[0]
    assert 'course = "course_grading.cli:main"' in (ROOT / "pyproject.toml").read_text()
    result = subprocess.run([sys.executable, "-m", "course_grading", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "publish" in result.stdout
