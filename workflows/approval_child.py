"""The order's side of its budget approval: the child workflow `budget-<order id>` started (again, after someone
cancelled it from outside), decisions relayed to it, its outcome handed back, and it told when the order is
cancelled. Deterministic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from printroom.models import BUDGET_WORKFLOW, ORDER_CANCELLED, ApprovalOutcome, Order, budget_workflow_id
    from printroom.workflows.sending import is_cancellation, root_cause


class ApprovalChild:
    """One approval at a time per order. `done` once it has ended, however it ended; one that ended without a
    decision (cancelled from outside the order) can be started again by an operator's ask_again."""

    def __init__(self) -> None:
        self._handle: workflow.ChildWorkflowHandle[Any, ApprovalOutcome] | None = None
        self.started = False
        self.done = False
        self.outcome: ApprovalOutcome | None = None
        self.rounds = 0  # approvals started for this order
        # The order was cancelled: its approval is told so (and tells its approvers), once it has started.
        self._cancel_asked = False
        self._telling: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> bool:
        return self._handle is not None and not self.done

    @property
    def run_id(self) -> str | None:
        """The run of the approval started last: the one whose drafts this order holds."""
        return self._handle.first_execution_run_id if self._handle is not None else None

    @property
    def may_start_again(self) -> bool:
        """Ended without a decision: cancelled from outside the order, or failed."""
        return self.done and not self._cancel_asked and (self.outcome is None or self.outcome.from_outside)

    async def run(self, order: Order, on_outcome: Callable[[ApprovalOutcome], None], on_problem: Callable[[str], None]) -> None:
        """Start the approval and wait for it; its outcome (or why there is none) goes to the order, once the approval
        is marked ended: what the order then publishes says so."""
        self.started, self.done, self.outcome, self._handle = True, False, None, None
        self.rounds += 1
        try:
            ended = await self._started_and_ended(order)
        finally:
            self.done = True
        if isinstance(ended, ApprovalOutcome):
            self.outcome = ended
            on_outcome(ended)
        elif ended is not None:
            on_problem(ended)

    async def _started_and_ended(self, order: Order) -> ApprovalOutcome | str | None:
        """The approval's outcome; or why there is none, for the order to say; or None, cancelled by the order."""
        try:
            self._handle = await workflow.start_child_workflow(
                BUDGET_WORKFLOW,
                order,
                id=budget_workflow_id(order.id),
                result_type=ApprovalOutcome,
                # An order closed while the approval waits (terminated) does not leave it waiting for ever.
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"Budget approval of order {order.id}",
            )
        except WorkflowAlreadyStartedError:
            return (
                f"the budget approval could not start: a workflow {budget_workflow_id(order.id)} is already running; "
                "end it, then send ask_again to this order"
            )
        if self._cancel_asked:  # the order was cancelled while its approval was starting
            self._tell_cancelled()
        try:
            outcome = await self._handle
        except ChildWorkflowError as error:
            if is_cancellation(error) and self._cancel_asked:
                return None  # the order is being cancelled: nothing to move
            what = "was cancelled from outside the order" if is_cancellation(error) else f"failed: {root_cause(error).message}"
            return f"the budget approval {what}; the order waits: send ask_again to this order to start a new one"
        if outcome.status == "cancelled" and not self._cancel_asked:  # not the order's doing, however it came
            return outcome.model_copy(update={"from_outside": True})
        return outcome

    async def relay(self, signal: str, payload: Any) -> str | None:
        """An approver's signal sent to the order goes to its approval, which hears it or records why not."""
        if self.started and not self.done and self._handle is None:  # starting: handed over once it has started
            await workflow.wait_condition(lambda: self._handle is not None or self.done)
        if self.outcome is not None and not self.outcome.from_outside:
            ended, by = self.outcome, f" by {self.outcome.by}" if self.outcome.by else ""
            when = f" on {ended.at:%d %b %Y at %H:%M} UTC" if ended.at else ""
            return f"the budget approval has ended: {ended.status}{by}{when}"
        if not self.waiting:
            return "the order is not waiting for a budget approval" + (" any more" if self.done else "")
        assert self._handle is not None
        try:
            await self._handle.signal(signal, payload)
        except FailureError as error:
            if is_cancellation(error):
                raise
            return f"could not reach the approval: {error.message}"
        return None

    def cancel(self) -> None:
        """The order was cancelled: its approval ends as cancelled and tells its approvers (approval_cancelled).
        One still starting is told as soon as it has started."""
        self._cancel_asked = True
        if self.waiting:
            self._tell_cancelled()

    async def tell_cancelled(self) -> None:
        """The order's workflow itself is being cancelled: the approval is told before the order closes (the close
        would only cancel it, and a bare cancel tells the approvers nothing)."""
        self._cancel_asked = True
        if self.waiting:
            await self._signal_cancelled()

    def _tell_cancelled(self) -> None:
        task = asyncio.create_task(self._signal_cancelled())
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _signal_cancelled(self) -> None:
        assert self._handle is not None
        try:
            await self._handle.signal(ORDER_CANCELLED)
        except FailureError as error:  # it has ended meanwhile: nothing left to tell
            if is_cancellation(error):
                raise
            workflow.logger.info("the approval could not be told that its order was cancelled: %s", error.message)
