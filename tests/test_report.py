"""What the class got wrong: reasons in cell_grades.csv, OUT/mistakes.csv and OUT/report.html, and the summary
that opens each feedback file, on one small class graded once by `course grade` (units 01 and 06: three
students make the same classic mistake in each, one another; a late one, a stub, a malformed notebook and a
student who handed in nothing). The pages are opened in headless Chromium where it is installed.
"""
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT
from course_grading.pipeline.summary import mistake_key, reason

UNITS = ("01_perceptron", "06_batchnorm")
COURSE = str(Path(sys.executable).parent / "course")
SAME = {"01_perceptron": ">= instead of > in predict", "06_batchnorm": "unbiased variance used to normalise"}
SAME_CELLS = (("01_perceptron", "test_perceptron_predict"), ("06_batchnorm", "test_batchnorm_forward"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def bug(unit, name):
    return next(v for v in variants(unit) if v.name == name)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("report")
    first, second = UNITS
    same = {unit: samples.student_notebook(ROOT, unit, bug(unit, SAME[unit])) for unit in UNITS}
    backward = bug(second, "dx missing the variance term")
    samples.write_class(scratch / "subs", {
        "ada": {unit: samples.student_notebook(ROOT, unit) for unit in UNITS},
        "ben": dict(same),
        "cat": dict(same),
        "dan": {first: same[first], second: samples.student_notebook(ROOT, second, (bug(second, SAME[second]),
                                                                                    backward))},
        "eve": {first: samples.student_notebook(ROOT, first, bug(first, "wrong shape (n, 1)"))},
        "fay": {first: samples.student_notebook(ROOT, first, solved=False), second: '{"cells": [{"cell_'},
    })
    (scratch / "subs" / "gil").mkdir()  # handed in nothing
    (scratch / "subs" / "cat" / first / "timestamp.txt").write_text("2027-02-07 10:00:00 UTC\n")  # a day late
    run = subprocess.run([COURSE, "grade", scratch / "subs", "--out", scratch / "out", "--jobs", "2",
                          "--units", *UNITS], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"report:    {scratch / 'out' / 'report.html'}" in run.stdout
    return scratch / "out"


def test_a_reason_is_the_first_line_and_its_key_has_no_numbers():
    assert reason("dx: off by 50% of its size.\n  got [1 2]\nhint", 0, 4) == "dx: off by 50% of its size."
    assert reason("anything", 4, 4) == ""
    assert mistake_key("test_dx", "dx: off by 50% of its size (x of shape (2, 3), eps 1e-05).") == \
        mistake_key("test_dx", "dx: off by 3% of its size (x of shape (6, 4), eps 2.5e-06).") == \
        "test_dx: dx: off by #% of its size (x of shape (#, #), eps #)."
    assert mistake_key("test_W2", "W2 is wrong") == "test_W2: W2 is wrong"  # names keep their digits
    assert mistake_key("test_f", "got <function f at 0x7f3a9c>") == "test_f: got <function f at #>"
    assert mistake_key("test_dx", "") == ""


def test_cell_grades_keep_each_reason_and_mistakes_count_one_kind_per_key(graded):
    cells = {(r["student_id"], r["cell"]): r for r in rows(graded / "cell_grades.csv")}
    assert all(r["reason"] == r["mistake_key"] == "" for r in cells.values() if r["score"] == r["max_score"])
    ben = cells["ben", "test_perceptron_predict"]
    assert ben["score"] == "0" and ben["reason"].startswith("perceptron_predict(")
    assert "\n" not in ben["reason"]
    assert ben["mistake_key"].startswith("test_perceptron_predict: ") and "#" in ben["mistake_key"]
    assert cells["fay", "test_perceptron_predict"]["reason"].endswith("still raises NotImplementedError).")

    mistakes = rows(graded / "mistakes.csv")
    for unit, cell in SAME_CELLS:
        ranked = [m for m in mistakes if (m["unit"], m["cell"]) == (unit, cell)]
        top = ranked[0]
        assert (top["students"], top["student_ids"]) == ("3", "ben cat dan"), ranked
        assert top["mistake_key"] == cells["ben", cell]["mistake_key"]
        assert top["message"] == cells["ben", cell]["reason"]
        assert all(int(m["students"]) < 3 for m in ranked[1:])
    eve = next(m for m in mistakes if m["student_ids"] == "eve")
    assert "shape" in eve["message"] and eve["students"] == "1"


def test_the_report_shows_each_exercise_its_commonest_mistake_first_with_histograms(graded):
    page = BeautifulSoup((graded / "report.html").read_text(), "html.parser")
    mistakes = {(m["unit"], m["cell"]): m for m in reversed(rows(graded / "mistakes.csv"))}  # the first wins
    for unit, cell in SAME_CELLS:
        figures = page.find(id=f"unit-{unit}").find(class_="figures")
        assert len(figures.find_all("img", src=lambda s: s.startswith("data:image/png"))) == 2
        first = page.find(id=f"{unit}-{cell}").find(class_="mistake")
        assert first.find(class_="count").get_text() == "3 students"
        assert first.find(class_="message").get_text() == mistakes[unit, cell]["message"]
        links = [a["href"] for a in first.find_all("a")]
        assert links == [f"feedback/{s}/{unit}/{unit}.html#{cell}" for s in ("ben", "cat", "dan")]
        assert all((graded / link.split("#")[0]).is_file() for link in links)
    late = page.find(id="late").get_text(" ")
    assert "cat" in late and "late by 1 day" in late and "fay" not in late
    missing = page.find(id="not-graded").get_text(" ")
    assert "gil" in missing and "not submitted" in missing and "fay" in missing
    at_risk = [tr.find("td").get_text() for tr in page.find(id="at-risk").find_all("tr")[1:]]
    assert set(at_risk) == {"fay", "gil", "eve"}  # eve: 06 missing and 6 of 22 points; ada..dan above half


def test_course_report_takes_its_thresholds_from_flags(graded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(graded, out, ignore=shutil.ignore_patterns("autograded", "submitted", "*.db"))
    run = subprocess.run([COURSE, "report", out, "--at-risk-below", "95", "--at-risk-missing", "3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == f"report:    {out / 'report.html'}", run.stderr
    page = BeautifulSoup((out / "report.html").read_text(), "html.parser")
    at_risk = {tr.find("td").get_text() for tr in page.find(id="at-risk").find_all("tr")[1:]}
    assert at_risk == {"ben", "cat", "dan", "eve", "fay", "gil"}
    (out / "grades.csv").unlink()
    run = subprocess.run([COURSE, "report", out], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "grades.csv does not exist" in run.stderr and "Traceback" not in run.stderr


def test_feedback_opens_with_a_named_summary_linking_each_cell(graded):
    cells = {(r["student_id"], r["cell"]): r for r in rows(graded / "cell_grades.csv")}
    page = BeautifulSoup((graded / "feedback/dan/06_batchnorm/06_batchnorm.html").read_text(), "html.parser")
    summary = page.find(id="course-summary")
    assert summary is not None and summary.find_previous(class_="cell") is None  # before every cell
    lines = {row.find("a")["href"][1:]: [span.get_text() for span in row.find_all("span")]
             for row in summary.find_all("div", recursive=False) if row.find("a")}
    assert list(lines) == samples.test_cells(samples.read(ROOT / "release/06_batchnorm/06_batchnorm.ipynb"))
    for cell, (name, score, why) in lines.items():
        assert name == cell[5:] and page.find("a", attrs={"name": cell}) is not None
        assert score == f"{cells['dan', cell]['score']} / {cells['dan', cell]['max_score']}"
        assert why == cells["dan", cell]["reason"]
    assert lines["test_batchnorm_forward"][2] and lines["test_batchnorm_eval"][2] == ""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_pages_load_in_a_browser_without_errors(graded, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e .[dev])")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: errors.append(f"fetched {request.url}")
                if not request.url.startswith(("file:", "data:")) else None)
        page.goto((graded / "report.html").as_uri())
        page.wait_for_load_state("load")
        figures = page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert figures == [True] * (2 * len(UNITS) + 1) and errors == []
        page.screenshot(path=tmp_path / "report.png", full_page=True)
        first = page.locator("[id='06_batchnorm-test_batchnorm_forward'] .mistake a").first
        first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/feedback/ben/06_batchnorm/06_batchnorm.html#test_batchnorm_forward")
        summary = page.locator("#course-summary")
        assert summary.is_visible() and "batchnorm_forward" in summary.inner_text()
        assert page.locator("#toc").is_hidden()  # nbgrader's list of alike "Test cell" lines
        top = summary.bounding_box()["y"]
        assert all(top < cell.bounding_box()["y"] for cell in page.locator("div.cell").all()[:3])
        page.screenshot(path=tmp_path / "feedback.png")
        browser.close()
