"""Renders an email trigger's template, in the order's language, from a sandboxed, autoescaping, strict Jinja2."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from templates import DEFAULT_TEMPLATE_DIR

_TEXT_CONFIG = ParserConfig(display_links=True)


_TEXT_PARTS = re.compile(r"<!--text-->(.*?)<!--/text-->", re.S)


def _as_text(html: str) -> str:
    lines = [line.rstrip() for line in get_text(html, _TEXT_CONFIG).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def plain_text(html: str) -> str:
    """The text/plain alternative. The layout marks its parts with <!--text--> ... <!--/text--> (body, footer):
    only those are converted, so the layout's tables cost nothing and the footer follows a `-- ` separator."""
    parts = _TEXT_PARTS.findall(html) or [html]
    return "\n\n-- \n".join(text for text in map(_as_text, parts) if text) + "\n"


class TemplateError(Exception):
    """A template that cannot be rendered: missing in every language tried, or broken. Retrying does not help."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    language: str
    template: str


class TemplateRenderer:
    """One per worker: compiled templates are cached, so rendering costs about a millisecond."""

    def __init__(self, template_dir: Path = DEFAULT_TEMPLATE_DIR) -> None:
        self.template_dir = template_dir
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(template_dir),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )

    def render(self, template: str, languages: Iterable[str], context: Mapping[str, Any]) -> RenderedEmail:
        """Render `template` in the first of `languages` that has it (order's, shop's, print room's)."""
        tried = list(dict.fromkeys(languages))
        for language in tried:
            try:
                compiled = self._env.get_template(f"{language}/{template}.html.j2")
            except TemplateNotFound:
                continue
            values = {**context, "Language": language}
            try:
                html = compiled.render(values)
                block = compiled.blocks["subject"](compiled.new_context(values))
                # The subject is rendered HTML-escaped like the body; a header wants the plain text back.
                subject = " ".join(Markup("".join(block)).unescape().split())
            except Exception as error:  # jinja2 raises many kinds; all mean the same to the caller
                raise TemplateError(f"template {template!r} ({language}) cannot be rendered: {error}") from error
            text = plain_text(html)
            return RenderedEmail(subject=subject, html=html, text=text, language=language, template=template)
        raise TemplateError(
            f"no template {template!r} in any of the languages {tried}; add {self.template_dir}/{tried[-1]}/{template}.html.j2"
        )
