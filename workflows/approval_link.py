"""The order's side of its budget approval: the child workflow `budget-<order id>` started, decisions relayed to
it, its outcome handed back, and it cancelled when the order is. Deterministic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from printroom.models import BUDGET_WORKFLOW, ApprovalOutcome, Order, budget_workflow_id
    from printroom.workflows.sending import is_cancellation, root_cause


class ApprovalLink:
    """One approval per order, at most. `done` once it has ended, however it ended."""

    def __init__(self) -> None:
        self._handle: workflow.ChildWorkflowHandle[Any, ApprovalOutcome] | None = None
        self.started = False
        self.done = False
        self.outcome: ApprovalOutcome | None = None
        # The order asked for the cancel (its own cancel), as opposed to someone cancelling `budget-<id>` itself.
        self._cancel_asked = False

    @property
    def waiting(self) -> bool:
        return self._handle is not None and not self.done

    async def run(self, order: Order, on_outcome: Callable[[ApprovalOutcome], None], on_problem: Callable[[str], None]) -> None:
        """Start the approval and wait for it; its outcome (or why there is none) goes to the order."""
        self.started = True
        try:
            try:
                self._handle = await workflow.start_child_workflow(
                    BUDGET_WORKFLOW,
                    order,
                    id=budget_workflow_id(order.id),
                    result_type=ApprovalOutcome,
                    # An order closed while the approval waits (cancelled, terminated) still tells its approvers.
                    parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                    static_summary=f"Budget approval of order {order.id}",
                )
            except WorkflowAlreadyStartedError:
                on_problem(
                    f"the budget approval could not start: a workflow {budget_workflow_id(order.id)} is already running; "
                    "end it, then cancel this order and start it again"
                )
                return
            if self._cancel_asked:  # the order was cancelled while its approval was starting
                self._handle.cancel()
            try:
                outcome = await self._handle
            except ChildWorkflowError as error:
                if is_cancellation(error) and self._cancel_asked:
                    return  # the order is being cancelled: nothing to move
                what = "was cancelled from outside the order" if is_cancellation(error) else f"failed: {root_cause(error).message}"
                on_problem(f"the budget approval {what}; the order waits: cancel it, or start it again")
                return
            self.outcome = outcome
            on_outcome(outcome)
        finally:
            self.done = True

    async def relay(self, signal: str, payload: Any) -> str | None:
        """An approver's signal sent to the order goes to its approval, which hears it or records why not."""
        if self.started and not self.done and self._handle is None:  # starting: handed over once it has started
            await workflow.wait_condition(lambda: self._handle is not None or self.done)
        if self.outcome is not None:
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
        """The approval ends as cancelled: its approvers are told (approval_cancelled). One still starting is
        cancelled as soon as it has started."""
        self._cancel_asked = True
        if self.waiting:
            assert self._handle is not None
            self._handle.cancel()
