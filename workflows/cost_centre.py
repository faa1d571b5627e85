"""CostCentreWorkflow, `cost-centre-<name>`: a cost centre's spending per period. Each approved or accepted order
of it is counted once per run of its order, and taken back once (what it added) if it is then cancelled or
rejected in the same period; its approvers get `budget_warning` once a period when the spending crosses the
threshold. It continues as new so that its history stays small for years, and never waits for an email to do so:
what is not sent yet rides into the next run, like its refusals."""

from __future__ import annotations

import asyncio
from collections import deque
from decimal import Decimal
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from printroom.workflows.requests import Refusals, WorkflowInput, check_update
    from printroom.workflows.sending import Outbox

    import email_validator  # noqa: F401  # EmailStr imports it lazily

    from printroom.models import (
        ADD_SPENDING,
        COST_CENTRE_WORKFLOW,
        COUNT_ORDER,
        TAKE_BACK,
        TAKE_BACK_ORDER,
        CostCentreBook,
        DraftContent,
        Spending,
        SpendingAnswer,
        SpendingRecord,
        StatusEmailRequest,
    )
    from printroom.statemachines.emails import BUDGET_WARNING

MAX_COUNTED_KEPT = 5000
# Warnings carried into the next run at most (one a period is due; a mail server down for months is not).
MAX_EMAILS_CARRIED = 20


