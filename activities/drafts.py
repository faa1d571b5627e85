"""Held drafts (E2-E4): an email rendered for an operator instead of sent, and later built from it with the
operator's edits. Pure but for reading templates, images and files through the assembler."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.utils import formataddr

from markupsafe import escape

from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.compose import message_id, thread_references
from printroom.activities.rendering import RenderedEmail, TemplateError, plain_text
from printroom.models import Audience, Draft, DraftContent, DraftRules, SendDraft, StatusEmailRequest

KB = 1024


def make_draft(
    assembler: EmailAssembler,
    request: StatusEmailRequest,
    audience: Audience,
    *,
    to: list[str],
    cc: list[str],
    now: datetime,
    rules: DraftRules,
    reason: str = "",
    operator_url: str | None = None,
) -> DraftContent:
    """The email as it would be sent, held. A template that cannot be rendered, or renders more HTML than a
    draft may hold, still gives a draft: without HTML, with the reason, rendered again when it is sent."""
    order, trigger = request.order, request.email_trigger
    sender = assembler.sender_for(order.shop)
    recipient = assembler.recipient(request, audience, to)
    msg_id = message_id(request, audience, sender.domain, recipient)
    held = DraftContent(
        email_trigger=trigger,
        audience=audience,
        sender=formataddr((sender.display_name, sender.addr_spec)),
        to=to,
        cc=cc,
        attachments=assembler.documents.references(order, assembler.settings.emails.for_trigger(trigger).attachments),
        message_id=msg_id,
        references=thread_references(request, audience, sender.domain, recipient),
        reason=reason,
        rules=rules,
        shop=order.shop,
        preview_url=assembler.preview_url(order.id, msg_id, now),
        customer=order.customer.name or str(order.customer.email),
    )
    try:
        rendered, _ = assembler.render_for(request, audience, now=now, operator_url=operator_url, recipient=recipient)
    except Exception as error:  # noqa: BLE001  # the draft is held whatever broke: it says what, and renders again when sent
        what = str(error) if isinstance(error, TemplateError) else f"{type(error).__name__}: {error}"
        return held.model_copy(update={"reason": _also(reason, f"the template cannot be rendered: {what}")})
    full = held.model_copy(
        update={"subject": rendered.subject, "html": rendered.html, "text": rendered.text, "language": rendered.language}
    )
    if (size := full.body_bytes) > rules.max_html_kb * KB:
        return full.without_body(f"its HTML and text come to {size // KB} KB, over drafts.max_html_kb = {rules.max_html_kb}")
    return full


# What the drafts of one activity result may carry (it is recorded in the order's history, where 2 MB is the end).
RESULT_BUDGET = 1024 * KB


def within_budget(drafts: list[DraftContent], budget: int = RESULT_BUDGET) -> list[DraftContent]:
    """The drafts as they can go into one result: past the budget, held without their body."""
    kept, used = [], 0
    for draft in drafts:
        if used + draft.body_bytes > budget:
            draft = draft.without_body("held without its body: this status change held more than 1 MB of drafts")
        used += draft.body_bytes
        kept.append(draft)
    return kept


def build_from_draft(
    assembler: EmailAssembler,
    request: StatusEmailRequest,
    draft: Draft,
    edits: SendDraft,
    *,
    now: datetime,
    operator_url: str | None = None,
) -> AssembledEmail:
    """The held email with the operator's edits, as bytes: same Message-ID and thread as the automatic one.
    A note is placed by the template (%OperatorNote%), so it renders the email again; so does a draft held
    without HTML. Otherwise what the operator read is what goes, with their HTML and text if they gave any
    (the text regenerated from their HTML unless they wrote it too). Raises TemplateError, AttachmentError."""
    order = request.order
    if edits.note or not (edits.html or draft.html):
        rendered, images = assembler.render_for(
            request, draft.audience, now=now, operator_url=operator_url, operator_note=edits.note or "",
            recipient=assembler.recipient(request, draft.audience, draft.to),
        )  # fmt: skip
        if edits.note and str(escape(edits.note)) not in rendered.html:
            raise TemplateError(
                f"the {draft.email_trigger} template shows no %OperatorNote%, so the note would be lost; "
                "write it into the html instead, or add %OperatorNote% to the template"
            )
        rendered = replace(rendered, subject=edits.subject or rendered.subject, text=edits.text or rendered.text)
    else:
        html = edits.html or draft.html
        text = edits.text or (plain_text(html) if edits.html else draft.text)
        rendered = RenderedEmail(
            subject=edits.subject or draft.subject, html=html, text=text, language=draft.language, template=draft.email_trigger
        )
        images = assembler.images_shown(html, order.shop)
    attachments = assembler.documents.files(edits.attachments if edits.attachments is not None else draft.attachments)
    return assembler.build(
        rendered, sender=assembler.sender_for(order.shop), to=draft_to(draft, edits), cc=draft_cc(draft, edits),
        message_id=draft.message_id, now=now, references=draft.references, images=images, attachments=attachments,
    )  # fmt: skip


def draft_cc(draft: Draft, edits: SendDraft) -> list[str]:
    return [str(a) for a in edits.cc] if edits.cc is not None else draft.cc


def draft_to(draft: Draft, edits: SendDraft) -> list[str]:
    return [str(a) for a in edits.to] if edits.to is not None else draft.to


def _also(reason: str, more: str) -> str:
    return f"{reason}; {more}" if reason else more
