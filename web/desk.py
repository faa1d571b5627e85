"""The operators' desk in `printroom web`: every held draft of every order in one list (a signed link that names no
order), and each draft's editor (read, edit, preview, send or discard). It keeps no state: the visibility store
says which orders wait, each order's `drafts` query what waits, its `edit_and_send` update and `discard_draft`
signal do the rest, and their refusals are shown as the workflow gives them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import quote, unquote
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from babel.dates import format_timedelta
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from printroom.activities.documents import AttachmentError
from printroom.activities.rendering import TemplateError
from printroom.links import DraftLink, LinkError
from printroom.models import Draft, DraftSent, OrderState, order_workflow_id, validation_problems
from printroom.web.desk_mail import DraftEditor, EditRefused, Edits, Preview
from printroom.web.desk_text import DESK_TEXT, refusal_said
from printroom.web.forms import FormRefused, read_form
from printroom.web.pages import PREVIEW_POLICY
from printroom.web.temporal import DESK_QUERY_TIMEOUT, NoAnswer, NotWaiting, Refused, Unreachable
from printroom.web.text import TEXT, language_of
from printroom.workflows.drafts import DraftRefused

if TYPE_CHECKING:
    from printroom.web.app import Site

Link = TypeVar("Link")
PAGE_SIZE = 50
# The form's own bounds; the workflow's (SendDraft, drafts.max_html_kb) stay the final word.
MAX_BY, MAX_SUBJECT, MAX_NOTE, MAX_REASON, MAX_ADDRESSES = 200, 200, 2000, 2000, 20
ACTIONS = ("preview", "send", "discard")
# The operator's name, kept by the browser for the editor's next visit (a year); set by a send or a discard.
NAME_COOKIE, NAME_KEPT_FOR = "printroom_by", 365 * 24 * 3600


@dataclass(frozen=True)
class Row:
    """One held draft as the list shows it."""

    order_id: str
    draft: Draft
    url: str


class Desk:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.editor = DraftEditor(site.settings)
        drafts = site.settings.drafts
        # The editor's form carries the email's text: room for drafts.max_html_kb of it, URL-encoded.
        self.max_form = max(site.max_form, (3 * drafts.max_html_kb + 32) * 1024)
        self.max_text = drafts.max_html_kb * 1024

    def routes(self) -> list[Route]:
        return [
            Route("/{lang}/desk/{token}", self.desk),
            Route("/{lang}/drafts/{token}", self.draft, methods=["GET", "POST"]),
        ]

    def _read(self, lang: str, read: Callable[[str, datetime], Link], request: Request) -> Link | Response:
        """The link of the path, of the kind this page takes (another kind's signature does not hold: 403)."""
        try:
            return read(request.path_params["token"], self.site.clock())
        except LinkError as error:
            return self.site._forbidden(lang, error)

    # The list.

    async def desk(self, request: Request) -> Response:
        lang = language_of(request.path_params["lang"])
        link = self._read(lang, lambda token, now: self.site.signer.read_desk(token, now), request)
        if isinstance(link, Response):
            return link
        page = request.query_params.get("page", "1")
        number = max(1, int(page)) if page.isdigit() and len(page) < 7 else 1
        return await self.site._guarded(lang, lambda: self._list(request, lang, link.expires, number), _no_order(lang))

    async def _list(self, request: Request, lang: str, until: datetime, page: int) -> Response:
        orders = await self.site.temporal.waiting_orders(self.site.settings.temporal.task_queue)
        total = sum(o.drafts for o in orders)
        page, pages, picked = page_slice([o.drafts for o in orders], page)
        held = await asyncio.gather(*(self._waiting(orders[i].workflow_id) for i, _ in picked))
        rows: list[Row] = []
        now = self.site.clock()
        silent = [orders[i].workflow_id.removeprefix("order-") for (i, _), drafts in zip(picked, held) if drafts is None]
        for (i, shown), drafts in zip(picked, held):
            order_id = orders[i].workflow_id.removeprefix("order-")
            for draft in sorted(drafts or [], key=lambda d: d.created_at)[shown.start : shown.stop]:
                rows.append(Row(order_id, draft, self._editor_url(lang, order_id, draft, now)))
        d = DESK_TEXT[lang]
        return self.site.pages.page(
            "desk.html.j2", lang, title=d["desk_title"], d=d, rows=rows, page=page, pages=pages, total=total, silent=silent,
            until=until, now=now, age=lambda moment: format_timedelta(now - moment, locale=lang),
        )  # fmt: skip

    async def _waiting(self, workflow_id: str) -> list[Draft] | None:
        """An order's drafts; none when it closed since the visibility store listed it; None when it did not answer
        in time (no worker polls its queue): the page lists the others and names it."""
        try:
            return await self.site.temporal.drafts(workflow_id, DESK_QUERY_TIMEOUT)
        except NotWaiting:
            return []
        except Unreachable:
            return None

    def _editor_url(self, lang: str, order_id: str, draft: Draft, now: datetime) -> str:
        expires = now + self.site.settings.web.draft_link_valid_for
        return f"/{lang}/drafts/{self.site.signer.draft(DraftLink(order_id, draft.message_id, expires))}?draft={draft.id}"

    # One draft's editor.

    async def draft(self, request: Request) -> Response:
        lang = language_of(request.path_params["lang"])
        link = self._read(lang, lambda token, now: self.site.signer.read_draft(token, now), request)
        if isinstance(link, Response):
            return link
        gone = (DESK_TEXT[lang]["not_sent_title"], DESK_TEXT[lang]["desk_of_order_gone"].format(order=link.order_id))
        if request.method == "GET":
            return await self.site._guarded(lang, lambda: self._show(request, lang, link), gone)
        try:
            form = await read_form(request, self.max_form)
        except FormRefused as refused:
            t = TEXT[lang]
            return self.site.pages.message(lang, refused.status, t["bad_form_title"], t[refused.words].format(**refused.values))
        return await self.site._guarded(lang, lambda: self._act(request, lang, link, form), gone)

    async def _show(self, request: Request, lang: str, link: DraftLink) -> Response:
        draft = await self._draft(link)
        if draft is None:
            return await self._settled(lang, link, request.query_params.get("draft", ""))
        if draft.rules.may_attach and (source := await self.site.temporal.draft_source(order_workflow_id(link.order_id), draft.id)):
            request.state.documents = self.editor.documents(draft, source)
        return self._editor(request, lang, link, draft, {})

    async def _act(self, request: Request, lang: str, link: DraftLink, form: dict[str, str]) -> Response:
        d = DESK_TEXT[lang]
        draft = await self._draft(link)
        if draft is None:
            return await self._settled(lang, link, form.get("draft", ""))
        action = form.get("action", "")
        if action not in ACTIONS:
            return self._editor(request, lang, link, draft, form, status=400, notice=TEXT[lang]["bad_form_title"])
        if (problem := self._too_long(lang, form)) is not None:
            return self._editor(request, lang, link, draft, form, status=400, notice=problem)
        workflow_id, by = order_workflow_id(link.order_id), form.get("by", "").strip()
        if action == "discard":
            return await self._discard(request, lang, link, draft, form, by)
        addresses = {field: _addresses(form[field]) for field in ("cc", "to") if field in form}
        for field, values in addresses.items():
            if (bad := _not_an_address(values)) is not None:
                notice = d["bad_address"].format(field=d["cc" if field == "cc" else "to_field"].split(" (")[0], value=bad)
                return self._editor(request, lang, link, draft, form, status=400, notice=notice)
        source = await self.site.temporal.draft_source(workflow_id, draft.id)
        if source is None:
            return await self._settled(lang, link, draft.id)
        attached = [value for name, value in form.items() if name.startswith("attach:")]  # refused by the order if not allowed
        request.state.documents = self.editor.documents(draft, source)
        if draft.rules.may_attach and (outside := [ref for ref in attached if ref not in request.state.documents]):
            notice = d["not_the_orders"].format(file=outside[0], order=link.order_id)
            return self._editor(request, lang, link, draft, form, status=400, notice=notice)
        edits = Edits(
            by=by, subject=form.get("subject", "").strip() or None, note=form.get("note", "").strip() or None,
            text=form["text"].replace("\r\n", "\n") if form.get("text", "").strip() else None,
            cc=addresses.get("cc"), to=addresses.get("to"),
            attachments=attached if draft.rules.may_attach or attached else None,
        )  # fmt: skip
        now = self.site.clock()
        try:
            payload = await asyncio.to_thread(self.editor.payload, draft, source, edits, now)
            checked = self.editor.check(draft, source, payload)  # the workflow's own checks, said in this page's language
            if action == "preview":
                shown = await asyncio.to_thread(self.editor.build, draft, source, checked, now)
                return self._editor(request, lang, link, draft, form, preview=shown)
        except EditRefused:
            return self._editor(request, lang, link, draft, form, status=400, notice=d["edit_conflict"])
        except ValidationError as error:
            return self._editor(request, lang, link, draft, form, status=400, notice="; ".join(validation_problems(error)))
        except DraftRefused as refusal:
            return self._editor(request, lang, link, draft, form, status=409, notice=d["not_sent"].format(reason=refusal_said(lang, refusal)))
        except (TemplateError, AttachmentError) as error:
            return self._editor(request, lang, link, draft, form, status=409, notice=d["cannot_build"].format(reason=error))
        return await self._send(request, lang, link, draft, form, payload, by)

    async def _send(
        self, request: Request, lang: str, link: DraftLink, draft: Draft, form: dict[str, str], payload: dict[str, Any], by: str
    ) -> Response:
        """The update, under an id of the link, the edits and the draft's last attempt: a double click joins the first
        send; after a failed attempt (SMTP down) the same edits make a new one."""
        d = DESK_TEXT[lang]
        key = request.path_params["token"] + json.dumps(payload, sort_keys=True) + str(draft.last_tried_at)
        update_id = "desk-send-" + hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            answer = await self.site.temporal.edit_and_send(order_workflow_id(link.order_id), payload, update_id)
        except NoAnswer:
            return self.site.pages.message(lang, 504, d["send_no_answer_title"], d["send_no_answer"])
        if isinstance(answer, DraftSent):
            title = d["sent_title"].format(draft=answer.draft_id, order=link.order_id)
            text = d["sent"].format(message_id=answer.message_id, to=", ".join(answer.to))
            said = self.site.pages.message(lang, 200, title, text + (" " + d["sent_cc"].format(cc=", ".join(answer.cc)) if answer.cc else ""))
            return self._remember(said, by)
        return await self._refused(request, lang, link, draft, form, d["not_sent"].format(reason=refusal_said(lang, answer)))

    async def _discard(self, request: Request, lang: str, link: DraftLink, draft: Draft, form: dict[str, str], by: str) -> Response:
        d = DESK_TEXT[lang]
        reason = form.get("reason", "").strip()
        if not reason:
            return self._editor(request, lang, link, draft, form, status=400, notice=d["reason_needed"])
        try:
            answer = await self.site.temporal.discard(order_workflow_id(link.order_id), draft.id, reason, by)
        except NoAnswer:
            return self.site.pages.message(lang, 504, d["send_no_answer_title"], d["send_no_answer"])
        if isinstance(answer, Refused):
            return await self._refused(request, lang, link, draft, form, f"{d['not_discarded_title']}: {refusal_said(lang, answer)}")
        said = self.site.pages.message(lang, 200, d["discarded_title"].format(draft=draft.id, order=link.order_id), d["discarded"].format(reason=reason))
        return self._remember(said, by)

    async def _refused(self, request: Request, lang: str, link: DraftLink, draft: Draft, form: dict[str, str], notice: str) -> Response:
        """The order refused a send or a discard: a draft settled by someone else meanwhile is said so (by whom),
        any other refusal shown in the editor, the operator's form kept."""
        if await self._draft(link) is None:
            return await self._settled(lang, link, draft.id)
        return self._editor(request, lang, link, draft, form, status=409, notice=notice)

    def _remember(self, response: Response, by: str) -> Response:
        """The name that sent or discarded, kept by the browser for the editor (every language's): filled in next
        time without JavaScript. Only the draft pages receive it, and no script. SameSite=Lax, not Strict: the editor
        is mostly opened from the draft_waiting email, a link from the webmail's site, which a Strict cookie would not
        follow; the name grants nothing (the signed link is the only authority) and no other site's POST carries it."""
        if by:
            secure = (self.site.settings.web.public_url or "").startswith("https://")
            for language in TEXT:
                response.set_cookie(
                    NAME_COOKIE, quote(by), max_age=NAME_KEPT_FOR, path=f"/{language}/drafts/", secure=secure,
                    httponly=True, samesite="lax",
                )  # fmt: skip
        return response

    async def _draft(self, link: DraftLink) -> Draft | None:
        for draft in await self.site.temporal.drafts(order_workflow_id(link.order_id)):
            if draft.message_id == link.message_id:
                return draft
        return None

    async def _settled(self, lang: str, link: DraftLink, draft_id: str) -> Response:
        """A draft no longer waiting: who sent or discarded it, and when, as the order's changes say (409)."""
        d = DESK_TEXT[lang]
        state: OrderState = await self.site.temporal.order_state(order_workflow_id(link.order_id))
        done = [c for c in state.changes if c.trigger in ("send_draft", "discard_draft") and draft_id and c.comment.startswith(f"{draft_id}:")]
        if not done:
            return self.site.pages.message(lang, 409, TEXT[lang]["draft_gone_title"], d["settled_gone"].format(draft=draft_id or "—", order=link.order_id))
        last = done[-1]
        words = d["settled_sent" if last.trigger == "send_draft" else "settled_discarded"]
        text = words.format(draft=draft_id, when=self.site.pages.when(last.at, lang), by=last.by or d["someone"])
        return self.site.pages.message(lang, 409, TEXT[lang]["draft_gone_title"], text)

    def _too_long(self, lang: str, form: dict[str, str]) -> str | None:
        d = DESK_TEXT[lang]
        bounds = {"by": MAX_BY, "subject": MAX_SUBJECT, "note": MAX_NOTE, "reason": MAX_REASON, "text": self.max_text}
        names = {"by": d["by"], "subject": TEXT[lang]["subject"], "note": d["note"], "reason": d["reason_field"], "text": d["text"]}
        for field, most in bounds.items():
            length = len(form.get(field, "").replace("\r\n", "\n"))
            if length > most:
                return d["too_long"].format(field=names[field].split(" (")[0], length=length, max=most)
        for field in ("cc", "to"):
            if len(_addresses(form.get(field, ""))) > MAX_ADDRESSES:
                return d["too_long"].format(field=field, length=len(_addresses(form[field])), max=MAX_ADDRESSES)
        return None

    def _editor(
        self, request: Request, lang: str, link: DraftLink, draft: Draft, form: dict[str, str], *,
        status: int = 200, notice: str = "", preview: Preview | None = None,
    ) -> Response:  # fmt: skip
        d = DESK_TEXT[lang]
        posted = [value for name, value in form.items() if name.startswith("attach:")]
        return self.site.pages.page(
            "editor.html.j2", lang, status, title=TEXT[lang]["draft_title"].format(draft=draft.id, order=link.order_id),
            d=d, draft=draft, form={**_defaults(draft, _remembered(request)), **form}, notice=notice, preview=preview, action=request.url.path,
            body_url=f"/drafts/{request.path_params['token']}/body", max_note=MAX_NOTE, max_subject=MAX_SUBJECT,
            max_by=MAX_BY, max_reason=MAX_REASON, policy=PREVIEW_POLICY if preview else None,
            documents=getattr(request.state, "documents", None) or draft.attachments,
            attached=posted if request.method == "POST" else draft.attachments,
        )  # fmt: skip


def page_slice(drafts: Sequence[int], page: int, size: int = PAGE_SIZE) -> tuple[int, int, list[tuple[int, range]]]:
    """Page `page` (1 on, past the end: the last) of orders listed in order, each with `drafts[i]` drafts kept
    together: (the page, how many pages, and for each order on it, its index and which of its drafts, oldest first,
    are on it). Every draft is on exactly one page; an order whose drafts straddle the end of a page continues on
    the next, its later drafts first there."""
    pages = max(1, -(-sum(drafts) // size))
    page = min(max(page, 1), pages)
    start, end = (page - 1) * size, page * size
    picked: list[tuple[int, range]] = []
    before = 0  # drafts of the orders before this one
    for index, count in enumerate(drafts):
        if before + count > start and before < end:
            picked.append((index, range(max(start - before, 0), min(end - before, count))))
        before += count
    return page, pages, picked


def _defaults(draft: Draft, by: str = "") -> dict[str, str]:
    """The form as the draft fills it, with the name the browser remembers."""
    return {"subject": draft.subject, "text": draft.text, "cc": ", ".join(draft.cc), "to": ", ".join(draft.to), "note": "", "by": by, "reason": ""}


def _remembered(request: Request) -> str:
    """The operator's name from the cookie a send or discard set; bounded as the field is."""
    return unquote(request.cookies.get(NAME_COOKIE, ""))[:MAX_BY]


def _addresses(value: str) -> list[str]:
    return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]


def _not_an_address(values: list[str]) -> str | None:
    for value in values:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            return value
    return None


def _no_order(lang: str) -> tuple[str, str]:
    return TEXT[lang]["not_found_title"], TEXT[lang]["not_found"]
