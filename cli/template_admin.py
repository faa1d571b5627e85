"""What `printroom templates …` does for an administrator: customise, reset, preview, list the variables."""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path
from typing import get_args

from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.documents import DocumentStore
from printroom.activities.rendering import TemplateRenderer, template_file
from printroom.worker.sample import SAMPLE_ORDER, sample_request
from printroom.worker.template_check import templates_in_use
from printroom.activities.variables import JOB_VARIABLES, SMTP_TEST, VARIABLES, Scope, scopes_of, template_values
from printroom.models import Audience, Order, validation_problems
from printroom.settings import Settings
from printroom.statemachines.emails import EMAIL_TRIGGERS
from printroom.statemachines.order import DRAFT_WAITING
from printroom.templates import DEFAULT_TEMPLATE_DIR


class AdminError(Exception):
    """A request the administrator must correct; the message says how."""


def _known(settings: Settings, template: str) -> None:
    known = templates_in_use(settings)
    partials = sorted(p.name.removesuffix(".html.j2") for p in DEFAULT_TEMPLATE_DIR.glob("en/_*.html.j2"))
    if template not in known and template not in partials:
        raise AdminError(f"no template {template!r}; templates: {', '.join(known)}; parts: {', '.join(partials)}")


def _languages(settings: Settings, language: str | None) -> list[str]:
    if language is None:
        return settings.languages
    if language not in settings.languages:
        raise AdminError(f"language {language!r} is not active (languages = {settings.languages})")
    return [language]


def customize(settings: Settings, template: str, language: str) -> Path:
    """T7: copy the shipped template into the override directory, to be edited there; never edits the shipped one."""
    _known(settings, template)
    (language,) = _languages(settings, language)
    target = settings.templates.override_dir / template_file(template, language)
    if target.exists():
        raise AdminError(f"{target} exists already: edit it, or `printroom templates reset {template} --lang {language}`")
    shipped = DEFAULT_TEMPLATE_DIR / template_file(template, language)
    if not shipped.is_file():
        raise AdminError(f"no shipped {template} in {language!r} to start from; write {target} from scratch")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shipped, target)
    return target


def reset(settings: Settings, template: str, language: str | None) -> list[Path]:
    """T7: remove the customised template(s) so the shipped default applies again. Returns what was removed."""
    _known(settings, template)
    removed = []
    for lang in _languages(settings, language):
        path = settings.templates.override_dir / template_file(template, lang)
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def load_order(path: Path | None) -> Order:
    if path is None:
        return SAMPLE_ORDER
    try:
        return Order.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as error:
        raise AdminError(f"cannot read the order {path}: {error}") from None
    except ValueError as error:
        problems = "\n  ".join(validation_problems(error))  # type: ignore[arg-type]
        raise AdminError(f"the order in {path} is not valid:\n  {problems}") from None


def preview(
    settings: Settings, email_trigger: str, language: str, *, order: Order, audience: Audience = "customer"
) -> AssembledEmail:
    """T9: exactly what a recipient whose order is in `language` would get (the activity's own code path, with
    the trigger's policy, template and sender); attachments are read as when sending, so a missing file shows."""
    if email_trigger not in EMAIL_TRIGGERS:
        raise AdminError(f"no email trigger {email_trigger!r}; triggers: {', '.join(EMAIL_TRIGGERS)}")
    _languages(settings, language)
    assembler = EmailAssembler(settings, TemplateRenderer(settings.templates.override_dir), DocumentStore(settings.documents))
    request = sample_request(email_trigger, order.model_copy(update={"language": language}))
    to = [str(order.customer.email)] if audience == "customer" else [f"{audience}@example.com"]
    cc = assembler.cc_for(settings.emails.for_trigger(email_trigger)) if audience == "customer" else []
    return assembler.assemble(request, audience, to=to, cc=cc, now=datetime.now(timezone.utc))


def html_for_browser(email: AssembledEmail) -> str:
    """The HTML part with its inline images as data: URLs, so a browser shows what the mail client will."""
    message = message_from_bytes(email.data, policy=policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid:
            data = base64.b64encode(part.get_payload(decode=True)).decode()
            html = html.replace(f"cid:{cid.strip('<>')}", f"data:{part.get_content_type()};base64,{data}")
    return html


def variables_table(settings: Settings, template: str | None) -> list[tuple[str, str, str]]:
    """(name, description, example) for the variables of `template` (or all), examples from the sample order."""
    scopes = scopes_of(template) if template else get_args(Scope)
    if template:
        _known(settings, template)
    assembler = EmailAssembler(settings, TemplateRenderer(), DocumentStore(settings.documents))
    now = datetime(2026, 11, 28, 9, 30, tzinfo=timezone.utc)
    context = assembler.context("default", now=now, request=sample_request(template or DRAFT_WAITING))
    context = replace(context, images=frozenset(settings.images_for("default")))
    values = {**template_values(context, DRAFT_WAITING), **template_values(context, SMTP_TEST)}
    rows = [(f"%{v.name}%", v.description, str(values.get(v.name, ""))) for v in VARIABLES if v.scope in scopes]
    if "order" in scopes:
        first_job = values["Jobs"][0]
        rows.append(("%BeginJob% … %EndJob%", "repeats what is between them for each job of the order", ""))
        rows += [(f"  %{v.name}%", v.description + " (inside the job block only)", str(first_job[v.name])) for v in JOB_VARIABLES]
    return rows

