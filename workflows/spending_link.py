"""The order's side of its cost centre: its price counted once when approved or accepted, and taken back if the
order is then cancelled or rejected. The counting is CostCentreWorkflow's. Deterministic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from printroom.models import RECORD_SPENDING, TAKE_BACK_SPENDING, Order, SpendingAnswer, SpendingRecord
    from printroom.workflows.sending import is_cancellation, root_cause

# Retried while Temporal is busy, for a day at most; then said in the order's notes.
SPENDING_TIMEOUT = timedelta(days=1)


class SpendingLink:
    """Counts an order at most once and takes it back at most once, after its count has answered. `done` once
    neither has anything left to do."""

    def __init__(self, on_answer: Callable[[SpendingAnswer], None]) -> None:
        self._on_answer = on_answer
        self._counting: asyncio.Task[SpendingAnswer] | None = None
        self._taking_back: asyncio.Task[None] | None = None
        # The count gave up without an answer: it may have reached the cost centre, so a take-back is sent anyway
        # (the cost centre refuses, visibly, an order it never counted).
        self._count_unanswered = False

    @property
    def done(self) -> bool:
        return all(task is None or task.done() for task in (self._counting, self._taking_back))

    def count(self, order: Order) -> None:
        if order.cost_centre and self._counting is None:
            self._counting = asyncio.create_task(self._ask(RECORD_SPENDING, self._record(order), "not counted"))

    @staticmethod
    def _record(order: Order) -> SpendingRecord:
        """This run of the order: one started again under the same id is counted anew, and taken back on its own."""
        return SpendingRecord(order=order, run=workflow.info().first_execution_run_id)

    def take_back(self, order: Order) -> None:
        """Nothing to take back unless it was counted; a count still running is waited for."""
        if self._counting is not None and self._taking_back is None:
            self._taking_back = asyncio.create_task(self._take_back(order, self._counting))

    async def _take_back(self, order: Order, counting: asyncio.Task[SpendingAnswer]) -> None:
        counted = await counting
        if counted.ok or self._count_unanswered:
            await self._ask(TAKE_BACK_SPENDING, self._record(order), "not taken back")

    async def _ask(self, activity: str, record: SpendingRecord, failed: str) -> SpendingAnswer:
        order = record.order
        try:
            answer = await workflow.execute_activity(
                activity, record, result_type=SpendingAnswer, start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=SPENDING_TIMEOUT,
            )  # fmt: skip
        except FailureError as error:
            if is_cancellation(error):
                raise
            self._count_unanswered |= activity == RECORD_SPENDING
            answer = SpendingAnswer(ok=False, note=f"cost centre {order.cost_centre}: {failed}: {root_cause(error).message}")
        if not answer.ok:  # not counted, or not taken back
            workflow.logger.warning("order %s: %s", order.id, answer.note)
        self._on_answer(answer)
        return answer
