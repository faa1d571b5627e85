"""BudgetApprovalWorkflow, `budget-<order id>`: one order's budget approval. It asks the approvers, reminds them,
acts on their silence as `budget.on_timeout` says, hears only them, and ends with the outcome the order moves on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from printroom.approvers import same_address
    from printroom.workflows.requests import Refusals, WorkflowInput, check_update
    from printroom.workflows.sending import Outbox, is_cancellation, root_cause

    # EmailStr imports email_validator (and idna) lazily, on the first address it checks.
    import email_validator  # noqa: F401
    import idna  # noqa: F401
    import idna.uts46data  # noqa: F401

    from printroom.models import (
        BUDGET_WORKFLOW,
        CONFIRM_ORDER_CANCELLED,
        HANDED_DRAFTS_QUERY,
        HOLD_DRAFTS,
        ORDER_CANCELLED,
        PLAN_APPROVAL,
        budget_workflow_id,
        ApprovalDecision,
        ApprovalOutcome,
        AskAgain,
        Confirmed,
        OrderRun,
        ApprovalPlan,
        ApprovalProgress,
        ApprovalState,
        Decide,
        DraftContent,
        DraftsHanded,
        HeldDrafts,
        Order,
        StatusEmailRequest,
    )
    from printroom.statemachines.budget import APPROVAL_OVERDUE, APPROVAL_REMINDER, BUDGET
    from printroom.statemachines.table import Lifecycle, Transition

# Reading the settings is quick; the plan is retried a little and then the approval fails, saying why.
PLAN_TIMEOUT = timedelta(seconds=10)
PLAN_RETRY = RetryPolicy(maximum_attempts=5)
# Hand-overs kept for the order to fetch (one a status change of the approval's; a few are ever due).
MAX_HANDED_KEPT = 20
# Approvers the approval keeps waiting for after on_timeout (the operators told) can still answer by link this long.
LINKS_OUTLIVE_SILENCE = timedelta(days=30)


class DecisionRefused(Exception):
    """A decision that is not taken: from someone not asked, or after the approval ended."""


@workflow.defn(name=BUDGET_WORKFLOW)
class BudgetApprovalWorkflow:
    @workflow.init
    def __init__(self, raw_order: Any = None) -> None:
        self._input = WorkflowInput(Order, raw_order, "order")
        self._order = self._input.value
        self._lifecycle = Lifecycle(BUDGET, self._moved)
        self._plan: ApprovalPlan | None = None
        self._approvers: list[str] = []
        self._escalated_to: list[str] = []
        self._reminders_sent = 0
        self._outcome: ApprovalOutcome | None = None
        self._refusals = Refusals(lambda: f"approval of order {self._order_id}", self._publish)
        self._requested_at = workflow.now()
        self._asked_at = self._requested_at  # when the approvers of now were asked (again, after an escalation)
        self._outbox = Outbox(self._order.id if self._order else "", self._drafts_made, self._publish)
        self._handovers: list[asyncio.Task[None]] = []
        self._handed: list[HeldDrafts] = []  # what the order fetches when rung (HOLD_DRAFTS)
        self._asked_again: AskAgain | None = None  # an operator's request, until the main loop has acted on it
        self._operators_told = False  # approval_overdue sent for the approvers of now: nothing more is due
        self._round = 1  # one more for each escalation and each ask_again: earlier rounds' held drafts are stale
        self._confirming_cancel = 0  # the order's "I was cancelled", being checked with the order

    @workflow.run
    async def run(self, raw_order: Any = None) -> ApprovalOutcome:
        if self._order is None:
            raise self._input.fail()
        try:
            plan = await self._read_plan_unless_ended()
        except (asyncio.CancelledError, ActivityError) as error:  # cancelled as it started: nobody asked, nobody told
            if isinstance(error, ActivityError) and not is_cancellation(error):
                raise
            await self._withdraw("before anyone was asked")
            return await self._finish(None)
        if plan is None:  # the order was cancelled while the settings were read: nobody to tell
            return await self._finish(None)
        self._plan = plan
        self._approvers = self._plan.approvers
        if self._plan.problem:
            workflow.logger.error("approval of order %s: %s", self._order.id, self._plan.problem)
        for email_trigger in BUDGET.emails_on_start:
            self._queue(email_trigger)
        if not self._approvers:  # nobody to ask: the operators are told at once, and it waits for them to act
            self._operators_told = True
            self._queue(APPROVAL_OVERDUE)
        sending = asyncio.create_task(self._outbox.run(lambda: self._lifecycle.closed))
        try:
            await self._wait_for_a_decision()
        except (asyncio.CancelledError, ActivityError) as error:  # ActivityError: cancelled while re-planning
            if isinstance(error, ActivityError) and not is_cancellation(error):
                raise
            await self._withdraw("while the approvers were asked")
        if self._asked_again is not None:  # came with the decision: answered, not lost
            self._refusals.refuse("ask_again", self._asked_again.model_dump(), self._ended())
        return await self._finish(sending)

    async def _withdraw(self, when: str) -> None:
        """Cancelled by someone other than its order (the order's own cancel comes as ORDER_CANCELLED and ends the
        approval before this): nobody is told "order cancelled", since it was not. A decision already taken stays.
        An order cancelled from Temporal tells this approval, then closes, which cancels it: the order's word, being
        checked with it, is waited for first, and wins."""
        await workflow.wait_condition(lambda: not self._confirming_cancel)
        if not self._lifecycle.closed:
            self._lifecycle.follow(
                "withdraw", "system", by="",
                comment=f"{budget_workflow_id(self._order_id)} was cancelled from outside its order {when}; "
                "the order waits: an operator's ask_again on it starts a new approval",
            )  # fmt: skip

    async def _finish(self, sending: asyncio.Task[None] | None) -> ApprovalOutcome:
        """The outcome is decided, and may have been confirmed to an approver already: a cancel that comes now does
        not undo it. The emails it fired go out first."""
        assert self._outcome is not None
        winding_down = asyncio.ensure_future(self._wind_down(sending))
        while not winding_down.done():
            try:
                await asyncio.shield(winding_down)
            except asyncio.CancelledError:
                workflow.logger.warning("approval of order %s: a cancel after it ended %s is ignored", self._order_id, self._outcome.status)
        winding_down.result()
        return self._outcome

    async def _wind_down(self, sending: asyncio.Task[None] | None) -> None:
        if sending is not None:
            await sending
        await asyncio.gather(*self._handovers)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _read_plan_unless_ended(self) -> ApprovalPlan | None:
        """The plan, or None when the approval ends while it is read (its order cancelled, a decision): the
        reading is cancelled then, not waited for."""
        reading = asyncio.create_task(self._read_plan())
        try:
            await workflow.wait_condition(lambda: reading.done() or self._lifecycle.closed)
        except asyncio.CancelledError:
            reading.cancel()
            raise
        if reading.done():
            return reading.result()
        reading.cancel()
        return None

    async def _read_plan(self) -> ApprovalPlan:
        # A regular activity, not a local one: a cancel that comes as it completes is ordered by the server's
        # history, the same live and on replay (a local activity's result and a cancel in one activation are
        # not, and the replay of such an approval failed as nondeterministic).
        assert self._order is not None
        return await workflow.execute_activity(
            PLAN_APPROVAL, self._order, result_type=ApprovalPlan, start_to_close_timeout=PLAN_TIMEOUT, retry_policy=PLAN_RETRY
        )

    async def _wait_for_a_decision(self) -> None:
        """Until decided. The approvers' silence is timed from when they were asked (`_silence_due`), so an
        operator's ask_again, acted on as it comes, moves no deadline when it is refused."""
        while not self._lifecycle.closed:
            if self._asked_again is not None:
                await self._ask_again()
                continue
            due = self._silence_due()
            if due is None:  # nobody to ask, or the operators told: a decision or an operator moves it
                await workflow.wait_condition(self._stop_waiting)
                continue
            try:
                await workflow.wait_condition(self._stop_waiting, timeout=max(due - workflow.now(), timedelta(seconds=1)))
            except asyncio.TimeoutError:
                if not self._stop_waiting():  # a decision that came with the timer wins over it
                    self._on_silence()

    def _stop_waiting(self) -> bool:
        return self._lifecycle.closed or self._asked_again is not None

    def _silence_due(self) -> datetime | None:
        """When silence next calls for something: each reminder a remind_every apart, then on_timeout one more
        remind_every after the last; nothing once the operators are told."""
        plan = self._plan
        assert plan is not None
        if not self._approvers or self._operators_told:
            return None
        return self._asked_at + plan.remind_every * (self._reminders_sent + 1)

    def _on_silence(self) -> None:
        """A reminder, at most max_reminders; then budget.on_timeout: escalate (once; the new approvers reminded
        in turn), reject, or tell the operators and keep waiting."""
        plan = self._plan
        assert plan is not None
        if self._reminders_sent < plan.max_reminders:
            self._reminders_sent += 1
            self._queue(APPROVAL_REMINDER)
            return
        silence = f"no answer after {plan.max_reminders} reminder(s), every {plan.remind_every}"
        if plan.on_timeout == "escalate" and self._lifecycle.may("escalate", "system"):
            self._escalated_to = self._approvers = plan.escalate_to
            self._asked_at, self._round = workflow.now(), self._round + 1
            self._reminders_sent = 0  # the new approvers' reminders start again, and %RemindersSent% is theirs
            self._lifecycle.follow("escalate", "system", by="printroom", comment=silence)
        elif plan.on_timeout == "reject":
            self._lifecycle.follow("expire", "system", by="printroom", comment=silence)
        else:
            self._operators_told = True
            self._queue(APPROVAL_OVERDUE)  # the operators decide what to do; nobody is reminded any more

    async def _ask_again(self) -> None:
        """The settings read again: the approvers they name asked afresh (reminders, escalation and links start
        over; what the last round still had queued is not sent), or the request refused with the reason and the
        approval waiting as it was."""
        request = self._asked_again
        assert request is not None
        try:
            plan = await self._read_plan_unless_ended()
        except ActivityError as error:
            if is_cancellation(error):
                raise
            self._asked_again = None
            self._refusals.refuse("ask_again", request.model_dump(), f"the settings could not be read: {root_cause(error).message}")
            return
        self._asked_again = None  # and any request that came while they were read: one ask
        if plan is None or self._lifecycle.closed:  # decided or cancelled while the settings were read
            self._refusals.refuse("ask_again", request.model_dump(), self._ended())
            return
        if not plan.approvers:
            self._refusals.refuse("ask_again", request.model_dump(), f"still nobody to ask: {plan.problem}")
            return
        self._outbox.drop({*BUDGET.emails_on_start, APPROVAL_REMINDER, APPROVAL_OVERDUE}, "the approval was asked again before it went out")
        self._plan, self._approvers, self._escalated_to = plan, plan.approvers, []
        self._asked_at, self._reminders_sent, self._operators_told = workflow.now(), 0, False
        self._round += 1
        self._lifecycle.follow("ask_again", "operator", by=request.by, comment=request.comment)

    # Decisions: signals (validated here, a refusal recorded) and the update (a refusal answered and recorded).

    @workflow.signal(name="approve")
    async def approve(self, payload: Any = None) -> None:
        await self._signalled("approve", payload)

    @workflow.signal(name="reject")
    async def reject(self, payload: Any = None) -> None:
        await self._signalled("reject", payload)

    async def _signalled(self, decision: str, payload: Any) -> None:
        request = self._refusals.validate(decision, ApprovalDecision, payload, self._input)
        if request is None:
            return
        await workflow.wait_condition(lambda: self._plan is not None or self._lifecycle.closed)  # known once planned
        try:
            self._decide(decision, request.by, request.comment)
        except DecisionRefused as refusal:
            self._refusals.refuse(decision, payload, str(refusal))

    @workflow.signal(name=ORDER_CANCELLED)
    async def order_cancelled(self, payload: Any = None) -> None:
        """From the order: it was cancelled, so the approvers are told (approval_cancelled) and need not answer.
        The order is asked first (a signal could come from anyone): a claim it does not confirm is refused."""
        parent = workflow.info().parent
        if self._lifecycle.closed:
            return
        if parent is None:
            self._refusals.refuse(ORDER_CANCELLED, payload, "this approval has no order to have been cancelled")
            return
        self._confirming_cancel += 1
        try:
            confirmed = await workflow.execute_activity(
                CONFIRM_ORDER_CANCELLED, OrderRun(workflow_id=parent.workflow_id, run_id=parent.run_id), result_type=Confirmed,
                start_to_close_timeout=timedelta(seconds=30), schedule_to_close_timeout=timedelta(minutes=10),
            )  # fmt: skip
        except FailureError as error:
            if is_cancellation(error):
                raise
            confirmed = Confirmed(yes=False, why_not=f"the order could not be asked: {root_cause(error).message}")
        finally:  # state only: no workflow call may run while the worker evicts the workflow
            self._confirming_cancel -= 1
        if not confirmed.yes:
            self._refusals.refuse(ORDER_CANCELLED, payload, f"not applied: {confirmed.why_not}")
        elif not self._lifecycle.closed:
            before = "" if self._plan is not None else " before anyone was asked"
            self._lifecycle.follow("cancel", "system", by="printroom", comment=f"the order was cancelled{before}")

    @workflow.signal(name="ask_again")
    def ask_again(self, payload: Any = None) -> None:
        request = self._refusals.validate("ask_again", AskAgain, payload, self._input)
        if request is None:
            return
        if self._outcome is not None:
            self._refusals.refuse("ask_again", payload, self._ended())
        elif self._plan is None:
            self._refusals.refuse("ask_again", payload, "the approval is still reading the settings; ask again once it has asked")
        else:
            self._asked_again = request

    @workflow.update(name="decide")
    async def decide(self, payload: Any = None) -> ApprovalOutcome:
        """The approver's answer, answered: the outcome, or why it was refused (recorded as well)."""
        request = Decide.model_validate(payload)
        await workflow.wait_condition(lambda: self._plan is not None or self._lifecycle.closed)
        try:
            return self._decide(request.decision, request.by, request.comment)
        except DecisionRefused as refusal:
            self._refusals.refuse("decide", payload, str(refusal))
            raise ApplicationError(str(refusal), type="DecisionRefused", non_retryable=True) from None

    @decide.validator
    def _may_decide(self, payload: Any = None) -> None:
        """A malformed payload is refused before anything is written; who decides is checked, and recorded, by
        the update itself."""
        check_update(Decide, payload, self._input)

    def _decide(self, decision: str, by: str, comment: str) -> ApprovalOutcome:
        if self._outcome is not None:
            raise DecisionRefused(self._ended())
        if not by:
            raise DecisionRefused("say who decides: 'by' must be the approver's email address")
        if not any(same_address(by, approver) for approver in self._approvers):
            asked = ", ".join(self._approvers) or "nobody yet (the operators were told)"
            raise DecisionRefused(f"{by} is not an approver of order {self._order_id}; the approval is asked of {asked}")
        if refusal := self._lifecycle.follow(decision, "approver", by=by, comment=comment):
            raise DecisionRefused(refusal)
        assert self._outcome is not None
        return self._outcome

    def _ended(self) -> str:
        outcome = self._outcome
        assert outcome is not None
        when = f" on {outcome.at:%d %b %Y at %H:%M} UTC" if outcome.at else ""
        if outcome.status in ("approved", "rejected"):
            return f"the order {self._order_id} was already {outcome.status} by {outcome.by}{when}"
        return f"the approval of order {self._order_id} has ended: {outcome.status}{when} ({outcome.comment})"

    @workflow.query(name="state")
    def state(self) -> ApprovalState:
        return ApprovalState(
            order_id=self._order_id,
            status=self._lifecycle.state,
            approvers=self._approvers,
            approvers_from=self._plan.approvers_from if self._plan else "",
            requested_at=self._requested_at,
            reminders_sent=self._reminders_sent,
            escalated_to=self._escalated_to,
            decision=self._outcome,
            problem=self._plan.problem if self._plan else "",
            refused=self._refusals.items,
            answer_by=self._answer_by(),
            order=self._order,
            emails_sent=self._outbox.sent,
            emails_failed=self._outbox.failed,
            email_notes=self._outbox.notes,
        )

    # Moves and emails.

    @property
    def _order_id(self) -> str:
        return self._order.id if self._order else ""

    def _moved(self, row: Transition, source: str, detail: Mapping[str, Any]) -> None:
        """The Machine moved the approval: a final state is its outcome; the row's emails go to the approvers of now."""
        by, comment = detail.get("by", ""), detail.get("comment", "")
        workflow.logger.info("approval of order %s: %s -> %s (%s)", self._order_id, source, row.dest, row.trigger)
        if self._lifecycle.closed:
            self._outcome = ApprovalOutcome(
                status=row.dest, by=by, comment=comment, at=workflow.now(), from_outside=row.trigger == "withdraw"  # type: ignore[arg-type]
            )
            # A request or reminder still queued (the mail server slow or down) would ask for what is decided.
            self._outbox.drop({*BUDGET.emails_on_start, APPROVAL_REMINDER, APPROVAL_OVERDUE}, f"the approval was {row.dest} before it went out")
        for email_trigger in row.emails if self._plan is not None else ():  # before the plan, nobody was asked
            self._queue(email_trigger, previous=source, by=by, comment=comment)
        self._publish()

    def _queue(self, email_trigger: str, *, previous: str | None = None, by: str = "", comment: str = "") -> None:
        assert self._order is not None
        progress = ApprovalProgress(
            requested_at=self._requested_at, reminders_sent=self._reminders_sent, approvers=self._approvers,
            answer_by=self._answer_by(), links_expire=self._links_expire(), round=self._round,
        )  # fmt: skip
        self._outbox.queue(
            self._order, email_trigger, status="awaiting_approval", previous=previous, by=by, comment=comment,
            approvers=list(self._approvers), approval=progress,
        )  # fmt: skip

    def _answer_by(self) -> datetime | None:
        """When the approvers of now stop being waited for: after the last reminder, one more remind_every."""
        plan = self._plan
        if plan is None or not self._approvers or self._lifecycle.closed:
            return None
        return self._asked_at + plan.remind_every * (plan.max_reminders + 1)

    def _links_expire(self) -> datetime | None:
        answer_by, plan = self._answer_by(), self._plan
        if answer_by is None or plan is None:
            return None
        silence_ends_their_say = plan.on_timeout == "reject" or (plan.on_timeout == "escalate" and not self._escalated_to)
        return answer_by if silence_ends_their_say else answer_by + LINKS_OUTLIVE_SILENCE

    def _drafts_made(self, request: StatusEmailRequest, drafts: list[DraftContent]) -> None:
        """Emails held for an operator (edit_before_send, or a failure to fix) wait on the order, where operators
        look for them (DraftsPending): kept here for the order to fetch (`printroom.handed_drafts`), and the order
        rung. An approval started on its own has no order to hold them."""
        parent = workflow.info().parent
        if parent is None:
            for draft in drafts:
                self._outbox.record_failure(draft.email_trigger, "held for an operator, but this approval has no order workflow to hold it")
            return
        self._handed.append(HeldDrafts(request=request, drafts=drafts))
        del self._handed[:-MAX_HANDED_KEPT]
        bell = DraftsHanded(message_ids=[d.message_id for d in drafts])
        self._handovers.append(asyncio.create_task(self._hand_over(parent.workflow_id, parent.run_id, bell)))

    @workflow.query(name=HANDED_DRAFTS_QUERY)
    def handed_drafts(self, message_ids: Any = None) -> list[HeldDrafts]:
        """The drafts handed to the order under those Message-IDs (what its activity reads)."""
        wanted = set(message_ids) if isinstance(message_ids, list) else set()
        return [h for h in self._handed if any(d.message_id in wanted for d in h.drafts)]

    async def _hand_over(self, order_workflow_id: str, order_run_id: str, bell: DraftsHanded) -> None:
        """To the very run of the order that started this approval (an order started again is another)."""
        try:
            await workflow.get_external_workflow_handle(order_workflow_id, run_id=order_run_id).signal(HOLD_DRAFTS, bell)
        except FailureError as error:  # the order has closed: said here, where the operators look next
            if is_cancellation(error):
                raise
            self._outbox.record_failure(HOLD_DRAFTS, f"drafts {', '.join(bell.message_ids)} held for an operator, but the order could not take them: {error.message}")

    def _publish(self) -> None:
        """The approval at a glance in the Web UI's current details."""
        lines = [f"**Approval of order {self._order_id}**: {self._lifecycle.state}", ""]
        lines.append(f"- asked of {', '.join(self._approvers) or 'nobody'}" + (f", reminded {self._reminders_sent} time(s)" if self._reminders_sent else ""))
        if self._outcome is not None and self._outcome.by:
            lines.append(f"- {self._outcome.status} by {self._outcome.by}" + (f": {self._outcome.comment}" if self._outcome.comment else ""))
        if self._plan is not None and self._plan.problem:
            lines.append(f"- PROBLEM: {self._plan.problem}")
        lines += [f"- refused {r.kind}: {r.reason}" for r in self._refusals.items[-3:]]
        workflow.set_current_details("\n".join(lines))
