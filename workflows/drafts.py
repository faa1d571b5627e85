"""The drafts of one order that wait for an operator (E2-E4): their ids, the operator's requests checked against
them, when to remind, and how they read in the Web UI. Deterministic: workflow state, no IO."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from printroom.models import Draft, DraftContent, DraftSummary, SendDraft, StatusEmailRequest

KB = 1024
# What the waiting drafts of one order may hold together: the `drafts` query answers with them all (2 MB at most).
PENDING_BUDGET = 1536 * KB
MAX_SETTLED_KEPT = 200  # what became of earlier drafts, for plain answers ("d1 was sent at ...")
TEXT_LINES_SHOWN = 4


class DraftRefused(Exception):
    """An operator's request about a draft that cannot be done; the message says why and what to do. `words` names
    the refusal for a page that says it in its own language (`values` fill it in); the message stays English."""

    def __init__(self, message: str, words: str = "", **values: object) -> None:
        super().__init__(message)
        self.words, self.values = words, values


def refusal_error(refusal: DraftRefused, kind: str) -> ApplicationError:
    """An update's refusal: the English message, and its words and values as details (a page in another language
    says it in its own)."""
    return ApplicationError(str(refusal), {"words": refusal.words, "values": refusal.values}, type=kind, non_retryable=True)


@dataclass
class HeldDraft:
    draft: Draft
    request: StatusEmailRequest  # the status change it came from (the order rides along): to build it when sent
    sending: bool = False

    def summary(self) -> DraftSummary:
        d = self.draft
        return DraftSummary(
            id=d.id, email_trigger=d.email_trigger, audience=d.audience, to=d.to, subject=d.subject,
            created_at=d.created_at, reason=d.reason, last_error=d.last_error, message_id=d.message_id,
        )  # fmt: skip


class DraftBook:
    def __init__(self) -> None:
        self._pending: dict[str, HeldDraft] = {}
        self._settled: dict[str, str] = {}
        self._made = 0
        # Changes whenever a draft is held or settled: the reminder timer is set again from the new set.
        self.version = 0

    @property
    def pending(self) -> list[HeldDraft]:
        return list(self._pending.values())

    def touch(self) -> None:
        """Something about a draft changed that decides its reminders (it was being sent, and is not any more)."""
        self.version += 1

    def waiting(self, held: HeldDraft) -> bool:
        return self._pending.get(held.draft.id) is held

    def hold(self, content: DraftContent, request: StatusEmailRequest, now: datetime) -> HeldDraft:
        """Keep an email for an operator, under the next id (d1, d2, ...); refused past drafts.max_pending."""
        limit = content.rules.max_pending
        if len(self._pending) >= limit:
            raise DraftRefused(
                f"{content.email_trigger} to {', '.join(content.to)} was not held: {len(self._pending)} drafts already "
                f"wait (drafts.max_pending = {limit}); send or discard some"
            )
        if sum(h.draft.body_bytes for h in self._pending.values()) + content.body_bytes > PENDING_BUDGET:
            content = content.without_body("held without its body: this order's drafts already hold 1.5 MB")
        self._made += 1
        held = HeldDraft(Draft(**content.model_dump(), id=f"d{self._made}", created_at=now), request)
        self._pending[held.draft.id] = held
        self.version += 1
        return held

    def find(self, draft_id: str | None) -> HeldDraft:
        """The draft a request names; without a name, the only one waiting."""
        waiting = ", ".join(self._pending) or "none"
        if draft_id is None:
            if len(self._pending) == 1:
                held = next(iter(self._pending.values()))
            elif not self._pending:
                raise DraftRefused("no draft is waiting for this order")
            else:
                raise DraftRefused(f"{len(self._pending)} drafts wait ({waiting}): say which with draft_id")
        elif draft_id in self._pending:
            held = self._pending[draft_id]
        elif draft_id in self._settled:
            raise DraftRefused(f"draft {draft_id} was {self._settled[draft_id]}; drafts waiting: {waiting}")
        else:
            raise DraftRefused(f"no draft {draft_id!r} for this order; drafts waiting: {waiting}")
        if held.sending:
            raise DraftRefused(f"draft {held.draft.id} is being sent by another request; wait for its answer", "being_sent", draft=held.draft.id)
        return held

    @staticmethod
    def check(held: HeldDraft, edits: SendDraft) -> None:
        """What the settings the draft was made under allow an operator to change (S5, A1), and its bounds."""
        rules, draft = held.draft.rules, held.draft
        if edits.cc is not None and edits.cc != [*map(str, draft.cc)] and not rules.may_edit_cc:
            raise DraftRefused(
                f"draft {draft.id}: operators may not change Cc (drafts.operator_may_edit_cc = false); "
                "send it without cc, or ask the administrator",
                "no_cc", draft=draft.id,
            )
        if edits.to is not None and edits.to != [*map(str, draft.to)] and not draft.may_edit_to:
            raise DraftRefused(
                f"draft {draft.id}: operators may not change its recipients (drafts.operator_may_edit_to = false); "
                "send it without to, or ask the administrator",
                "no_to", draft=draft.id,
            )
        if edits.attachments is not None and edits.attachments != draft.attachments and not rules.may_attach:
            raise DraftRefused(
                f"draft {draft.id}: operators may not attach files (drafts.operator_may_attach = false); "
                "send it without attachments, or ask the administrator",
                "no_attach", draft=draft.id,
            )
        if edits.note and edits.html:
            raise DraftRefused(
                f"draft {draft.id}: a note goes where the template places it, in the template's HTML; "
                "with HTML of your own, write the note into it",
                "note_and_own", draft=draft.id,
            )
        if edits.note and edits.text:
            raise DraftRefused(
                f"draft {draft.id}: a note goes where the template places it, in the template's text too; "
                "with text of your own, write the note into it",
                "note_and_own", draft=draft.id,
            )
        size = sum(len(v.encode("utf-8")) for v in (edits.html, edits.text) if v is not None)
        if size > rules.max_html_kb * KB:
            raise DraftRefused(
                f"draft {draft.id}: the html and text come to {size // KB} KB, over drafts.max_html_kb = {rules.max_html_kb}",
                "too_big", draft=draft.id, size=size // KB, limit=rules.max_html_kb,
            )

    def settle(self, held: HeldDraft, outcome: str) -> None:
        """The draft is done with (sent or discarded); `outcome` is how a later request about it is answered."""
        del self._pending[held.draft.id]
        self._settled[held.draft.id] = outcome
        if len(self._settled) > MAX_SETTLED_KEPT:
            del self._settled[next(iter(self._settled))]
        self.version += 1

    def next_reminder(self) -> tuple[datetime, HeldDraft] | None:
        """The next draft_waiting due: each draft remind_after after it was made or last reminded of (so a late timer
        never fires several at once), max_reminders times."""
        due = [
            ((h.draft.reminded_at or h.draft.created_at) + h.draft.rules.remind_after, h)
            for h in self._pending.values()
            if h.draft.reminders_sent < h.draft.rules.max_reminders and not h.sending
        ]
        return min(due, key=lambda d: d[0]) if due else None

    def details(self) -> list[str]:
        """Each waiting draft as an operator reads it in the Web UI's current details (Markdown)."""
        if not self._pending:
            return []
        lines = [
            "",
            f"**Drafts waiting: {len(self._pending)}**. Send one with *Send an Update* > `edit_and_send` "
            "(or *Send a Signal* > `send_draft`) and its JSON below; `discard_draft` drops it.",
        ]
        for held in self._pending.values():
            d = held.draft
            cc = f" · Cc {markdown_text(', '.join(d.cc))}" if d.cc else ""
            to = markdown_text(", ".join(d.to))
            lines += ["", f"**{d.id}** · {d.email_trigger} to {to}{cc} · *{markdown_text(d.subject) or '(no subject)'}*", ""]
            text = [line for line in d.text.strip().splitlines() if line.strip()][:TEXT_LINES_SHOWN]
            lines += [f"> {markdown_text(line)}  " for line in text]
            facts = [f"attachments: {markdown_text(', '.join(d.attachments))}"] if d.attachments else []
            facts += [f"held because: {markdown_text(d.reason)}"] if d.reason else []
            facts += [f"last attempt to send: {markdown_text(d.last_error)}"] if d.last_error else []
            facts += [f"[see it as it will be sent]({d.preview_url})"] if d.preview_url and _plain_url(d.preview_url) else []
            lines += ["", *(f"- {fact}" for fact in facts), f'- send it as it is: `{{"draft_id": "{d.id}"}}`']
        return lines


def _plain_url(url: str) -> bool:
    """Our own signed link (web.public_url + a URL-safe token) and nothing that could break out of the Markdown."""
    return url.startswith(("http://", "https://")) and not any(c in url for c in " ()[]<>\"'`\\")


# Each character Markdown could read, escaped: one table for str.translate (the details are written at each change).
_MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|!()"})


def markdown_text(text: str, limit: int = 300) -> str:
    """Order data shown as Markdown text, not read as Markdown (a customer's name cannot make a link), on one line."""
    return " ".join(text.split()).translate(_MARKDOWN_ESCAPES)[:limit]
