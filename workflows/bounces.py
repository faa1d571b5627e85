"""What an order does with a bounce of one of its own emails (signal `email_bounced`, issue 24): recorded once,
shown, and for a customer's email that failed for good, a copy held as a draft for an operator to correct the
address. A bounce never makes the order send anything: its recipient is never written to. Deterministic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from printroom.approvers import address_key, same_address
    from printroom.message_ids import parse_message_id, run_tag
    from printroom.models import (
        DRAFT_BOUNCED,
        AddressCorrection,
        Bounce,
        BouncedDraftRequest,
        Draft,
        DraftContent,
        EmailBounced,
        Order,
        SentEmail,
    )
    from printroom.workflows.drafts import DraftBook, markdown_text
    from printroom.workflows.sending import DraftsMade, Outbox, is_cancellation, root_cause

MAX_BOUNCES_KEPT = 100
MAX_SEEN_KEPT = 1000  # bounces already recorded, by (Message-ID, recipient, status): the same one twice is one
MAX_CORRECTIONS_KEPT = 20
BOUNCES_SHOWN = 3

Refuse = Callable[[str, Any, str], None]


class OrderBounces:
    """The order's bounces: matched to the emails this run sent, recorded, and acted on as far as a bounce may."""

    def __init__(self, outbox: Outbox, drafts: DraftBook, hold: DraftsMade, refuse: Refuse, changed: Callable[[], None]) -> None:
        self._outbox, self._drafts, self._hold, self._refuse, self._changed = outbox, drafts, hold, refuse, changed
        self.items: list[Bounce] = []
        self.corrections: list[AddressCorrection] = []
        self._seen: dict[tuple[str, str, str], None] = {}
        self._copied: dict[str, str] = {}  # Message-ID of a bounced email -> the draft its copy became
        self.drafting = 0  # copies being made: the order stays open meanwhile

    @property
    def any(self) -> bool:
        return bool(self.items)

    async def take(self, order: Order, bounce: EmailBounced, payload: Any) -> None:
        """Record the bounce; a customer's email that failed for good is held again, addressed as it was sent."""
        message_id = bounce.message_id if bounce.message_id.startswith("<") else f"<{bounce.message_id}>"
        sent = self._sent(order, message_id)
        if isinstance(sent, str):
            self._refuse("email_bounced", payload, sent)
            return
        key = (message_id, address_key(bounce.recipient), bounce.status)
        if key in self._seen:
            workflow.logger.info("order %s: bounce of %s for %s (%s) already recorded", order.id, message_id, bounce.recipient, bounce.status)
            return
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN_KEPT:
            del self._seen[next(iter(self._seen))]
        record = Bounce(
            message_id=message_id, email_trigger=sent.email_trigger, audience=sent.audience, recipient=bounce.recipient,
            status=bounce.status, permanent=bounce.permanent, diagnostic=bounce.diagnostic, at=workflow.now(),
            outcome=self._recorded_only(bounce, sent, message_id),
        )  # fmt: skip
        workflow.logger.warning("order %s: %s to %s bounced: %s %s", order.id, sent.email_trigger, bounce.recipient, bounce.status, bounce.diagnostic[:200])
        self.items.append(record)
        del self.items[:-MAX_BOUNCES_KEPT]
        self._changed()
        if not record.outcome:
            await self._hold_copy(record, sent, message_id)

    def _sent(self, order: Order, message_id: str) -> SentEmail | str:
        """The email of this run the bounce is about, or why it is none of them (never acted on)."""
        parts = parse_message_id(message_id)
        if parts is None:
            return f"{message_id[:200]} is not a Message-ID printroom wrote; the bounce is not for this order"
        if parts.order_id != order.id or parts.shop != order.shop:
            return f"{message_id[:200]} names order {parts.order_id} of shop {parts.shop}, not this order"
        if parts.run_tag and parts.run_tag != run_tag(workflow.info().first_execution_run_id):
            return f"{message_id[:200]} is an email of another run of order {order.id} (started again under the same id)"
        sent = next((e for e in reversed(self._outbox.sent) if e.message_id == message_id), None)
        if sent is None:
            return f"this order sent no email with Message-ID {message_id[:200]}"
        return sent

    def _recorded_only(self, bounce: EmailBounced, sent: SentEmail, message_id: str) -> str:
        """Why this bounce is recorded and nothing more; empty when a copy is to be held."""
        if not bounce.acted_on:
            return f"recorded only: not a failure for good ({bounce.status}{'' if bounce.permanent else ', temporary'})"
        if sent.audience != "customer":
            return f"recorded only: an email to the {sent.audience}; check that address (settings or the order's approvers)"
        if any(same_address(bounce.recipient, a) for a in sent.cc) and not any(same_address(bounce.recipient, a) for a in sent.to):
            return "recorded only: a Cc address of the print room's (emails.cc) bounced; the customer's copy is not in question"
        if copied := self._copied.get(message_id):
            return f"recorded only: a copy of this email was already held ({copied})"
        return ""

    async def _hold_copy(self, record: Bounce, sent: SentEmail, message_id: str) -> None:
        """The same email (rendered from the status change it came from, under a Message-ID of its own so that it
        can go again to the same address), held with the reason, for an operator: never sent from here."""
        request = self._outbox.requests.get(message_id)
        if request is None:  # an email sent before the order kept its requests (a workflow replayed from then)
            record.outcome = "no copy held: the status change it came from is not known to this run; send it by hand"
            self._changed()
            return
        self._copied[message_id] = "being made"
        again = request.model_copy(
            update={"occurrence": self._outbox.next_occurrence(request.email_trigger), "audiences": ["customer"],
                    "recipients": None, "waiting_for_server": False}
        )  # fmt: skip
        to = [self.current(a) for a in sent.to] or [self.current(str(request.order.customer.email))]
        reason = f"bounced: {record.status} {record.diagnostic}".strip()
        if not any(same_address(record.recipient, a) for a in sent.to):  # a forward, or a crafted bounce
            reason += f" (the bounce names {record.recipient[:254]}; the email went to {', '.join(sent.to)})"
        self.drafting += 1
        try:
            content = await workflow.execute_activity(
                DRAFT_BOUNCED, BouncedDraftRequest(request=again, to=to, cc=sent.cc, reason=reason),
                result_type=DraftContent, start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(minutes=10), summary=f"{request.email_trigger} bounced",
            )  # fmt: skip
        except FailureError as error:
            if is_cancellation(error):
                raise
            record.outcome = f"no copy held: {root_cause(error).message}"
            self._outbox.record_failure(request.email_trigger, f"bounced ({record.status}) and no copy could be held: {root_cause(error).message}")
            del self._copied[message_id]
            self._changed()
            return
        finally:
            self.drafting -= 1
        self._hold(again, [content])
        held = next((h for h in self._drafts.pending if h.draft.message_id == content.message_id), None)
        self._copied[message_id] = held.draft.id if held else "not held"
        record.outcome = f"a copy held for an operator as draft {held.draft.id}" if held else "no copy held: see emails_failed"
        self._changed()

    def current(self, address: str) -> str:
        """An address as operators have since corrected it (after a bounce), else itself."""
        for correction in self.corrections:
            if same_address(address, correction.original):
                address = correction.corrected
        return address

    def sent_again(self, order: Order, draft: Draft, to: list[str] | None, by: str) -> Order:
        """A bounced email sent again by an operator: a corrected To is the customer's address from now on."""
        if not draft.from_bounce or not to or any(same_address(to[0], a) for a in draft.to):
            return order
        original = str(order.customer.email)
        self.corrections.append(AddressCorrection(original=original, corrected=to[0], draft_id=draft.id, by=by, at=workflow.now()))
        del self.corrections[:-MAX_CORRECTIONS_KEPT]
        workflow.logger.info("order %s: the customer's address corrected from %s to %s by %s", order.id, original, to[0], by or "?")
        return order.model_copy(update={"customer": order.customer.model_copy(update={"email": to[0]})})

    def details(self) -> list[str]:
        """The last bounces and the address corrections, for the Web UI's current details (Markdown)."""
        lines = [
            f"- BOUNCED {b.email_trigger} to {markdown_text(b.recipient)}: {markdown_text(f'{b.status} {b.diagnostic}', 200)}; "
            f"{markdown_text(b.outcome)}"
            for b in self.items[-BOUNCES_SHOWN:]
        ]
        return lines + [
            f"- customer address corrected: {markdown_text(c.original)} → {markdown_text(c.corrected)} ({c.draft_id})"
            for c in self.corrections[-BOUNCES_SHOWN:]
        ]
