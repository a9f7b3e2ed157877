"""Feedback HTML for a whole class: nbconvert's exporter, with its compiled templates, each cell's
highlighted code and each Markdown cell's HTML kept per process (most cells are the same in every
student's notebook). The HTML is what nbconvert's own HTMLExporter writes, byte for byte (tested)."""
import re
import secrets

import jinja2
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.highlight import Highlight2HTML


class _TemplatesInMemory(jinja2.BytecodeCache):
    """Compiled templates by name and source checksum (an edited template is compiled again)."""

    def __init__(self):
        self.compiled = {}

    def load_bytecode(self, bucket):
        if (bucket.key, bucket.checksum) in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key, bucket.checksum])

    def dump_bytecode(self, bucket):
        self.compiled[bucket.key, bucket.checksum] = bucket.bytecode_to_string()


_TEMPLATES = _TemplatesInMemory()
_RENDERED = {}  # (filter, its settings, cell source, ...): HTML; emptied when it grows past _KEPT
_KEPT = 20_000
_TOKEN = f"course-code-{secrets.token_hex(8)}-"  # an element standing for a code block while BeautifulSoup reads the page


def _remembered(key, render):
    if key not in _RENDERED:
        if len(_RENDERED) >= _KEPT:
            _RENDERED.clear()
        _RENDERED[key] = render()
    return _RENDERED[key]


class CachedHTMLExporter(HTMLExporter):
    """HTMLExporter that compiles nbgrader's feedback templates once per grading worker, not per notebook,
    and renders a cell's code or Markdown once per worker when it is the same as in an earlier notebook."""

    _blocks = None  # while a page with nbgrader's feedback template renders: {token element: code block}

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _TEMPLATES
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        """HTMLExporter's, which reads its page with BeautifulSoup and writes it again (alt texts, tab
        stops): with nbgrader's feedback template, whose code blocks come straight from highlight_code,
        each block stands in the page as a token meanwhile and comes back as BeautifulSoup writes it
        alone, kept per worker. Code blocks are nine tenths of a page's tags."""
        self._blocks = {} if self.template_name == "feedback" else None
        try:
            html, resources = super().from_notebook_node(nb, resources, **kw)
        finally:
            blocks, self._blocks = self._blocks, None
        if blocks:
            html = re.sub(f"<({re.escape(_TOKEN)}\\d+)></\\1>", lambda token: blocks[token.group(0)], html)
        return html, resources

    def register_filter(self, name, jinja_filter):
        if name == "highlight_code" and isinstance(jinja_filter, Highlight2HTML):  # made per notebook
            highlight = jinja_filter

            def jinja_filter(source, language=None, metadata=None):
                magics = (metadata or {}).get("magics_language")
                key = ("highlight", highlight.pygments_lexer, repr(highlight.extra_formatter_options),
                       source, language, magics)
                code = _remembered(key, lambda: highlight(source, language, metadata))
                if self._blocks is None:
                    return code
                # the block's own whitespace stays in the page, where BeautifulSoup merges it with the
                # template's as it would around the block
                block = code.strip()
                token = f"{_TOKEN}{len(self._blocks)}"
                self._blocks[f"<{token}></{token}>"] = _remembered(
                    ("soup", block), lambda: str(BeautifulSoup(block, features="html.parser")))
                return code[:len(code) - len(code.lstrip())] + f"<{token}></{token}>" + code[len(code.rstrip()):]
        return super().register_filter(name, jinja_filter)

    @jinja2.pass_context
    def markdown2html(self, context, source):
        """HTMLExporter's markdown2html; a cell without attachments or embedded images does not depend
        on its notebook's path."""
        render = super().markdown2html
        if self.embed_images or context.get("cell", {}).get("attachments"):
            return render(context, source)
        key = ("markdown", self.anchor_link_text, self.exclude_anchor_links, repr(self.lexer_options), source)
        return _remembered(key, lambda: render(context, source))