@workflow.defn(name=COST_CENTRE_WORKFLOW)
class CostCentreWorkflow:
    @workflow.init
    def __init__(self, raw_book: Any = None) -> None:
        self._input = WorkflowInput(CostCentreBook, raw_book, "cost centre")
        self._book = self._input.value
        self._inbox: deque[SpendingRecord] = deque(self._book.pending if self._book else [])
        self._refusals = Refusals(lambda: f"cost centre {self._name}", self._publish)
        self._outbox = Outbox(self._name, self._not_held, self._publish)
        if self._book is not None:
            self._refusals.items = list(self._book.refused)
            self._outbox.requeue(self._book.emails)

    @workflow.run
    async def run(self, raw_book: Any = None) -> None:
        if self._book is None:
            raise self._input.fail()
        sending = asyncio.create_task(self._outbox.run(lambda: False))
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or self._history_full())
            self._count_inbox()
            if self._history_full():
                break
        # Counting goes on while the warnings still to send are handed over: none is waited for.
        emails = await self._outbox.hand_over("carried into the cost centre's next run")
        await sending
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._count_inbox()
        emails += self._outbox.take_queued()  # a warning those last counts fired
        if len(emails) > MAX_EMAILS_CARRIED:
            for request in emails[:-MAX_EMAILS_CARRIED]:  # a refusal rides into the next run, where it is seen
                self._refusals.refuse(request.email_trigger, "", "not sent: more warnings waited for the mail server than are carried")
            emails = emails[-MAX_EMAILS_CARRIED:]
        book = self._book.model_copy(update={"pending": [], "emails": emails, "refused": self._refusals.items})
        workflow.continue_as_new(book)

    def _history_full(self) -> bool:
        info = workflow.info()
        assert self._book is not None
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._book.history_limit

    def _count_inbox(self) -> None:
        while self._inbox:
            record = self._inbox.popleft()
            self._take_back(record) if record.take_back else self._count(record)

    # Signals (anyone's; refusals shown in `spending`) and updates (printroom's orders: answered).

    @workflow.signal(name=ADD_SPENDING)
    def add_spending(self, payload: Any = None) -> None:
        if (record := self._refusals.validate(ADD_SPENDING, SpendingRecord, payload, self._input)) is not None:
            self._inbox.append(record.model_copy(update={"take_back": False}))

    @workflow.signal(name=TAKE_BACK)
    def take_back_spending(self, payload: Any = None) -> None:
        if (record := self._refusals.validate(TAKE_BACK, SpendingRecord, payload, self._input)) is not None:
            self._inbox.append(record.model_copy(update={"take_back": True}))

    @workflow.update(name=COUNT_ORDER)
    def count_order(self, payload: Any = None) -> SpendingAnswer:
        """Counted now, or why not: the order's note says what the cost centre did, never what it was asked."""
        self._count_inbox()  # records signalled earlier count first
        return self._count(SpendingRecord.model_validate(payload))

    @workflow.update(name=TAKE_BACK_ORDER)
    def take_back_order(self, payload: Any = None) -> SpendingAnswer:
        self._count_inbox()
        return self._take_back(SpendingRecord.model_validate(payload))

    @count_order.validator
    def _may_count(self, payload: Any = None) -> None:
        check_update(SpendingRecord, payload, self._input)

    @take_back_order.validator
    def _may_take_back(self, payload: Any = None) -> None:
        check_update(SpendingRecord, payload, self._input)

    @workflow.query(name="spending")
    def spending(self) -> Spending:
        return self._current()

    @property
    def _name(self) -> str:
        return self._book.terms.name if self._book else ""

    def _current(self) -> Spending:
        assert self._book is not None
        terms = self._book.terms
        if self._book.spending is None:
            self._book.spending = Spending(
                cost_centre=terms.name, period="", budget=terms.budget, currency=terms.currency, warn_at_percent=terms.warn_at_percent
            )
        return self._book.spending

    def _count(self, record: SpendingRecord) -> SpendingAnswer:
        """Once per order and run, in the record's period; the warning once per period, when the threshold is
        crossed."""
        book = self._book
        assert book is not None
        order, price, key = record.order, record.order.price, record.key
        if record.settings is not None:
            book.terms = record.settings  # the settings of today: a raised budget applies from now on
        spending = self._in_period(record.period)
        spending.budget, spending.warn_at_percent = book.terms.budget, book.terms.warn_at_percent
        if key in book.counted:
            return SpendingAnswer(ok=True, note=f"cost centre {book.terms.name}: order {order.id} was counted already")
        if record.period and record.period < spending.period:
            return self._refuse(f"order {order.id} counts in {record.period}, a period already closed; not counted")
        if price is None or price.currency != spending.currency:
            what = f"in {price.currency}" if price else "without a price"
            return self._refuse(f"order {order.id} is {what}; this cost centre counts in {spending.currency} (never converted)")
        book.counted.append(key)
        del book.counted[:-MAX_COUNTED_KEPT]
        book.this_period[key] = price.amount
        while len(book.this_period) > MAX_COUNTED_KEPT:
            del book.this_period[next(iter(book.this_period))]
        spending.spent += price.amount
        spending.orders += 1
        crossed = spending.spent * 100 >= spending.budget * Decimal(spending.warn_at_percent)
        workflow.logger.info("cost centre %s: %s counts %s, %s spent in %s", book.terms.name, order.id, price.amount, spending.spent, spending.period)
        if crossed and spending.warned_at is None:
            spending.warned_at = workflow.now()
            self._outbox.queue(
                order, BUDGET_WARNING, status="accepted", previous=None, approvers=list(book.terms.approvers),
                spending=spending.model_copy(), run=f"{workflow.info().first_execution_run_id}/{spending.period}",
            )  # fmt: skip
        self._publish()
        return SpendingAnswer(ok=True, note=f"cost centre {book.terms.name}: {price.amount} {price.currency} counted in {spending.period}")

    def _in_period(self, period: str) -> Spending:
        """The spending of the period a record arrives in: a new period starts from nothing (as does one written
        another way: the settings went from month to year)."""
        book = self._book
        assert book is not None
        spending = self._current()
        if period and (period > spending.period or len(period) != len(spending.period)):
            spending = book.spending = Spending(
                cost_centre=book.terms.name, period=period, budget=book.terms.budget, currency=book.terms.currency,
                warn_at_percent=book.terms.warn_at_percent,
            )  # fmt: skip
            book.this_period = {}
        return spending

    def _take_back(self, record: SpendingRecord) -> SpendingAnswer:
        """A counted order cancelled or rejected: what it added comes off, once, if it counted in the current
        period (a closed period is not reopened). The warning already sent stays sent."""
        book = self._book
        assert book is not None
        order, key, spending = record.order, record.key, self._in_period(record.period)
        if key in book.taken_back:
            return SpendingAnswer(ok=True, note=f"cost centre {book.terms.name}: order {order.id} was taken back already")
        amount = book.this_period.pop(key, None)
        if amount is None:
            why = "in a period that has closed; not taken back" if key in book.counted else "here; nothing taken back"
            return self._refuse(f"order {order.id} was not counted {why}", TAKE_BACK)
        book.taken_back.append(key)
        del book.taken_back[:-MAX_COUNTED_KEPT]
        spending.spent -= amount
        spending.orders -= 1
        spending.taken_back += 1
        workflow.logger.info("cost centre %s: %s taken back, %s, %s spent in %s", book.terms.name, order.id, amount, spending.spent, spending.period)
        self._publish()
        return SpendingAnswer(ok=True, note=f"cost centre {book.terms.name}: {amount} {spending.currency} taken back from {spending.period}")

    def _not_held(self, request: StatusEmailRequest, drafts: list[DraftContent]) -> None:
        """A warning is never held for an operator; one that could not be sent is said as failed."""
        for draft in drafts:
            self._outbox.record_failure(draft.email_trigger, draft.reason or "held for an operator, but a cost centre has no order to hold it")

    def _refuse(self, reason: str, kind: str = ADD_SPENDING) -> SpendingAnswer:
        """An order not counted (or not taken back): in the `spending` query, where the cost centre's owner looks,
        and in the answer to the order that asked."""
        self._refusals.refuse(kind, "", reason)
        return SpendingAnswer(ok=False, note=f"cost centre {self._name}: {reason}")

    def _publish(self) -> None:
        """Refusals (of orders and of malformed records) into `spending`; a summary in current details."""
        if self._book is None:
            return
        s = self._current()
        s.refused = [r.reason for r in self._refusals.items[-10:]]
        lines = [f"**Cost centre {self._name}**: {s.spent} of {s.budget} {s.currency} spent in {s.period or '(no order yet)'} ({s.percent}%)"]
        if s.taken_back:
            lines.append(f"- {s.taken_back} order(s) cancelled or rejected after counting: taken back")
        if s.warned_at:
            lines.append(f"- warned at {s.warned_at:%Y-%m-%d %H:%M} UTC (threshold {s.warn_at_percent}%)")
        if waiting := self._outbox.waiting():
            lines.append(f"- {waiting} warning(s) waiting to be sent")
        lines += [f"- FAILED {f.email_trigger}: {f.error}" for f in self._outbox.failed[-3:]]
        lines += [f"- refused: {r.reason}" for r in self._refusals.items[-3:]]
        workflow.set_current_details("\n".join(lines))
