"""The course in a real browser: JupyterLab driven in headless Chromium through Playwright.

One JupyterLab server serves the published student edition and a copy of the course root (its
nbgrader_config.py, source/ and release/), as an instructor's machine would. In it, every lecture and
release notebook of the edition is opened (one at a time, each with a fresh kernel) and run; the
test reads what JupyterLab shows: errors (none in lectures; in release notebooks only the stubs'
NotImplementedError and what follows from it), every figure drawn as an image, widgets alive (the
unit 02 learning-rate slider is moved and its plot redrawn), the computational graphs drawn when
Graphviz is installed. nbgrader's JupyterLab extension lists the units in Formgrader and its
Validate button passes a solved assignment and fails a stub. The markdown of every lecture and
assignment (notebooks/ and source/) is opened once, as one notebook, and its math typeset by
JupyterLab's MathJax, both as JupyterLab renders it and as nbconvert's static HTML (feedback, previews)
shows it, without TeX errors and with exactly the formulas written. Screenshots go to each test's
tmp_path.

Needs Debian's `chromium` and PyPI's `playwright` (the dev extra; never `playwright install`).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_grading import samples
from course_grading.course import ROOT, units
from course_grading.tools.publish import publish
from tests.test_colab import bound_names, expected_error

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Chromium is not installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e .[dev])")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LECTURES = sorted(p.relative_to(ROOT) for p in ROOT.glob("notebooks/*.ipynb"))
RELEASES = sorted(p.relative_to(ROOT) for p in ROOT.glob("release/*/*.ipynb"))
SLIDER_LECTURE = Path("notebooks/02_gradient_descent.ipynb")
SETTINGS = {  # JupyterLab settings of the test's own profile: every cell in the page, no news pop-up
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        '{"windowingMode": "none", "recordTiming": true}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
}
TOKEN = "course-browser-test"

OPEN = """async (path) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
}"""
# Run all; JupyterLab stops at a cell that raises, so carry on from the next cell not yet run
RUN_ALL = """async () => {
  const app = window.jupyterapp, notebook = app.shell.currentWidget.content;
  await app.commands.execute('notebook:run-all-cells');
  for (let round = 0; round < 200; round++) {
    const next = notebook.widgets.findIndex(c => c.model.type === 'code' && c.model.executionCount === null);
    if (next < 0) return;
    notebook.activeCellIndex = next;
    await app.commands.execute('notebook:run-all-below');
  }
}"""
IMAGES_LOADED = """() => [...document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea img')].every(img => img.complete)"""
CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === 'code').map(c => {
  const outputs = c.model.outputs.toJSON(), area = c.node.querySelector('.jp-OutputArea');
  const has = (o, mime) => o.data !== undefined && o.data[mime] !== undefined;
  const drawn = [...c.node.querySelectorAll('.jp-OutputArea img')]
    .filter(i => i.complete && i.naturalWidth > 0);
  const timing = c.model.getMetadata('execution') || {};
  return {source: c.model.sharedModel.getSource(), count: c.model.executionCount,
          seconds: (Date.parse(timing['shell.execute_reply'])
                    - Date.parse(timing['iopub.execute_input'])) / 1000 || 0,
          errors: outputs.filter(o => o.output_type === 'error')
            .map(o => ({ename: o.ename, evalue: o.evalue})),
          figures: outputs.filter(o => has(o, 'image/png') || has(o, 'image/svg+xml')).length,
          graphs: outputs.filter(o => has(o, 'image/svg+xml')).length,
          widgets: outputs.filter(o => has(o, 'application/vnd.jupyter.widget-view+json')).length,
          drawn: drawn.length, text: area ? area.innerText : '',
          // JupyterLab's renderers mark their node with data-mime-type; the widget manager's does not (and
          // without the widget manager a widget shows as its text/plain repr)
          widget_views: area ? [...area.querySelectorAll(
              ':scope > .jp-OutputArea-child > .jp-OutputArea-output')]
            .filter(n => n.dataset.mimeType === undefined).length : 0};
})"""
# What JupyterLab's MathJax 3 (bundled with JupyterLab: nothing is downloaded) makes of each markdown cell
# of the open notebook, as JupyterLab typesets it, and of each static HTML fragment, typeset once with the
# delimiters and escapes of nbconvert's page (whose MathJax 2 comes from a CDN): per cell the formulas
# found and the TeX errors (an undefined macro shows as red text, not as an error)
MATH = """async (fragments) => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  const typesetter = notebook.rendermime.latexTypesetter;
  const cells = notebook.widgets.filter(c => c.model.type === 'markdown');
  const host = c => c.node.querySelector('.jp-RenderedMarkdown');
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  for (let round = 0; round < 600 && cells.some(c => !(host(c) && host(c).childElementCount)); round++)
    await sleep(100);
  await typesetter.typeset(document.createElement('div'));   // MathJax is loaded: cells typeset at once
  const total = () => document.querySelectorAll('mjx-container').length;
  for (let before = -1, round = 0; round < 60 && total() !== before; round++) {
    before = total();
    await sleep(500);
  }
  const found = node => ({math: node.querySelectorAll('mjx-container').length,
    errors: [...[...node.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error')),
             ...[...node.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')]
               .map(e => `undefined ${e.textContent}`)]});
  const lab = cells.map(c => found(host(c)));
  const box = document.createElement('div');
  document.body.appendChild(box);
  const statics = fragments.map(html => {
    const node = document.createElement('div');
    node.innerHTML = html;
    return box.appendChild(node);
  });
  await typesetter.typeset(box);
  const html = statics.map(found);
  box.remove();
  return {lab, html};
}"""
CLOSE = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.shutdown();
  panel.context.model.dirty = false;  // outputs are not saved: close without the "save changes?" dialog
  panel.dispose();
}"""


class Lab:
    """A JupyterLab server and one Chromium page on it."""

    def __init__(self, scratch):
        self.scratch, self.edition, self.course = scratch, scratch / "edition", scratch / "course"
        publish(self.edition)
        self.course.mkdir()
        for name in ("source", "release"):
            shutil.copytree(ROOT / name, self.course / name)
        shutil.copy2(ROOT / "nbgrader_config.py", self.course)
        for name, text in SETTINGS.items():
            (scratch / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / "settings" / name).write_text(text)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{s.getsockname()[1]}"
        self.server = self.start_server()
        self.playwright = sync_api.sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(180_000)
        self.page.goto(f"{self.url}/lab?token={TOKEN}")
        self.page.wait_for_function("() => window.jupyterapp !== undefined")
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")

    def start_server(self):
        # as from an activated environment (nbgrader runs `alembic` from it), kernels import the edition's
        # course_utils, inline figures
        bindir = os.path.dirname(sys.executable)
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "NBGRADER_DB_URL")}
        env.update(PATH=bindir + os.pathsep + env.get("PATH", ""), PYTHONPATH=str(self.edition),
                   JUPYTER_CONFIG_DIR=str(self.scratch / "jupyter-config"))
        port = self.url.rsplit(":", 1)[1]
        log = open(self.scratch / "jupyterlab.log", "w")
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
             "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
             f"--ServerApp.root_dir={self.scratch}", "--LabApp.expose_app_in_browser=True",
             f"--LabApp.user_settings_dir={self.scratch / 'settings'}",
             f"--LabApp.workspaces_dir={self.scratch / 'workspaces'}"],
            cwd=self.course, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=5)
                return server
            except OSError:
                time.sleep(0.5)
        server.kill()
        tail = (self.scratch / "jupyterlab.log").read_text()[-3000:]
        raise RuntimeError("JupyterLab did not start:\n" + tail)

    def open(self, path):
        self.page.evaluate(OPEN, Path(path).as_posix())

    def run_all(self):
        """Run every cell of the open notebook; return what JupyterLab shows for each code cell."""
        self.page.evaluate(RUN_ALL)
        self.page.wait_for_function(IMAGES_LOADED)
        return self.page.evaluate(CELLS)

    def close(self):
        self.page.evaluate(CLOSE)

    def stop(self):
        self.browser.close()
        self.playwright.stop()
        self.server.terminate()  # the server shuts its kernels down
        self.server.wait(timeout=60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("browser"))
    yield lab
    lab.stop()


