"""Feedback HTML for a whole class: nbconvert's exporter, with its compiled templates kept per process."""
import jinja2
from nbconvert.exporters import HTMLExporter


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


class CachedHTMLExporter(HTMLExporter):
    """HTMLExporter that compiles nbgrader's feedback templates once per grading worker, not per notebook."""

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _TEMPLATES
        return environment
