"""An operator's edits to a held draft, as the desk's form gives them: turned into the `edit_and_send` payload, and
rendered as a preview by the very code that sends (`build_from_draft`), with nothing written to the order."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from markupsafe import escape

from printroom.activities.assemble import EmailAssembler
from printroom.activities.documents import KIND_LABELS, DocumentStore
from printroom.activities.drafts import build_from_draft
from printroom.activities.rendering import TemplateRenderer
from printroom.models import Draft, SendDraft, StatusEmailRequest
from printroom.settings import Settings
from printroom.workflows.drafts import DraftBook, HeldDraft

# The layout marks the parts its text alternative is made from; the first is the email's body.
BODY_PART = re.compile(r"<!--text-->.*?<!--/text-->", re.S)
FOOTER_BREAK = "\n\n-- \n"  # plain_text's separator between the body and the footer
# A link as the text part writes it, [label](https://...): a link again in the HTML made from the text.
TEXT_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s()<>\"]+)\)")


class EditRefused(Exception):
    """The edits cannot make one email (a note and a text change on the same lines); the message says what to do."""


@dataclass(frozen=True)
class Edits:
    """What the operator changed, as the form gave it (CRLF already made LF); None: left as the draft has it."""

    by: str
    subject: str | None = None
    note: str | None = None
    text: str | None = None
    cc: list[str] | None = None
    to: list[str] | None = None
    attachments: list[str] | None = None


@dataclass(frozen=True)
class Preview:
    """The email as it will go out: headers, text part and HTML part."""

    subject: str
    to: list[str]
    cc: list[str]
    text: str
    html: str
    attachments: list[str]


def html_from_text(layout_html: str, text: str) -> str:
    """A simple HTML part from the operator's text: paragraphs in place of the layout's body (its links links again),
    so the header, the logo and the footer stay. An HTML without the layout's marks becomes the paragraphs alone."""
    body = text.split(FOOTER_BREAK, 1)[0].strip()
    paragraphs = "\n".join(
        "<p>" + "<br>\n".join(TEXT_LINK.sub(r'<a href="\2">\1</a>', str(escape(line))) for line in block.splitlines()) + "</p>"
        for block in re.split(r"\n\s*\n", body) if block.strip()
    )  # fmt: skip
    marked = f"<!--text-->\n{paragraphs}\n<!--/text-->"
    if BODY_PART.search(layout_html):
        return BODY_PART.sub(lambda _: marked, layout_html, count=1)
    return f"<!DOCTYPE html>\n<html><body>\n{marked}\n</body></html>\n"


def merge_note(base: str, edited: str, noted: str) -> str:
    """The operator's text edit and the template's note, both in one text: the lines the note changed in the
    draft's text (`base` -> `noted`) changed the same way in the operator's text (`base` -> `edited`)."""
    base_lines, edited_lines = base.splitlines(keepends=True), edited.splitlines(keepends=True)
    # Where each line of the draft's text is in the operator's text (None: the operator changed it).
    at: dict[int, int] = {}
    for block in difflib.SequenceMatcher(None, base_lines, edited_lines, autojunk=False).get_matching_blocks():
        at.update({block.a + k: block.b + k for k in range(block.size)})
    result, taken = list(edited_lines), 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base_lines, noted.splitlines(keepends=True), autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        anchor = at.get(i1) if i1 < len(base_lines) else len(edited_lines)
        if anchor is None and i1 == i2 and i1 - 1 in at:  # an insertion after a line the operator kept
            anchor = at[i1 - 1] + 1
        if anchor is None or any(i not in at for i in range(i1, i2)):
            raise EditRefused("the note goes where you changed the text: write the note into the text instead")
        start = anchor + taken
        result[start : start + (i2 - i1)] = noted.splitlines(keepends=True)[j1:j2]
        taken += (j2 - j1) - (i2 - i1)
    return "".join(result)


class DraftEditor:
    """Turns the desk's form into the update's payload, and previews it exactly as the worker would send it."""

    def __init__(self, settings: Settings) -> None:
        self.assembler = EmailAssembler(settings, TemplateRenderer(settings.templates.override_dir), DocumentStore(settings.documents))

    def payload(self, draft: Draft, request: StatusEmailRequest, edits: Edits, now: datetime) -> dict[str, Any]:
        """The `edit_and_send` payload: only what changed. A text change becomes the text and a simple HTML part;
        with a note too, the note is rendered by the template and merged into the changed text."""
        payload: dict[str, Any] = {"draft_id": draft.id, "by": edits.by}
        if edits.subject is not None and edits.subject != draft.subject:
            payload["subject"] = edits.subject
        for field in ("cc", "to", "attachments"):
            if (value := getattr(edits, field)) is not None and value != getattr(draft, field):
                payload[field] = value
        text_changed = edits.text is not None and _same_text(edits.text) != _same_text(draft.text)
        if not text_changed:
            if edits.note:
                payload["note"] = edits.note
            return payload
        assert edits.text is not None
        text, layout = edits.text, draft.html
        if edits.note:
            noted = self.build(draft, request, SendDraft(draft_id=draft.id, note=edits.note), now)
            text, layout = merge_note(_same_text(draft.text), _same_text(edits.text), _same_text(noted.text)), noted.html
        payload["text"], payload["html"] = text, html_from_text(layout or draft.html, text)
        return payload

    def documents(self, draft: Draft, request: StatusEmailRequest) -> list[str]:
        """What an operator may attach here: the order's own documents (every kind), and what the draft carries."""
        own = self.assembler.documents.references(request.order, list(KIND_LABELS))
        return list(dict.fromkeys([*draft.attachments, *own]))

    def check(self, draft: Draft, request: StatusEmailRequest, payload: dict[str, Any]) -> SendDraft:
        """The workflow's own checks (DraftBook.check) on the payload; raises pydantic's ValidationError or
        DraftRefused with the reason the update would give."""
        edits = SendDraft.model_validate(payload)
        DraftBook.check(HeldDraft(draft, request), edits)
        return edits

    def build(self, draft: Draft, request: StatusEmailRequest, edits: SendDraft, now: datetime) -> Preview:
        """The email by `build_from_draft`, the send's own code; raises TemplateError, AttachmentError."""
        assembled = build_from_draft(self.assembler, request, draft, edits, now=now)
        message = message_from_bytes(assembled.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        html, text = message.get_body(("html",)), message.get_body(("plain",))
        return Preview(
            subject=str(message["Subject"] or ""), to=[a.addr_spec for a in message["To"].addresses],
            cc=[a.addr_spec for a in message["Cc"].addresses] if message["Cc"] else [],
            text=text.get_content() if text is not None else "", html=html.get_content() if html is not None else "",
            attachments=[p.get_filename() or "" for p in message.walk() if p.get_content_disposition() == "attachment"],
        )  # fmt: skip


def _same_text(text: str) -> str:
    """Text as compared and merged: LF line ends, no trailing blanks at its end."""
    return text.replace("\r\n", "\n").rstrip() + "\n"
