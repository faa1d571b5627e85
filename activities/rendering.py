"""Renders a template (customised, else shipped) in one language: subject, HTML with CSS inlined, plain text."""

from __future__ import annotations

import re
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from printroom.activities.template_syntax import PercentVariables
from printroom.activities.variables import JOB_NAMES, ORDER_NAMES
from printroom.templates import DEFAULT_TEMPLATE_DIR

_TEXT_CONFIG = ParserConfig(display_links=True)
_TEXT_PARTS = re.compile(r"<!--text-->(.*?)<!--/text-->", re.S)


def _as_text(html: str) -> str:
    lines = [line.rstrip() for line in get_text(html, _TEXT_CONFIG).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_PART_BREAK = "PRINTROOM-TEXT-PART-7f3a9c"  # a word no email contains; the converter keeps it, unlike control characters


def plain_text(html: str) -> str:
    """The text/plain alternative. The layout marks its parts with <!--text--> ... <!--/text--> (body, footer):
    only those are converted, so the layout's tables cost nothing, and the footer follows a `-- ` separator.
    One conversion for all parts: each call of the converter costs a parse and a layout engine of its own."""
    parts = _TEXT_PARTS.findall(html) or [html]
    text = _as_text(f"<div>{_PART_BREAK}</div>".join(parts))
    return "\n\n-- \n".join(part.strip() for part in text.split(_PART_BREAK) if part.strip()) + "\n"


class TemplateError(Exception):
    """A template that cannot be rendered: missing in every language tried, or broken. Retrying does not help."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    language: str
    template: str


Origin = Literal["customised", "shipped"]


def template_file(template: str, language: str) -> str:
    return f"{language}/{template}.html.j2"


class TemplateRenderer:
    """One per worker: compiled templates are cached, so a render costs well under a millisecond. A customised
    template in `override_dir` (same layout as the shipped ones) wins over the shipped one of the same name.
    What a renderer has once found and compiled, it keeps: the worker checks every template at start with its own
    renderer, so a file edited later waits for a restart (after `printroom templates check`) instead of reaching
    customers unchecked."""

    def __init__(self, override_dir: Path | None = None, default_dir: Path = DEFAULT_TEMPLATE_DIR) -> None:
        self.override_dir, self.default_dir = override_dir, default_dir
        loaders = [FileSystemLoader(d) for d in (override_dir, default_dir) if d is not None]
        self._env = ImmutableSandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            extensions=[PercentVariables],
        )
        self._env.order_variables, self._env.job_variables = ORDER_NAMES, JOB_NAMES  # type: ignore[attr-defined]
        # <style> rules become style attributes: Gmail and Outlook ignore most of a <style> element.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)
        self._origins: dict[str, Origin | None] = {}

    def origin(self, template: str, language: str) -> Origin | None:
        """Where the template for this language comes from, or None when there is none."""
        name = template_file(template, language)
        if name not in self._origins:
            if self.override_dir is not None and (self.override_dir / name).is_file():
                self._origins[name] = "customised"
            else:
                self._origins[name] = "shipped" if (self.default_dir / name).is_file() else None
        return self._origins[name]

    def language_for(self, template: str, languages: list[str]) -> str:
        """T1: the first of `languages` (order's, shop's, print room's) that has this template."""
        for language in languages:
            if self.origin(template, language):
                return language
        where = self.override_dir or self.default_dir
        raise TemplateError(
            f"no template {template!r} in any of the languages {languages}; "
            f"add {where / template_file(template, languages[-1] if languages else 'en')}"
        )

    def template_names(self, languages: Collection[str]) -> list[str]:
        """Every template file (parts included) in these languages' folders, customised or shipped, and the layout."""
        wanted = {*languages, "_layout.html.j2"}
        return self._env.list_templates(filter_func=lambda n: n.endswith(".j2") and n.split("/")[0] in wanted)

    def free_names(self, name: str) -> dict[str, int]:
        """The names a template reads without setting them, each with the line it is first read on, found in every
        branch (not only the one a sample takes). Raises TemplateSyntaxError."""
        source = self._env.loader.get_source(self._env, name)[0]  # type: ignore[union-attr]
        tree = self._env.parse(source, name)
        first_lines: dict[str, int] = {}
        for node in tree.find_all(nodes.Name):
            first_lines.setdefault(node.name, node.lineno)
        return {unknown: first_lines.get(unknown, 1) for unknown in meta.find_undeclared_variables(tree)}

    @property
    def global_names(self) -> frozenset[str]:
        """Jinja's own globals (range, dict, ...), which every template may read."""
        return frozenset(self._env.globals)

    def render(self, template: str, language: str, values: dict[str, Any]) -> RenderedEmail:
        name = template_file(template, language)
        try:
            compiled = self._env.get_template(name)
            if "subject" not in compiled.blocks:
                raise TemplateError(f"{self._where(name)}: no subject; write it in {{% block subject %}}...{{% endblock %}}")
            source_html = compiled.render(values)
            context = compiled.new_context(values)
            # Subject and own text are rendered HTML-escaped like the body; a header or text part wants them back.
            subject = " ".join(Markup("".join(compiled.blocks["subject"](context))).unescape().split())
            own_text = ""
            if "text" in compiled.blocks:
                own_text = Markup("".join(compiled.blocks["text"](compiled.new_context(values)))).unescape().strip()
            html = self._inliner.inline(source_html)
        except TemplateError:
            raise
        except Exception as error:  # jinja2 raises many kinds; all mean the template must be fixed
            raise TemplateError(self.describe(error, template, language)) from error
        if not subject:
            raise TemplateError(f"{self._where(name)}: the subject is empty; write it in {{% block subject %}}")
        text = own_text + "\n" if own_text else plain_text(source_html)
        return RenderedEmail(subject=subject, html=html, text=text, language=language, template=template)

    def describe(self, error: Exception, template: str, language: str) -> str:
        """What an administrator needs: which file (customised or shipped), which line, what is wrong."""
        file, line = template_file(template, language), None
        if isinstance(error, TemplateSyntaxError):
            file, line = error.name or file, error.lineno
        elif isinstance(error, TemplateNotFound):
            return f"{self._where(file)}: it includes {error.name}, which does not exist"
        else:
            for frame in reversed(traceback.extract_tb(error.__traceback__)):
                if frame.filename.endswith(".j2"):
                    file, line = self._relative(frame.filename), frame.lineno
                    break
        message = getattr(error, "message", None) or str(error)
        at = f", line {line}" if line else ""
        return f"{self._where(file)}{at}: {message}"

    def _relative(self, filename: str) -> str:
        path = Path(filename)
        for base in (self.override_dir, self.default_dir):
            if base is not None and path.is_relative_to(base):
                return path.relative_to(base).as_posix()
        return filename

    def _where(self, file: str) -> str:
        language, _, rest = file.partition("/")
        template = rest.removesuffix(".html.j2") or file
        origin = self.origin(template, language) if rest else None
        return f"template {file} ({origin or 'layout'})"