def screenshot(lab, folder, name):
    lab.page.screenshot(path=str(folder / f"{name}.png"))
    print(f"screenshot: {folder / name}.png")


def draws_graphs(cells):
    """Whether a cell that draws a graph (course_utils.graphs) ran without an error (a stub's cells may not)."""
    return any(re.search(r"(?<![.\w])show\(|torch_graph\(", c["source"]) and not c["errors"] for c in cells) \
        and any("course_utils.graphs" in c["source"] for c in cells)


def learning_rate_slider_redraws_its_plot(lab, folder):
    """Move the lecture's lr slider with the keyboard, as a student would; its plot must change."""
    cell = lab.page.locator(".jp-CodeCell", has_text="def show_learning_rate")
    widget = cell.locator(".jp-OutputArea .widget-interact")
    handle = widget.locator(".noUi-handle")
    readout, plot = widget.locator(".widget-readout"), widget.locator("img")
    before_value, before_plot = readout.inner_text(), plot.get_attribute("src")
    handle.scroll_into_view_if_needed()
    cell.screenshot(path=str(folder / "slider-before.png"))
    handle.focus()
    for _ in range(4):
        handle.press("ArrowRight")
    lab.page.wait_for_function("([widget, before]) => { const img = widget.querySelector('img');"
                               " return img && img.src !== before && img.complete && img.naturalWidth > 0; }",
                               arg=[widget.element_handle(), before_plot])
    cell.screenshot(path=str(folder / "slider-after.png"))
    assert float(readout.inner_text()) > float(before_value), "the slider's value did not move"


