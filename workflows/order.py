"""OrderWorkflow: one per order. It asks the order's Machine to move, queues the emails a move fires, and holds
the drafts that wait for an operator. Sending lives in `sending`, drafts in `drafts`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    # Deterministic helpers with no module state: imported once, not again for every order the sandbox starts.
    from printroom.workflows.approval_child import ApprovalChild
    from printroom.workflows.bounces import OrderBounces
    from printroom.workflows.requests import Input, Refusals, WorkflowInput, check_update
    from printroom.workflows.drafts import DraftBook, DraftRefused, HeldDraft, markdown_text, refusal_error
    from printroom.workflows.sending import ONE_ATTEMPT, Outbox, is_cancellation, root_cause
    from printroom.workflows.spending_link import SpendingLink

    # EmailStr imports email_validator (and idna) lazily, on the first address it checks.
    import email_validator  # noqa: F401
    import idna  # noqa: F401
    import idna.uts46data  # noqa: F401  # read at the first international address

    from printroom.models import (
        HOLD_DRAFTS,
        ORDER_START_MEMO,
        SEND_DRAFT,
        FETCH_HANDED_DRAFTS,
        ApprovalOutcome,
        AskAgain,
        DraftsHanded,
        FetchHandedDrafts,
        HandedDrafts,
        HeldDrafts,
        SpendingAnswer,
        budget_workflow_id,
        ChangeStatus,
        DiscardDraft,
        Draft,
        DraftContent,
        DraftSent,
        EmailBounced,
        Order,
        OrderStart,
        OrderState,
        SendDraft,
        SendDraftRequest,
        StatusChange,
        StatusEmailRequest,
        StatusEmailResult,
    )
    from printroom.statemachines.budget import APPROVAL_EMAILS, ASKING_EMAILS
    from printroom.statemachines.order import AWAITING_APPROVAL, CANCELLED, COUNTED_ON, DRAFT_WAITING, NOT_MADE, ORDER
    from printroom.statemachines.table import Actor, Lifecycle, Transition

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
DRAFTS_PENDING = SearchAttributeKey.for_int("DraftsPending")
EMAIL_BOUNCED = SearchAttributeKey.for_bool("EmailBounced")  # set on the first bounce of one of the order's emails
# When the oldest draft still held was held (unset when none is): the desk lists the orders by it, oldest first.
OLDEST_DRAFT_HELD = SearchAttributeKey.for_datetime("OldestDraftHeld")
SEARCH_ATTRIBUTES = (ORDER_STATUS, DRAFTS_PENDING, EMAIL_BOUNCED, OLDEST_DRAFT_HELD)
OLDEST_DRAFT_HELD_PATCH = "oldest-draft-held"

# An operator waits for the answer; a large attachment to a slow server may still take minutes.
SEND_DRAFT_TIMEOUT = timedelta(minutes=10)


def order_summary(order: Order) -> str:
    """One line that names an order, e.g. "Order PO-1001 · Marie Curie · 2 jobs"."""
    jobs = len(order.jobs)
    return f"Order {order.id} · {order.customer.name or order.customer.email} · {jobs} job{'s' if jobs != 1 else ''}"


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, raw_order: Any = None) -> None:
        self._input = WorkflowInput(Order, raw_order, "order")
        self._order = self._input.value
        self._lifecycle = Lifecycle(ORDER, self._moved)
        self._changes: list[StatusChange] = []
        self._refusals = Refusals(lambda: f"order {self._order.id if self._order else '?'}", self._publish)
        self._drafts = DraftBook()
        self._outbox = Outbox(self._order.id if self._order else "", self._held, self._publish)
        self._bounces = OrderBounces(self._outbox, self._drafts, self._held, self._refuse, self._publish)
        self._published = self._published_at_start()
        self._approval = ApprovalChild()
        self._approval_standing = ""  # why the order waits for an approval that has ended without a decision
        self._fetching_drafts = 0  # drafts an approval rang about, being fetched: the order stays open meanwhile
        self._cost_centre = SpendingLink(self._spending_answered)
        if self._order is not None:
            emails_off = self._start_emails_off()
            for email_trigger in ORDER.emails_on_start:
                if email_trigger in emails_off:
                    self._outbox.notes.append(f"{email_trigger}: not sent, off in the settings of the client that started the order")
                else:
                    self._outbox.queue(self._order, email_trigger, status=self._lifecycle.state, previous=None)
            if self._order.needs_approval:
                self._apply("request_approval", "system", kind="start", by="printroom", comment="")

    @staticmethod
    def _published_at_start() -> tuple[str, int, bool, datetime | None]:
        """The search attributes the order was started with (a printroom client sets its first status and no
        drafts waiting): the first task upserts the status, drafts and oldest draft where they differ from them
        (EmailBounced is only ever set: one set at the start stays)."""
        given = workflow.info().typed_search_attributes
        drafts = given.get(DRAFTS_PENDING)
        return given.get(ORDER_STATUS) or "", -1 if drafts is None else drafts, bool(given.get(EMAIL_BOUNCED)), given.get(OLDEST_DRAFT_HELD)

    def _start_emails_off(self) -> set[str]:
        """The start emails the starting client's settings turn off (its memo), so that none of them costs an
        activity; a memo that does not read is ignored, and the worker's settings decide, as without one."""
        try:
            told = OrderStart.model_validate(workflow.memo_value(ORDER_START_MEMO, default={}))
        except Exception:  # noqa: BLE001  # written by whoever started the order: never a task failure
            return set()
        return set(told.emails_off)

    @workflow.run
    async def run(self, raw_order: Any = None) -> OrderState:
        if self._order is None:
            raise self._input.fail()
        self._publish()
        reminders = asyncio.create_task(self._remind_operators())
        late_bounces = asyncio.create_task(self._bounces.wait_for_late_ones(self._done))
        if self._lifecycle.state == AWAITING_APPROVAL:
            self._start_approval()
        try:
            await self._outbox.run(self._finished)
        except (asyncio.CancelledError, FailureError) as error:  # a first attempt cut by the cancel: a FailureError
            if isinstance(error, asyncio.CancelledError) or is_cancellation(error):
                await self._workflow_cancelled()
            raise
        finally:
            reminders.cancel()
            late_bounces.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _workflow_cancelled(self) -> None:
        """`temporal workflow cancel` (or Request Cancellation) on the order itself: its approval tells its approvers,
        and an order not made yet (one the `cancel` row could still cancel) has its count taken back; then the
        workflow ends cancelled. A shipped order cancelled to stop a stuck email keeps its spending."""
        assert self._order is not None
        await self._approval.tell_cancelled()
        if self._lifecycle.may("cancel", "operator"):  # not made yet; a shipped order's spending stands
            self._cost_centre.take_back(self._order)
        await workflow.wait_condition(lambda: self._cost_centre.done)

    def _start_approval(self) -> None:
        assert self._order is not None
        self._approval_task = asyncio.create_task(self._approval.run(self._order, self._approval_ended, self._approval_problem))

    # Signals and the update: decoded leniently (Any) and validated here, so a bad payload is refused visibly.

    @workflow.signal(name="change_status")
    def change_status(self, payload: Any = None) -> None:
        request = self._validate("change_status", ChangeStatus, payload)
        if request is not None:
            self._apply(request.trigger, "operator", kind="change_status", by=request.by, comment=request.comment, payload=payload)

    @workflow.signal(name="approve")
    async def approve(self, payload: Any = None) -> None:
        """Relayed to `budget-<order id>`, which hears only its approvers and records whom it refused."""
        if refusal := await self._approval.relay("approve", payload):
            self._refuse("approve", payload, refusal)

    @workflow.signal(name="reject")
    async def reject(self, payload: Any = None) -> None:
        if refusal := await self._approval.relay("reject", payload):
            self._refuse("reject", payload, refusal)

    @workflow.signal(name="ask_again")
    async def ask_again(self, payload: Any = None) -> None:
        """An operator has the approval read the settings again (relayed, like the approvers' answers); one that
        ended without a decision (cancelled from outside the order) is started anew."""
        if self._lifecycle.state == AWAITING_APPROVAL and self._approval.may_start_again:
            if self._validate("ask_again", AskAgain, payload) is not None:
                self._settle_approval_drafts("a new approval was started")
                self._outbox.notes.append("ask_again: a new budget approval was started")
                self._start_approval()
                self._publish()
            return
        if refusal := await self._approval.relay("ask_again", payload):
            self._refuse("ask_again", payload, refusal)

    @workflow.signal(name=HOLD_DRAFTS)
    async def hold_drafts(self, payload: Any = None) -> None:
        """The approval rings: it holds emails for an operator. They are fetched from that approval itself (and
        checked there against whom it asked and the settings), held here where operators find them; those of an
        earlier round are no longer needed. Nothing the signal carries but the Message-IDs is used."""
        bell = self._validate(HOLD_DRAFTS, DraftsHanded, payload)
        if bell is None:
            return
        if self._approval.started:  # its start is resolved after the signals of the same task: waited for
            await workflow.wait_condition(lambda: self._approval.run_id is not None or self._approval.done)
        if (run := self._approval.run_id) is None:
            self._refuse(HOLD_DRAFTS, payload, "this order has no budget approval to hold drafts for")
            return
        self._fetching_drafts += 1
        try:
            handed = await self._fetch_handed(bell, run)
        finally:  # state only: no workflow call may run while the worker evicts the workflow
            self._fetching_drafts -= 1
        held = handed.held
        if held is None or (refusal := self._not_from_the_approval(held)):
            self._refuse(HOLD_DRAFTS, payload, handed.why_not or refusal or "")
            return
        if not self._approval.waiting and held.request.email_trigger in ASKING_EMAILS:
            self._refuse(HOLD_DRAFTS, payload, "the budget approval has ended; its request is no longer needed")
            return
        round = held.request.approval.round if held.request.approval else 1
        self._settle_approval_drafts("the approvers were asked again", before_round=round)
        self._held(held.request, held.drafts)

    async def _fetch_handed(self, bell: DraftsHanded, approval_run_id: str) -> HandedDrafts:
        """A check that cannot be made (Temporal out of reach for ten minutes) is a failure the operators see."""
        assert self._order is not None
        fetch = FetchHandedDrafts(order_id=self._order.id, approval_run_id=approval_run_id, message_ids=bell.message_ids)
        try:
            return await workflow.execute_activity(
                FETCH_HANDED_DRAFTS, fetch, result_type=HandedDrafts, start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
            )  # fmt: skip
        except FailureError as error:
            if is_cancellation(error):
                raise
            why = f"drafts {', '.join(bell.message_ids)} of the budget approval could not be fetched: {root_cause(error).message}"
            self._outbox.record_failure("approval_requested", why + f"; look at {budget_workflow_id(self._order.id)}")
            return HandedDrafts(why_not=why)

    def _settle_approval_drafts(self, why: str, *, before_round: int | None = None) -> None:
        """Held approval emails that no longer ask anything true: settled, said in the notes; the order can close."""
        for held in self._drafts.pending:
            if held.draft.email_trigger not in ASKING_EMAILS or held.sending:
                continue
            round = held.request.approval.round if held.request.approval else 1
            if before_round is None or round < before_round:
                self._drafts.settle(held, f"no longer needed: {why}")
                self._outbox.notes.append(f"{held.draft.id} ({held.draft.email_trigger} to {', '.join(held.draft.to)}): no longer needed, {why}")

    def _not_from_the_approval(self, held: HeldDrafts) -> str | None:
        """What the approval holds for this order, as fetched from it: its own emails, to its approvers, for this
        order (a second look, beside the activity's, at what the approval made)."""
        assert self._order is not None
        request = held.request
        if request.order.id != self._order.id:
            return f"drafts of order {request.order.id} cannot be held on order {self._order.id}"
        if not self._approval.started:
            return "this order has no budget approval to hold drafts for"
        if request.email_trigger not in APPROVAL_EMAILS:
            return f"{request.email_trigger} is not an email of the budget approval"
        for draft in held.drafts:
            if draft.email_trigger != request.email_trigger or draft.audience != "approvers" or draft.cc:
                return f"draft {draft.email_trigger} to the {draft.audience} is not one the approval makes"
        return None

    @workflow.signal(name="send_draft")
    async def send_draft(self, payload: Any = None) -> None:
        edits = self._validate("send_draft", SendDraft, payload)
        if edits is None:
            return
        try:
            held = self._drafts.find(edits.draft_id)
            self._drafts.check(held, edits)
            await self._send_held(held, edits)
        except DraftRefused as refusal:
            self._refusals.refuse("send_draft", payload, str(refusal), refusal.words, refusal.values)  # named, for the desk

    @workflow.signal(name="email_bounced")
    async def email_bounced(self, payload: Any = None) -> None:
        """The bounce watcher read a bounce of one of this order's emails: see `bounces`."""
        if (bounce := self._validate("email_bounced", EmailBounced, payload)) is not None and self._order is not None:
            await self._bounces.take(self._order, bounce, payload)

    @workflow.signal(name="discard_draft")
    def discard_draft(self, payload: Any = None) -> None:
        request = self._validate("discard_draft", DiscardDraft, payload)
        if request is None:
            return
        try:
            held = self._drafts.find(request.draft_id)
        except DraftRefused as refusal:
            self._refusals.refuse("discard_draft", payload, str(refusal), refusal.words, refusal.values)  # named, for the desk
            return
        draft, by = held.draft, request.by
        self._drafts.settle(held, f"discarded at {workflow.now():%Y-%m-%d %H:%M} UTC" + (f" by {by}" if by else ""))
        self._record_draft_action("discard_draft", draft, by, request.reason)

    @workflow.update(name="edit_and_send")
    async def edit_and_send(self, payload: Any = None) -> DraftSent:
        """Send a held draft with the operator's edits; answers with the Message-ID and the recipients."""
        edits = SendDraft.model_validate(payload)
        try:
            return await self._send_held(self._drafts.find(edits.draft_id), edits)
        except DraftRefused as refusal:
            raise refusal_error(refusal, "DraftNotSent") from None

    @edit_and_send.validator
    def _may_edit_and_send(self, payload: Any = None) -> None:
        """Refused here, nothing is written to history and the caller reads why (the Web UI shows it in red)."""
        edits = check_update(SendDraft, payload, self._input)
        try:
            self._drafts.check(self._drafts.find(edits.draft_id), edits)
        except DraftRefused as refusal:
            raise refusal_error(refusal, "DraftRefused") from None

    @workflow.query(name="state")
    def state(self) -> OrderState:
        return OrderState(
            order_id=self._order.id if self._order else "",
            status=self._lifecycle.state,
            allowed_triggers=self._lifecycle.allowed_triggers("operator"),
            changes=self._changes,
            emails_sent=self._outbox.sent,
            emails_pending=self._outbox.pending(),
            emails_failed=self._outbox.failed,
            email_notes=self._outbox.notes,
            drafts_pending=[held.summary() for held in self._drafts.pending],
            refused=self._refusals.items,
            approval=self._approval_summary(),
            bounces=self._bounces.items,
            address_corrections=self._bounces.corrections,
        )

    def _approval_summary(self) -> str:
        assert self._order is not None or not self._approval.started
        if not self._approval.started:
            return ""
        if self._approval.waiting:
            return f"waiting: workflow {budget_workflow_id(self._order.id if self._order else '')}"
        if self._approval.done and self._approval.may_start_again and self._lifecycle.state == AWAITING_APPROVAL:
            return self._approval_standing
        outcome = self._approval.outcome
        return f"{outcome.status}" + (f" by {outcome.by}" if outcome.by else "") if outcome else "starting"

    @workflow.query(name="drafts")
    def drafts(self) -> list[Draft]:
        """The drafts waiting for an operator, in full: recipients, subject, text, HTML, attachments."""
        return [held.draft for held in self._drafts.pending]

    @workflow.query(name="draft_source")
    def draft_source(self, draft_id: str = "") -> StatusEmailRequest | None:
        """The status change a waiting draft came from (the order with it): what `printroom web` renders a preview
        of the operator's edits from, by the same code as sending, with nothing written to history."""
        held = next((h for h in self._drafts.pending if h.draft.id == draft_id), None)
        return held.request if held is not None else None

    # Moves.

    def _validate(self, kind: str, model: type[Input], payload: Any) -> Input | None:
        return self._refusals.validate(kind, model, payload, self._input)

    def _apply(self, trigger: str, actor: Actor, *, kind: str, by: str, comment: str, payload: Any = None) -> None:
        """Ask the order's Machine to move; a refusal changes nothing and is recorded with its reason."""
        if refusal := self._lifecycle.follow(trigger, actor, by=by, comment=comment):
            self._refuse(kind, payload, refusal)

    def _moved(self, row: Transition, source: str, detail: Mapping[str, Any]) -> None:
        """The Machine moved the order (its `after` callback): record it and queue the emails the row fires."""
        assert self._order is not None
        by, comment = detail.get("by", ""), detail.get("comment", "")
        workflow.logger.info("order %s: %s -> %s (%s)", self._order.id, source, row.dest, row.trigger)
        self._changes.append(StatusChange(trigger=row.trigger, source=source, dest=row.dest, by=by, comment=comment, at=workflow.now()))
        for email_trigger in row.emails:
            self._outbox.queue(self._order, email_trigger, status=row.dest, previous=source, by=by, comment=comment)
        if source == AWAITING_APPROVAL and row.dest == CANCELLED:
            self._approval.cancel()  # its approvers are told
        if row.trigger in COUNTED_ON:
            self._cost_centre.count(self._order)
        if row.dest in NOT_MADE:
            self._cost_centre.take_back(self._order)
        self._publish()

    # Budget approval and cost centre.

    def _approval_ended(self, outcome: ApprovalOutcome) -> None:
        """The approval's outcome moves the order; one that ended because the order was cancelled moves nothing.
        Its held emails are no longer needed, however it ended."""
        self._settle_approval_drafts(f"the budget approval ended {outcome.status}")
        if outcome.from_outside and self._lifecycle.state == AWAITING_APPROVAL:
            self._approval_problem(
                f"the budget approval {budget_workflow_id(self._order.id if self._order else '')} was cancelled from "
                "outside the order; the order waits: send ask_again to this order to start a new approval"
            )
        elif self._lifecycle.state != AWAITING_APPROVAL:  # an answer that crossed the order's cancellation
            self._outbox.notes.append(f"the budget approval ended {outcome.status} after the order was {self._lifecycle.state}")
            self._publish()
        elif outcome.status == "approved":
            self._apply("approve_budget", "system", kind="approval", by=outcome.by, comment=outcome.comment)
        elif outcome.status in ("rejected", "expired"):
            self._apply("reject_budget", "system", kind="approval", by=outcome.by, comment=outcome.comment)
        else:  # cancelled, not from outside, the order still waiting: only as `temporal workflow cancel` ends the order
            self._outbox.notes.append(f"the budget approval ended {outcome.status} as the order's workflow was cancelled")
            self._publish()

    def _approval_problem(self, problem: str) -> None:
        assert self._order is not None
        self._settle_approval_drafts("the budget approval ended without a decision")
        self._approval_standing = problem
        self._outbox.record_failure("approval_requested", problem)
        self._publish()

    def _spending_answered(self, answer: SpendingAnswer) -> None:
        """What the cost centre was told (counted, taken back, or why not), in the order's notes."""
        self._outbox.notes.append(answer.note)
        self._publish()

    def _refuse(self, kind: str, payload: Any, reason: str) -> None:
        self._refusals.refuse(kind, payload, reason)

    # Drafts.

    def _held(self, request: StatusEmailRequest, contents: list[DraftContent]) -> None:
        """Emails the activity held instead of sending. One held because sending failed is the operators' to
        fix: they are told at once (draft_waiting), not only when the reminder is due."""
        for content in contents:
            try:
                held = self._drafts.hold(content, request, workflow.now())
            except DraftRefused as refusal:
                self._outbox.record_failure(content.email_trigger, str(refusal))
                continue
            if content.reason:
                self._tell_operators(held)
        self._publish()

    def _tell_operators(self, held: HeldDraft) -> None:
        assert self._order is not None
        self._outbox.queue(self._order, DRAFT_WAITING, status=self._lifecycle.state, previous=None, waiting_draft=held.summary())

    async def _send_held(self, held: HeldDraft, edits: SendDraft) -> DraftSent:
        """One attempt, its answer for the operator who asked: a failure leaves the draft held, with the reason."""
        draft = held.draft
        held.sending = True
        result: StatusEmailResult | None = None
        try:
            result = await workflow.execute_local_activity(
                SEND_DRAFT,
                SendDraftRequest(request=held.request, draft=draft, edits=edits),
                result_type=StatusEmailResult,
                start_to_close_timeout=SEND_DRAFT_TIMEOUT,
                retry_policy=ONE_ATTEMPT,
            )
        except FailureError as error:
            if is_cancellation(error):
                raise
            draft.last_error = root_cause(error).message
            draft.last_tried_by, draft.last_tried_at = edits.by, workflow.now()
        finally:  # state only: no workflow call may run while the worker evicts the workflow
            held.sending = False
            self._drafts.touch()  # its reminders count again, were it still held
        self._publish()
        if result is None:
            raise DraftRefused(
                f"draft {draft.id} was not sent: {draft.last_error}; it is still held: fix that and send it again",
                "send_failed", draft=draft.id, error=draft.last_error,
            )  # fmt: skip
        self._outbox.record(held.request, result)
        (sent,) = result.sent
        by = edits.by
        if self._order is not None:  # a bounced email sent to a corrected address: the order keeps it
            self._order = self._bounces.sent_again(self._order, draft, edits.to, by)
        self._drafts.settle(held, f"sent at {workflow.now():%Y-%m-%d %H:%M} UTC" + (f" by {by}" if by else "") + f" ({sent.message_id})")
        self._record_draft_action("send_draft", draft, by, f"note: {edits.note}" if edits.note else "")
        return DraftSent(
            draft_id=draft.id, message_id=sent.message_id, to=sent.to, cc=sent.cc, subject=sent.subject, attachments=sent.attachments
        )

    def _record_draft_action(self, kind: str, draft: Draft, by: str, said: str) -> None:
        """In the order's changes, with who did it: the Web UI's signals and updates carry no identity of their own."""
        status = self._lifecycle.state
        what = f"{draft.id}: {draft.email_trigger} to {', '.join(draft.to)}" + (f"; {said}" if said else "")
        self._changes.append(StatusChange(trigger=kind, source=status, dest=status, by=by, comment=what, at=workflow.now()))
        self._publish()

    async def _remind_operators(self) -> None:
        """draft_waiting for each draft every drafts.remind_after while it waits, at most max_reminders times.
        One durable timer, for the next reminder due; set again whenever a draft is held or settled."""
        while True:
            version, due = self._drafts.version, self._drafts.next_reminder()
            changed = lambda: self._drafts.version != version  # noqa: E731
            if due is None:
                await workflow.wait_condition(changed)
                continue
            at, held = due
            if (wait := (at - workflow.now()).total_seconds()) > 0:
                try:
                    await workflow.wait_condition(changed, timeout=wait)
                    continue
                except asyncio.TimeoutError:
                    pass
            if self._drafts.waiting(held) and not held.sending:
                held.draft.reminders_sent += 1
                held.draft.reminded_at = workflow.now()
                self._tell_operators(held)

    # The order at a glance.

    def _done(self) -> bool:
        """Nothing left to do: closed, every email through, no draft waiting, its approval and cost centre settled."""
        approval_over = (not self._approval.started or self._approval.done) and not self._fetching_drafts
        drafts_done = not self._drafts.pending and not self._bounces.drafting  # a bounced email's copy being made
        return self._lifecycle.closed and self._outbox.idle and drafts_done and approval_over and self._cost_centre.done

    def _finished(self) -> bool:
        """Done, and the time kept open for bounces of its last emails passed (none unless a mailbox is watched)."""
        return self._done() and self._bounces.late_ones_over

    def _publish(self) -> None:
        """Status and drafts waiting as search attributes (operators filter by them), and a summary in the Web
        UI's current details."""
        if self._order is None:  # the workflow fails at once, saying why
            return
        pending = self._drafts.pending
        oldest = min((h.draft.created_at for h in pending), default=None)
        published = (self._lifecycle.state, len(pending), self._bounces.any, oldest)
        # One upsert for a status change and the drafts its email made: the first attempt runs in the same task.
        if published != self._published and not self._outbox.first_attempt_due:
            before = self._published
            updates: list[SearchAttributeUpdate[Any]] = [ORDER_STATUS.value_set(published[0])] if published[0] != before[0] else []
            updates += [DRAFTS_PENDING.value_set(published[1])] if published[1] != before[1] else []
            updates += [EMAIL_BOUNCED.value_set(True)] if published[2] and not before[2] else []
            # Alone, a new oldest draft (one settled and another held in one task) is an upsert that orders begun
            # before OldestDraftHeld did not make: only where the history says it may (a marker, in that case only).
            if oldest != before[3] and (updates or workflow.patched(OLDEST_DRAFT_HELD_PATCH)):
                updates.append(OLDEST_DRAFT_HELD.value_set(oldest) if oldest is not None else OLDEST_DRAFT_HELD.value_unset())
            if updates:
                workflow.upsert_search_attributes(updates)
                self._published = published
        outbox = self._outbox
        lines = [f"**{markdown_text(order_summary(self._order))}**: {self._lifecycle.state}", ""]
        lines += [f"- sent {e.email_trigger} to {markdown_text(', '.join(e.to))}" for e in outbox.sent[-10:]]
        lines += [f"- FAILED {f.email_trigger}: {markdown_text(f.error)}" for f in outbox.failed[-5:]]
        if waiting := outbox.waiting():
            lines.append(f"- {waiting} email(s) waiting to be sent")
        if self._approval.waiting:
            lines.append(f"- waiting for its budget approval: workflow {budget_workflow_id(self._order.id)}")
        elif self._approval.may_start_again and self._lifecycle.state == AWAITING_APPROVAL:
            lines.append(f"- NO BUDGET APPROVAL RUNNING: {markdown_text(self._approval_standing)}")
        lines += [f"- refused {r.kind}: {markdown_text(r.reason)}" for r in self._refusals.items[-3:]]
        lines += self._bounces.details()
        lines += self._drafts.details()
        workflow.set_current_details("\n".join(lines))
