"""The sending of one order's emails: queued in the order their status changes happened, the first attempt for
everything queued in one local activity, passing failures retried by a regular activity. Deterministic."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from printroom.models import (
        SEND_STATUS_EMAIL,
        ApprovalProgress,
        Spending,
        SEND_STATUS_EMAILS,
        DraftContent,
        DraftSummary,
        FailedEmail,
        Order,
        PendingEmail,
        SentEmail,
        StatusEmailBatch,
        StatusEmailBatchResult,
        StatusEmailRequest,
        StatusEmailResult,
    )

# The activity gives up on a passing failure after smtp.give_up_after and holds the email for an operator; the
# schedule-to-close is the backstop for when no worker can even run it.
EMAIL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5))
EMAIL_GIVE_UP = timedelta(days=8)
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
# The first attempt holds the workflow task open: a few emails, a few seconds (the task times out at 10 s).
FIRST_ATTEMPT_TIMEOUT = timedelta(seconds=8)
MAX_BATCH = 3
# A retried attempt may wait for a connection and carry 20 MB to a slow server, for as long as the SMTP settings
# let each command take: it is not cut by a deadline of ours but heartbeats while it works, so a dead worker is
# noticed within a minute and a slow transfer is never cut (and sent again).
ATTEMPT_HEARTBEAT = timedelta(minutes=1)
MAX_NOTES_KEPT = 100

# Told of the drafts an attempt made instead of sending (the request they came from, and the drafts).
DraftsMade = Callable[[StatusEmailRequest, list[DraftContent]], None]


def root_cause(error: FailureError) -> FailureError:
    """A regular activity's failure comes wrapped in ActivityError; a local activity's arrives bare."""
    return error.cause if isinstance(error, ActivityError) and isinstance(error.cause, FailureError) else error


def is_cancellation(error: FailureError) -> bool:
    """The workflow is being cancelled: never a failed email, never a reason to retry."""
    return isinstance(root_cause(error), CancelledError) or isinstance(error, CancelledError)


class Outbox:
    """What is queued, being sent, sent and failed, and the loop that sends it."""

    def __init__(self, order_id: str, drafts_made: DraftsMade, changed: Callable[[], None]) -> None:
        self._order_id, self._drafts_made, self._changed = order_id, drafts_made, changed
        self._queue: deque[StatusEmailRequest] = deque()
        self._sending: list[StatusEmailRequest] = []
        self._sending_error = ""  # why the last attempt failed, while the email is retried
        self._retrying = False
        self._retried: tuple[StatusEmailRequest, workflow.ActivityHandle[StatusEmailResult]] | None = None
        self._abandoned = ""  # why the email being retried was given up by the workflow itself
        self._occurrences: Counter[str] = Counter()
        self.sent: list[SentEmail] = []
        self.failed: list[FailedEmail] = []
        self.notes: list[str] = []

    @property
    def idle(self) -> bool:
        return not self._queue and not self._sending

    @property
    def first_attempt_due(self) -> bool:
        """A first attempt runs or is about to, in this workflow task (the local activity holds the task open until
        it is done): what it changes (drafts held) can be published together with what led to it."""
        return not self._retrying and bool(self._queue or self._sending)

    def waiting(self) -> int:
        return len(self._queue) + len(self._sending)

    def queue(
        self,
        order: Order,
        email_trigger: str,
        *,
        status: str,
        previous: str | None,
        by: str = "",
        comment: str = "",
        waiting_draft: DraftSummary | None = None,
        approvers: list[str] | None = None,
        approval: ApprovalProgress | None = None,
        spending: Spending | None = None,
    ) -> None:
        self._occurrences[email_trigger] += 1
        self._queue.append(
            StatusEmailRequest(
                order=order, email_trigger=email_trigger, occurrence=self._occurrences[email_trigger], status=status,
                previous_status=previous, by=by, comment=comment, changed_at=workflow.now(), waiting_draft=waiting_draft,
                approvers=approvers, approval=approval, spending=spending,
            )  # fmt: skip
        )

    def drop(self, email_triggers: set[str], why: str) -> None:
        """Emails that are no longer true (a request for a decision already taken): queued ones are never sent, and
        one being retried (its server down) is cancelled; said so. A first attempt under way is left to finish."""
        dropped = [r for r in self._queue if r.email_trigger in email_triggers]
        for request in dropped:
            self._queue.remove(request)
            self.notes.append(f"{request.email_trigger}: not sent, {why}")
        if self._retried is not None and self._retried[0].email_trigger in email_triggers:
            self._abandoned = why
            self._retried[1].cancel()

    def pending(self) -> list[PendingEmail]:
        return [
            PendingEmail(email_trigger=r.email_trigger, status="sending", last_error=self._sending_error) for r in self._sending
        ] + [PendingEmail(email_trigger=r.email_trigger, status="queued") for r in self._queue]

    def record(self, request: StatusEmailRequest, result: StatusEmailResult) -> None:
        self.sent.extend(result.sent)
        self.notes.extend(result.notes)
        del self.notes[:-MAX_NOTES_KEPT]
        for failed in result.failed:
            self.record_failure(request.email_trigger, f"{failed.audience}: {failed.error}")
        if result.drafts:
            self._drafts_made(request, result.drafts)

    def record_failure(self, email_trigger: str, error: str) -> None:
        workflow.logger.error("email %s for order %s failed: %s", email_trigger, self._order_id, error)
        self.failed.append(FailedEmail(email_trigger=email_trigger, error=error, at=workflow.now()))

    async def run(self, finished: Callable[[], bool]) -> None:
        """Send until `finished()` says the order needs nothing more."""
        while True:
            await workflow.wait_condition(lambda: bool(self._queue) or finished())
            if not self._queue:
                return
            await self._send_batch([self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))])

    async def _send_batch(self, requests: list[StatusEmailRequest]) -> None:
        """The first attempt for everything queued is one local activity: one marker in the workflow task. What
        fails transiently (SMTP down, 4xx) is handed, email by email, to a regular activity: server-side
        backoff, listed under the Web UI's pending activities. Audiences already sent are never asked for again."""
        self._sending = list(requests)
        try:
            try:
                outcome = await workflow.execute_local_activity(
                    SEND_STATUS_EMAILS,
                    StatusEmailBatch(requests=requests),
                    result_type=StatusEmailBatchResult,
                    start_to_close_timeout=FIRST_ATTEMPT_TIMEOUT,
                    retry_policy=ONE_ATTEMPT,
                )
            except FailureError as error:  # the batch as a whole (a timeout, a dead worker): each is retried
                if is_cancellation(error):
                    raise
                redo = [(r, root_cause(error).message) for r in requests]
            else:
                if len(outcome.results) != len(requests):  # only on replay, after an unversioned change
                    raise workflow.NondeterminismError(
                        f"nondeterminism: the recorded batch holds {len(outcome.results)} results for {len(requests)} "
                        "queued emails; the order table changed under running orders: version it with workflow.patched"
                    )
                redo = []
                for request, result in zip(requests, outcome.results):
                    self.record(request, result)
                    if result.retry:
                        redo.append((_again(request, result), result.retry_reason))
            if redo:
                # The first is retried with backoff; the others wait at the head of the queue, in order, and get
                # a fresh first attempt once it is through (likely when the server is back).
                (request, reason), rest = redo[0], [r for r, _ in redo[1:]]
                self._queue.extendleft(reversed(rest))
                self._sending = [request]
                await self._retry(request, reason)
        finally:
            self._sending, self._sending_error = [], ""
            self._changed()

    async def _retry(self, request: StatusEmailRequest, reason: str) -> None:
        """A regular activity, retried by the server until the email is sent, or held for an operator."""
        self._sending_error, self._retrying = reason, True
        self._changed()
        try:
            await self._retry_until_done(request)
        finally:
            self._retrying = False

    async def _retry_until_done(self, request: StatusEmailRequest) -> None:
        while True:
            try:
                attempt = workflow.start_activity(
                    SEND_STATUS_EMAIL,
                    request,
                    result_type=StatusEmailResult,
                    start_to_close_timeout=EMAIL_GIVE_UP,
                    heartbeat_timeout=ATTEMPT_HEARTBEAT,
                    schedule_to_close_timeout=EMAIL_GIVE_UP,
                    retry_policy=EMAIL_RETRY,
                    summary=request.email_trigger,  # names the email in the Web UI's pending activities
                )
                self._retried = (request, attempt)
                result = await attempt
            except FailureError as error:
                if is_cancellation(error) and self._abandoned:  # given up by us, not the workflow being cancelled
                    self.notes.append(f"{request.email_trigger}: no longer retried, {self._abandoned}")
                    self._abandoned = ""
                    return
                if is_cancellation(error):
                    raise
                cause = root_cause(error)
                what = cause.message if isinstance(cause, ApplicationError) else f"{type(cause).__name__}: {cause.message}"
                self.record_failure(request.email_trigger, what)
                return
            finally:
                self._retried = None
            self.record(request, result)
            if not result.retry:
                return
            request = _again(request, result)
            self._sending_error = result.retry_reason


def _again(request: StatusEmailRequest, result: StatusEmailResult) -> StatusEmailRequest:
    """The same email, for what the attempt left: its audiences not reached, the recipients a 4xx put off."""
    return request.model_copy(update={"audiences": result.retry, "recipients": result.retry_recipients or None})