MATH_NOTEBOOKS = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("source/*/*.ipynb")])
MATH_CONTROLS = {  # wrong on purpose: the check must flag each, or it checks nothing
    "unescaped _ in \\text": r"Kaiming's variance $\frac{2}{n}\quad\text{(fan_in mode)}$.",
    "undefined macro": r"The mean $\meanof{x}$.",
    "escaped dollars": r"An hour of GPU costs 2 k\$, an hour of CPU 1 k\$.",
}


FORMULA = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\\begin\{([a-z]+\*?)\}.+?\\end\{\1\}"
                     r"|\$(?:[^$\n]|\n(?!\s*\n))+?\$", re.S)


def formulas(markdown):
    """How many formulas the author wrote ($..$, $$..$$, \\(..\\), \\[..\\], environments; not in code;
    an escaped \\$ is a dollar sign)."""
    text = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.S).replace("\\$", "")
    return sum(1 for _ in FORMULA.finditer(text))


def markdown_cells():
    """[(where, markdown, nbconvert's static HTML of it)] for every non-empty markdown cell of the
    lectures and assignments, then the controls."""
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    notebooks = {path.relative_to(ROOT).as_posix(): samples.read(path) for path in MATH_NOTEBOOKS}
    notebooks["control"] = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(text) for text in MATH_CONTROLS.values()])
    found = []
    for name, nb in notebooks.items():
        html = BeautifulSoup(exporter.from_notebook_node(nb)[0], "html.parser")
        rendered = html.select(".jp-MarkdownCell .jp-RenderedMarkdown")
        markdown = [(number, cell) for number, cell in enumerate(nb.cells) if cell.cell_type == "markdown"]
        assert len(rendered) == len(markdown), f"{name}: nbconvert's HTML lost a markdown cell"
        found += [(f"{name} cell {number}", cell.source, fragment.decode_contents())
                  for (number, cell), fragment in zip(markdown, rendered) if cell.source.strip()]
    return found


def test_every_notebooks_math_typesets_in_jupyterlab_and_in_static_html(lab):
    """All markdown of notebooks/ and source/ in one notebook, opened once: JupyterLab's MathJax must
    typeset every formula without a TeX error, and find exactly the formulas the author wrote, both in
    JupyterLab and in nbconvert's static HTML (the feedback and the edition preview). Two `k\\$` in a
    paragraph become one formula in both: the markdown renderers turn `\\$` into `$`."""
    cells = markdown_cells()
    assert len(MATH_NOTEBOOKS) == 18
    markdown = [nbformat.v4.new_markdown_cell(text) for _, text, _ in cells]
    metadata = samples.read(MATH_NOTEBOOKS[0]).metadata   # its kernel: no "select a kernel" dialog
    nbformat.write(nbformat.v4.new_notebook(cells=markdown, metadata=metadata), lab.scratch / "math.ipynb")
    lab.open("math.ipynb")
    try:
        shown = lab.page.evaluate(MATH, [html for *_, html in cells])
    finally:
        lab.close()
    problems = {}
    for (where, text, _), in_lab, in_html in zip(cells, shown["lab"], shown["html"]):
        found = [f"TeX error in JupyterLab: {e}" for e in in_lab["errors"]]
        found += [f"TeX error in static HTML: {e}" for e in in_html["errors"]]
        if not formulas(text) == in_lab["math"] == in_html["math"]:
            found.append(f"{formulas(text)} formulas written, {in_lab['math']} typeset in JupyterLab, "
                         f"{in_html['math']} in static HTML")
        if found:
            problems[where] = f"{where}: {'; '.join(found)}\n{text[:300]}"
    assert sum(c["math"] for c in shown["lab"]) > 500, "JupyterLab typeset (almost) no math"
    missed = [where for where, *_ in cells if where.startswith("control") and where not in problems]
    controls = {where: (lab_found, html_found) for (where, *_), lab_found, html_found
                in zip(cells, shown["lab"], shown["html"]) if where.startswith("control")}
    assert not missed, f"the check no longer flags its wrong-on-purpose controls: {controls}"
    assert all(where.startswith("control") for where in problems), \
        "\n\n".join(p for where, p in problems.items() if not where.startswith("control"))


