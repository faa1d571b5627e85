"""T2, T4: every template of every active language, rendered as it would be sent, before any customer sees one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import TemplateSyntaxError

from printroom.activities.assemble import ANSWERED_BY_LINK, EmailAssembler
from printroom.activities.documents import DocumentStore
from printroom.activities.rendering import TemplateError, TemplateRenderer, template_file
from printroom.worker.sample import sample_request
from printroom.activities.template_syntax import JOB_LOOP_NAME
from printroom.activities.variables import JOB_NAMES, ORDER_NAMES, SMTP_TEST
from printroom.links import LinkSigner
from printroom.models import Audience
from printroom.settings import Settings, WebSettings
from printroom.statemachines.emails import EMAIL_TRIGGERS

AUDIENCES: tuple[Audience, ...] = ("customer", "operators", "approvers")
# Names the layout and the per-job block use besides the catalogue's (Jinja's own globals are added from the env).
_INTERNAL_NAMES = frozenset({"Jobs", "Language", JOB_LOOP_NAME, "self", "loop"})


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def templates_in_use(settings: Settings) -> list[str]:
    """Every email trigger, the templates policies name instead, and the SMTP test email's."""
    named = [settings.emails.for_trigger(t).template or t for t in EMAIL_TRIGGERS]
    return list(dict.fromkeys([*EMAIL_TRIGGERS, *named, SMTP_TEST]))


def check_templates(settings: Settings, renderer: TemplateRenderer | None = None) -> list[Problem]:
    """Missing translations, templates that do not compile, unknown variables, and renders that fail with the
    sample order for any audience, and for every shop (its sender, order page and images). An empty list means
    every email can be built."""
    renderer = renderer or TemplateRenderer(settings.templates.override_dir)
    assembler = EmailAssembler(settings, renderer, DocumentStore(settings.documents))
    # The approvers' emails also as they go with answer links (web.public_url set): the other branch of the template.
    with_links = settings.model_copy(update={"web": WebSettings.model_construct(public_url="https://printroom.example")})
    linked = EmailAssembler(with_links, renderer, DocumentStore(settings.documents), LinkSigner(b"template-check" * 3))
    problems = [*_unknown_overrides(settings, renderer), *_unknown_names(renderer, settings.languages)]
    now = datetime.now(timezone.utc)
    for language in settings.languages:
        for template in templates_in_use(settings):
            if renderer.origin(template, language) is None:
                where = renderer.override_dir or renderer.default_dir
                problems.append(Problem(f"{language}/{template}", f"missing; add {where / template_file(template, language)}"))
                continue
            every = [("default", audience) for audience in (AUDIENCES if template != SMTP_TEST else AUDIENCES[:1])]
            every += [(shop, "customer") for shop in settings.shops if shop != "default" and template != SMTP_TEST]
            every += [("default", "approvers-linked")] if template in ANSWERED_BY_LINK else []
            for shop, audience in every:
                try:
                    if audience == "approvers-linked":
                        _render_sample(linked, settings, template, language, "approvers", shop, now, recipient="head@example.org")
                    else:
                        _render_sample(assembler, settings, template, language, audience, shop, now)
                except TemplateError as error:
                    problems.append(Problem(f"{language}/{template}", str(error) + (f" (shop {shop})" if shop != "default" else "")))
                    break  # one message per template is enough to fix it
                except Exception as error:  # noqa: BLE001  # a variable's own failure, e.g. a shop's order page
                    problems.append(Problem(f"{language}/{template}", f"shop {shop}: {type(error).__name__}: {error}"))
                    break
    return list(dict.fromkeys(problems))


def _render_sample(
    assembler: EmailAssembler, settings: Settings, template: str, language: str, audience: Audience, shop: str, now: datetime,
    recipient: str | None = None,
) -> None:
    request = None
    if template != SMTP_TEST:
        request = sample_request(template)
        request = request.model_copy(update={"order": request.order.model_copy(update={"shop": shop})})
    context = assembler.context(shop, now=now, request=request, audience=audience, recipient=recipient)
    assembler.render(template, [language], context, settings.images_for(shop))


def _unknown_names(renderer: TemplateRenderer, languages: list[str]) -> list[Problem]:
    """Names written as Jinja ({{ Name }}, {% if Name %}) that no template may use: found even in a branch the
    sample order does not take."""
    known = ORDER_NAMES | JOB_NAMES | _INTERNAL_NAMES | renderer.global_names
    problems = []
    for name in renderer.template_names(languages):
        try:
            read = renderer.free_names(name)
        except TemplateSyntaxError as error:
            problems.append(Problem(name.removesuffix(".html.j2"), renderer.describe(error, *_split(name))))
            continue
        for unknown in sorted(set(read) - known):
            unknown_name = TemplateSyntaxError(f"unknown variable {unknown!r}", read[unknown], name)
            problems.append(Problem(name.removesuffix(".html.j2"), renderer.describe(unknown_name, *_split(name))))
    return problems


def _split(name: str) -> tuple[str, str]:
    language, _, rest = name.partition("/")
    return rest.removesuffix(".html.j2"), language


def _unknown_overrides(settings: Settings, renderer: TemplateRenderer) -> list[Problem]:
    """A customised file whose name no email uses is never sent: most likely a misspelt trigger."""
    override = renderer.override_dir
    if override is None or not override.is_dir():
        return []
    known = set(templates_in_use(settings))
    problems = []
    for path in sorted(override.rglob("*")):
        if not path.is_file() or path.name.startswith(("_", ".")):
            continue
        relative = path.relative_to(override)
        template = path.name.removesuffix(".html.j2")
        if not path.name.endswith(".html.j2") or len(relative.parts) != 2 or template not in known:
            problems.append(Problem(str(Path(override, relative)), "not a template of any email; check its name (<lang>/<trigger>.html.j2)"))
        elif relative.parts[0] not in settings.languages:
            problems.append(Problem(str(Path(override, relative)), f"language {relative.parts[0]!r} is not active (languages = {settings.languages})"))
    return problems
