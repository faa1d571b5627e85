"""OrderWorkflow: one per order; applies status changes through the order table and sends the emails they fire."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    # EmailStr imports email_validator (and idna) lazily, on the first address it checks.
    import email_validator  # noqa: F401
    import idna  # noqa: F401
    from pydantic import BaseModel, ValidationError

    from printroom.models import (
        SEND_STATUS_EMAIL,
        SEND_STATUS_EMAILS,
        StatusEmailBatch,
        StatusEmailBatchResult,
        ApprovalDecision,
        ChangeStatus,
        FailedEmail,
        Order,
        OrderState,
        PendingEmail,
        RefusedRequest,
        SentEmail,
        StatusChange,
        StatusEmailRequest,
        StatusEmailResult,
        validation_problems,
    )
    from printroom.statemachines.order import ORDER
    from printroom.statemachines.table import Actor, Lifecycle, Transition

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SEARCH_ATTRIBUTES = (ORDER_STATUS,)

# Failures a retry cannot fix are raised non_retryable by the activity (a broken template, say).
EMAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5))
FIRST_ATTEMPT = RetryPolicy(maximum_attempts=1)
FIRST_ATTEMPT_TIMEOUT = timedelta(seconds=90)
# Since this patch, everything queued together goes out in one local activity (the two emails of a new order).
BATCHED_FIRST_ATTEMPT = "batched-first-attempt"
MAX_BATCH = 10
MAX_REFUSED_KEPT = 100
MAX_NOTES_KEPT = 100
MAX_PAYLOAD_SHOWN = 500


def _root(error: FailureError) -> FailureError:
    """A regular activity's failure comes wrapped in ActivityError; a local activity's arrives bare."""
    return error.cause if isinstance(error, ActivityError) and isinstance(error.cause, FailureError) else error


def _cause(error: FailureError) -> str:
    return _root(error).message


def _is_permanent(error: FailureError) -> bool:
    root = _root(error)
    return isinstance(root, ApplicationError) and root.non_retryable


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, raw_order: Any = None) -> None:
        self._problems: list[str] = []
        self._order: Order | None = None
        try:
            self._order = Order.model_validate(raw_order)
        except ValidationError as error:
            self._problems = validation_problems(error)
        self._lifecycle = Lifecycle(ORDER, self._moved)
        self._changes: list[StatusChange] = []
        self._sent: list[SentEmail] = []
        self._failed: list[FailedEmail] = []
        self._notes: list[str] = []
        self._refused: list[RefusedRequest] = []
        self._outbox: deque[StatusEmailRequest] = deque()
        self._sending: list[StatusEmailRequest] = []
        self._sending_error = ""  # why the last attempt failed, while the email is retried
        self._occurrences: Counter[str] = Counter()
        self._published_status: str | None = None
        if self._order is not None:
            self._queue_emails(ORDER.emails_on_start, previous=None, by="", comment="")
            if self._order.over_budget:
                self._apply("request_approval", "system", kind="start", by="printroom", comment="")

    @workflow.run
    async def run(self, raw_order: Any = None) -> OrderState:
        if self._order is None:
            raise ApplicationError(
                "invalid order input: " + "; ".join(self._problems) + ". Fix the JSON and start the workflow again.",
                type="InvalidOrder",
                non_retryable=True,
            )
        self._publish()
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox) or self._finished())
            if not self._outbox:
                break
            if workflow.patched(BATCHED_FIRST_ATTEMPT):
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), MAX_BATCH))]
                await self._send_batch(batch)
            else:  # orders started before the patch replay the way they ran
                await self._send(self._outbox.popleft())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    # Signals: decoded leniently (Any), validated here, so a bad payload is refused visibly, never dropped.

    @workflow.signal(name="change_status")
    def change_status(self, payload: Any = None) -> None:
        request = self._validate("change_status", ChangeStatus, payload)
        if request is not None:
            self._apply(request.trigger, "operator", kind="change_status", by=request.by, comment=request.comment, payload=payload)

    @workflow.signal(name="approve")
    def approve(self, payload: Any = None) -> None:
        decision = self._validate("approve", ApprovalDecision, payload)
        if decision is not None:
            self._apply("approve_budget", "approver", kind="approve", by=decision.by, comment=decision.comment, payload=payload)

    @workflow.signal(name="reject")
    def reject(self, payload: Any = None) -> None:
        decision = self._validate("reject", ApprovalDecision, payload)
        if decision is not None:
            self._apply("reject_budget", "approver", kind="reject", by=decision.by, comment=decision.comment, payload=payload)

    @workflow.query(name="state")
    def state(self) -> OrderState:
        pending = [
            PendingEmail(email_trigger=r.email_trigger, status="sending", last_error=self._sending_error)
            for r in self._sending
        ] + [PendingEmail(email_trigger=r.email_trigger, status="queued") for r in self._outbox]
        return OrderState(
            order_id=self._order.id if self._order else "",
            status=self._lifecycle.state,
            allowed_triggers=self._lifecycle.allowed_triggers("operator"),
            changes=self._changes,
            emails_sent=self._sent,
            emails_pending=pending,
            emails_failed=self._failed,
            email_notes=self._notes,
            refused=self._refused,
        )

    # Inside.

    def _validate(self, kind: str, model: type[BaseModel], payload: Any) -> Any:
        if self._order is None:
            self._refuse(kind, payload, "the order itself is invalid: " + "; ".join(self._problems))
            return None
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            self._refuse(kind, payload, "malformed payload: " + "; ".join(validation_problems(error)))
            return None

    def _apply(self, trigger: str, actor: Actor, *, kind: str, by: str, comment: str, payload: Any = None) -> None:
        """Ask the order's Machine to move; a refusal changes nothing and is recorded with its reason."""
        if refusal := self._lifecycle.follow(trigger, actor, by=by, comment=comment):
            self._refuse(kind, payload, refusal)

    def _moved(self, row: Transition, source: str, detail: Mapping[str, Any]) -> None:
        """The Machine moved the order (its `after` callback): record it and queue the emails the row fires."""
        by, comment = detail.get("by", ""), detail.get("comment", "")
        workflow.logger.info("order %s: %s -> %s (%s)", self._order.id if self._order else "", source, row.dest, row.trigger)
        self._changes.append(StatusChange(trigger=row.trigger, source=source, dest=row.dest, by=by, comment=comment, at=workflow.now()))
        self._queue_emails(row.emails, previous=source, by=by, comment=comment)
        self._publish()

    def _refuse(self, kind: str, payload: Any, reason: str) -> None:
        workflow.logger.warning("refused %s: %s (payload %r)", kind, reason, payload)
        shown = repr(payload)
        self._refused.append(
            RefusedRequest(kind=kind, reason=reason, payload=shown[:MAX_PAYLOAD_SHOWN], at=workflow.now())
        )
        del self._refused[:-MAX_REFUSED_KEPT]

    def _queue_emails(self, email_triggers: tuple[str, ...], *, previous: str | None, by: str, comment: str) -> None:
        assert self._order is not None
        for email_trigger in email_triggers:
            self._occurrences[email_trigger] += 1
            self._outbox.append(
                StatusEmailRequest(
                    order=self._order,
                    email_trigger=email_trigger,
                    occurrence=self._occurrences[email_trigger],
                    status=self._lifecycle.state,
                    previous_status=previous,
                    by=by,
                    comment=comment,
                    changed_at=workflow.now(),
                )
            )

    async def _send_batch(self, requests: list[StatusEmailRequest]) -> None:
        """Emails go out in the order their status changes happened. The first attempt for everything queued is
        one local activity: one marker in the workflow task, about 6 history events per email instead of 11.
        What fails transiently (SMTP down, 4xx) is handed, email by email, to a regular activity: server-side
        backoff, listed under the Web UI's pending activities. Audiences already sent are never asked for again."""
        self._sending = list(requests)
        try:
            try:
                outcome = await workflow.execute_local_activity(
                    SEND_STATUS_EMAILS,
                    StatusEmailBatch(requests=requests),
                    result_type=StatusEmailBatchResult,
                    start_to_close_timeout=FIRST_ATTEMPT_TIMEOUT,
                    retry_policy=FIRST_ATTEMPT,
                )
            except FailureError as error:  # the batch as a whole (a timeout, a dead worker): each is retried
                redo = [] if _is_permanent(error) else [(r, _cause(error)) for r in requests]
                if not redo:
                    for request in requests:
                        self._record_failure(request.email_trigger, _cause(error))
            else:
                if len(outcome.results) != len(requests):  # only on replay, after an unversioned change
                    raise RuntimeError(
                        f"nondeterminism: the recorded batch holds {len(outcome.results)} results for {len(requests)} "
                        "queued emails; the order table changed under running orders: version it with workflow.patched"
                    )
                redo = []
                for request, result in zip(requests, outcome.results):
                    self._record(request, result)
                    if result.retry:
                        redo.append((request.model_copy(update={"audiences": result.retry}), result.retry_reason))
            if redo:
                # The first is retried with backoff; the others wait at the head of the queue, in order, and get
                # a fresh first attempt once it is through (likely when the server is back).
                (request, reason), rest = redo[0], [r for r, _ in redo[1:]]
                self._outbox.extendleft(reversed(rest))
                self._sending = [request]
                await self._retry(request, reason)
        finally:
            self._sending, self._sending_error = [], ""
            self._publish()

    async def _send(self, request: StatusEmailRequest) -> None:
        """Before BATCHED_FIRST_ATTEMPT: one local activity per email, then the same retries."""
        self._sending = [request]
        try:
            try:
                result = await self._attempt(request, local=True)
            except FailureError as error:
                if _is_permanent(error):
                    self._record_failure(request.email_trigger, _cause(error))
                else:
                    await self._retry(request, _cause(error))
                return
            self._record(request, result)
            if result.retry:
                await self._retry(request.model_copy(update={"audiences": result.retry}), result.retry_reason)
        finally:
            self._sending, self._sending_error = [], ""
            self._publish()

    async def _retry(self, request: StatusEmailRequest, reason: str) -> None:
        """A regular activity, retried by the server until the email is sent or fails for good."""
        self._sending_error = reason
        while True:
            try:
                result = await self._attempt(request, local=False)
            except FailureError as error:
                self._record_failure(request.email_trigger, _cause(error))
                return
            self._record(request, result)
            if not result.retry:
                return
            request = request.model_copy(update={"audiences": result.retry})
            self._sending_error = result.retry_reason

    def _record(self, request: StatusEmailRequest, result: StatusEmailResult) -> None:
        self._sent.extend(result.sent)
        self._notes.extend(result.notes)
        del self._notes[:-MAX_NOTES_KEPT]
        for failed in result.failed:
            self._record_failure(request.email_trigger, f"{failed.audience}: {failed.error}")

    async def _attempt(self, request: StatusEmailRequest, *, local: bool) -> StatusEmailResult:
        if local:
            return await workflow.execute_local_activity(
                SEND_STATUS_EMAIL,
                request,
                result_type=StatusEmailResult,
                start_to_close_timeout=FIRST_ATTEMPT_TIMEOUT,
                retry_policy=FIRST_ATTEMPT,
            )
        return await workflow.execute_activity(
            SEND_STATUS_EMAIL,
            request,
            result_type=StatusEmailResult,
            start_to_close_timeout=timedelta(minutes=1),  # one SMTP transaction; a dead worker's is retried then
            retry_policy=EMAIL_RETRY,
            summary=request.email_trigger,  # names the email in the Web UI's pending activities
        )

    def _record_failure(self, email_trigger: str, error: str) -> None:
        workflow.logger.error("email %s for order %s failed: %s", email_trigger, self._order.id if self._order else "", error)
        self._failed.append(FailedEmail(email_trigger=email_trigger, error=error, at=workflow.now()))

    def _finished(self) -> bool:
        return self._lifecycle.closed and not self._outbox and not self._sending

    def _publish(self) -> None:
        """Status as a search attribute (operators filter by it) and a summary in the Web UI's current details."""
        status = self._lifecycle.state
        if status != self._published_status:
            workflow.upsert_search_attributes([ORDER_STATUS.value_set(status)])
            self._published_status = status
        assert self._order is not None
        lines = [f"**Order {self._order.id}**: {status}", ""]
        lines += [f"- sent {e.email_trigger} to {', '.join(e.to)}" for e in self._sent[-10:]]
        lines += [f"- FAILED {f.email_trigger}: {f.error}" for f in self._failed[-5:]]
        if self._outbox or self._sending:
            lines.append(f"- {len(self._outbox) + len(self._sending)} email(s) waiting to be sent")
        workflow.set_current_details("\n".join(lines))