@pytest.mark.parametrize("relative", LECTURES + RELEASES, ids=[p.as_posix() for p in LECTURES + RELEASES])
def test_notebook_runs_in_jupyterlab(lab, relative, tmp_path):
    started = time.perf_counter()
    lab.open(Path("edition") / relative)
    cells = lab.run_all()
    seconds = time.perf_counter() - started
    screenshot(lab, tmp_path, relative.stem)
    try:
        assert all(c["count"] is not None for c in cells), "cells left unrun"
        lecture = relative.parts[0] == "notebooks"
        first_exercise = next((i for i, c in enumerate(cells) if "# YOUR CODE HERE" in c["source"]),
                              len(cells))
        unbound = set()
        for number, cell in enumerate(cells):
            where = f"{relative} code cell {number}:\n{cell['source'][:200]}\n--> {cell['text'][-800:]}"
            if lecture or number < first_exercise:
                assert not cell["errors"], f"error: {where}"
            for error in cell["errors"]:
                assert expected_error(nbformat.from_dict(error), unbound), \
                    f"not a stub's NotImplementedError: {where}"
            if cell["errors"]:
                unbound |= bound_names(cell["source"])
            assert cell["drawn"] >= cell["figures"], f"a figure is not shown as an image: {where}"
            # a widget is drawn by the widget manager (a closed one, like a finished progress bar, as nothing)
            drawn_widgets = cell["widget_views"] == cell["widgets"]
            assert drawn_widgets and "Error displaying widget" not in cell["text"], \
                f"a widget is not drawn: {where}"
        if draws_graphs(cells) and shutil.which("dot"):
            assert sum(c["graphs"] for c in cells) >= 1, f"{relative}: no computational graph drawn"
        if relative == SLIDER_LECTURE:
            learning_rate_slider_redraws_its_plot(lab, tmp_path)
    finally:
        lab.close()
    in_cells = sum(c["seconds"] for c in cells)
    print(f"{relative}: {seconds:.1f} s in JupyterLab, {in_cells:.1f} s of it in the cells")


def test_formgrader_lists_every_unit(lab, tmp_path):
    lab.page.evaluate("() => window.jupyterapp.commands.execute('nbgrader:open-formgrader')")
    formgrader = lab.page.frame_locator("iframe")
    for unit in units():
        formgrader.get_by_text(unit, exact=True).first.wait_for()
    screenshot(lab, tmp_path, "formgrader")
    lab.page.evaluate("() => window.jupyterapp.commands.execute('application:close-all')")


@pytest.mark.parametrize("solved", [True, False], ids=["solved", "stub"])
def test_validate_button_passes_a_solved_assignment_and_fails_a_stub(lab, solved, tmp_path):
    unit = units()[0]
    student = lab.scratch / "student" / ("solved" if solved else "stub")
    student.mkdir(parents=True)
    nbformat.write(samples.student_notebook(ROOT, unit, solved=solved), student / f"{unit}.ipynb")
    lab.open((student / f"{unit}.ipynb").relative_to(lab.scratch))
    try:
        lab.page.get_by_role("button", name="Validate").last.click()
        dialog = lab.page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for()
        screenshot(lab, tmp_path, "validate")
        text = dialog.inner_text()
        if solved:
            assert "Success! Your notebook passes all the tests." in text
        else:
            assert "The following cell failed" in text and "NotImplementedError" in text
        dialog.get_by_role("button", name="Ok").click()
    finally:
        lab.close()
