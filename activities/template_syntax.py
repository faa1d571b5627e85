"""The print room's template syntax, `%Name%` variables and a `%BeginJob%`…`%EndJob%` block, translated to Jinja2."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

from jinja2 import Environment, TemplateSyntaxError
from jinja2.ext import Extension

BEGIN_JOB, END_JOB = "BeginJob", "EndJob"
JOB_LOOP_NAME = "Job"  # the Jinja name of the current job inside the block

# Jinja's own tags are left alone: `%` inside {% … %} is Jinja syntax, not a variable.
_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
# `%%` is one literal percent sign; `%Name%` is a variable; any other `%` ("100% recycled") stays as it is.
_PERCENT = re.compile(r"%%|%([A-Za-z][A-Za-z0-9_]*)%")
_URL_ESCAPE = re.compile(r"[0-9A-Fa-f]{2}")


def translate(
    source: str,
    *,
    order_names: Collection[str],
    job_names: Collection[str],
    template: str | None = None,
    filename: str | None = None,
) -> str:
    """Jinja source for a template written with `%` variables. Line numbers are kept, so Jinja's errors point at
    the line the administrator wrote. Raises TemplateSyntaxError naming the variable and the line."""
    out: list[str] = []
    in_job_block_since: int | None = None
    line = 1

    def fail(message: str, at: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(message, at, template, filename)

    def replace(match: re.Match[str], base_line: int, text: str) -> str:
        nonlocal in_job_block_since
        name = match.group(1)
        at = base_line + text.count("\n", 0, match.start())
        if name is None:
            return "%"
        if _URL_ESCAPE.fullmatch(name):  # caf%C3%A9 in a link: percent-encoding, not a variable
            return match.group()
        if name == BEGIN_JOB:
            if in_job_block_since is not None:
                raise fail(f"%{BEGIN_JOB}% inside the job block opened on line {in_job_block_since}: close it first", at)
            in_job_block_since = at
            return f"{{% for {JOB_LOOP_NAME} in Jobs %}}"
        if name == END_JOB:
            if in_job_block_since is None:
                raise fail(f"%{END_JOB}% without a %{BEGIN_JOB}% before it", at)
            in_job_block_since = None
            return "{% endfor %}"
        if name in job_names:
            if in_job_block_since is None:
                raise fail(
                    f"%{name}% is a product (job) variable: use it between %{BEGIN_JOB}% and %{END_JOB}%, "
                    "which repeat for each job of the order", at
                )  # fmt: skip
            return f"{{{{ {JOB_LOOP_NAME}.{name} }}}}"
        if name in order_names:
            return f"{{{{ {name} }}}}"
        known = [*order_names, *job_names, BEGIN_JOB, END_JOB]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean %{close[0]}%? " if close else ""
        raise fail(
            f"unknown variable %{name}%; {hint}(`printroom templates variables` lists them; "
            "write %% for a literal percent sign before a word)", at
        )  # fmt: skip

    position = 0
    for tag in [*_JINJA_TAG.finditer(source), None]:
        end = tag.start() if tag else len(source)
        text = source[position:end]
        out.append(_PERCENT.sub(lambda m, base=line, t=text: replace(m, base, t), text))
        line += text.count("\n")
        if tag:
            out.append(tag.group())
            line += tag.group().count("\n")
            position = tag.end()
    if in_job_block_since is not None:
        raise fail(f"%{BEGIN_JOB}% on line {in_job_block_since} is never closed by %{END_JOB}%", line)
    return "".join(out)


class PercentVariables(Extension):
    """Applies `translate` to every template the environment loads (shipped, customised, previewed alike).
    The names come from `environment.order_variables` and `environment.job_variables`."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.extend(order_variables=frozenset(), job_variables=frozenset())

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        env = self.environment
        return translate(
            source,
            order_names=env.order_variables,  # type: ignore[attr-defined]
            job_names=env.job_variables,  # type: ignore[attr-defined]
            template=name,
            filename=filename,
        )
