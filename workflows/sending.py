"""The sending of one order's emails: queued in the order their status changes happened, the first attempt for
everything queued in one local activity, passing failures retried by a regular activity per email, on its own
timeline. Deterministic."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from printroom.statemachines.emails import OPERATOR_NOTICES
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
    """A regular activity's failure comes wrapped in ActivityError, a child workflow's in ChildWorkflowError; a
    local activity's arrives bare."""
    wrapped = isinstance(error, (ActivityError, ChildWorkflowError)) and isinstance(error.cause, FailureError)
    return error.cause if wrapped else error  # type: ignore[return-value]


def is_cancellation(error: FailureError) -> bool:
    """The workflow is being cancelled: never a failed email, never a reason to retry."""
    return isinstance(root_cause(error), CancelledError) or isinstance(error, CancelledError)


@dataclass
class _Retry:
    """One email retried on its own timeline by a regular activity."""

    request: StatusEmailRequest
    reason: str
    # Retried because the server could not be reached: later first attempts wait behind it (they would fail the
    # same way), so that a recipient reads the emails in the order of the status changes.
    waits_for_server: bool
    handle: workflow.ActivityHandle[StatusEmailResult] | None = None
    abandoned: str = ""  # why the workflow itself gave it up (a decision made it untrue, a run handing over)


class Outbox:
    """What is queued, being sent, retried, sent and failed, and the loop that sends it. First attempts go in the
    order of the status changes; an email that fails for a reason of its own (its PDF not there yet, a 4xx for
    one recipient) is retried on its own timeline and holds nothing up; one that fails because the server is
    unreachable holds the first attempts queued behind it in its lane (operator notices have their own), which
    would fail alike, until it is through."""

    def __init__(self, order_id: str, drafts_made: DraftsMade, changed: Callable[[], None]) -> None:
        self._order_id, self._drafts_made, self._changed = order_id, drafts_made, changed
        self._queue: deque[StatusEmailRequest] = deque()
        self._sending: list[StatusEmailRequest] = []  # the first attempt under way
        self._retries: list[_Retry] = []
        self._retry_tasks: set[asyncio.Task[None]] = set()  # referenced while they run
        self._occurrences: Counter[str] = Counter()
        # Continue-as-new: nothing more is started; what is not through is carried into the next run.
        self._handing_over = False
        self._carried: list[StatusEmailRequest] = []
        self.sent: list[SentEmail] = []
        self.failed: list[FailedEmail] = []
        self.notes: list[str] = []
        # The status change each email to the customer came from, by Message-ID: a bounce's copy is rendered from it.
        self.requests: dict[str, StatusEmailRequest] = {}

    @property
    def idle(self) -> bool:
        return not self._queue and not self._sending and not self._retries

    @staticmethod
    def _lane(request: StatusEmailRequest) -> str:
        """Operator notices have a lane of their own: they never wait behind a customer's or an approver's email."""
        return "operators" if request.email_trigger in OPERATOR_NOTICES else "others"

    def _held_up(self, lane: str) -> bool:
        return any(r.waits_for_server and self._lane(r.request) == lane for r in self._retries)

    @property
    def first_attempt_due(self) -> bool:
        """A first attempt runs or is about to, in this workflow task (the local activity holds the task open until
        it is done): what it changes (drafts held) can be published together with what led to it."""
        return bool(self._sending) or self._batch_due()

    def waiting(self) -> int:
        return len(self._queue) + len(self._sending) + len(self._retries)

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
        run: str | None = None,
    ) -> None:
        """`run` names the run the email belongs to in its Message-ID: the workflow's first run id unless given."""
        self._queue.append(
            StatusEmailRequest(
                order=order, email_trigger=email_trigger, occurrence=self.next_occurrence(email_trigger),
                run=workflow.info().first_execution_run_id if run is None else run, status=status,
                previous_status=previous, by=by, comment=comment, changed_at=workflow.now(), waiting_draft=waiting_draft,
                approvers=approvers, approval=approval, spending=spending,
            )  # fmt: skip
        )

    def next_occurrence(self, email_trigger: str) -> int:
        """A new occurrence of an email outside the queue (a bounced email held again): a Message-ID of its own."""
        self._occurrences[email_trigger] += 1
        return self._occurrences[email_trigger]

    def requeue(self, requests: list[StatusEmailRequest]) -> None:
        """Emails an earlier run handed over (continue-as-new), as they were: same Message-IDs, sent once."""
        self._queue.extend(requests)
        for request in requests:
            self._occurrences[request.email_trigger] = max(self._occurrences[request.email_trigger], request.occurrence)

    def drop(self, email_triggers: set[str], why: str) -> None:
        """Emails that are no longer true (a request for a decision already taken): queued ones are never sent, and
        those being retried are cancelled; said so. A first attempt under way is left to finish."""
        dropped = [r for r in self._queue if r.email_trigger in email_triggers]
        for request in dropped:
            self._queue.remove(request)
            self.notes.append(f"{request.email_trigger}: not sent, {why}")
        for retry in self._retries:
            if retry.request.email_trigger in email_triggers:
                self._abandon(retry, why)

    async def hand_over(self, why: str) -> list[StatusEmailRequest]:
        """Everything not yet sent, for the next run to send (continue-as-new) with the same Message-IDs: the first
        attempt under way is let finish, retries are stopped (a send still running keeps its claim, so the next
        run's attempt waits for it and finds it recorded instead of sending it again)."""
        self._handing_over = True
        await workflow.wait_condition(lambda: not self._sending)
        for retry in self._retries:
            self._abandon(retry, why)
        await workflow.wait_condition(lambda: not self._retries)
        return self.take_queued()

    def take_queued(self) -> list[StatusEmailRequest]:
        """What is queued (or was carried from a stopped retry), taken out of this run: never sent by it."""
        carried = [*self._carried, *self._queue]
        self._carried, self._handing_over = [], True
        self._queue.clear()
        return carried

    @staticmethod
    def _abandon(retry: _Retry, why: str) -> None:
        if not retry.abandoned:
            retry.abandoned = why
            if retry.handle is not None:
                retry.handle.cancel()

    def pending(self) -> list[PendingEmail]:
        return (
            [PendingEmail(email_trigger=r.email_trigger, status="sending") for r in self._sending]
            + [PendingEmail(email_trigger=r.request.email_trigger, status="sending", last_error=r.reason) for r in self._retries]
            + [PendingEmail(email_trigger=r.email_trigger, status="queued") for r in self._queue]
        )

    def record(self, request: StatusEmailRequest, result: StatusEmailResult) -> None:
        self.sent.extend(result.sent)
        self.requests.update((e.message_id, request) for e in result.sent if e.audience == "customer")
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
        """Send until `finished()` says nothing more will be queued and every email is through."""
        while True:
            await workflow.wait_condition(lambda: self._batch_due() or self._through(finished))
            if not self._batch_due():
                return
            batch = [r for r in self._queue if not self._held_up(self._lane(r))][:MAX_BATCH]
            for request in batch:
                self._queue.remove(request)
            await self._send_batch(batch)

    def _batch_due(self) -> bool:
        return not self._handing_over and any(not self._held_up(self._lane(r)) for r in self._queue)

    def _through(self, finished: Callable[[], bool]) -> bool:
        return not self._sending and not self._retries and (self._handing_over or (finished() and not self._queue))

    async def _send_batch(self, requests: list[StatusEmailRequest]) -> None:
        """The first attempt for everything queued is one local activity: one marker in the workflow task. What
        fails transiently (SMTP down, 4xx, a file not there yet) is handed, email by email, to a regular activity:
        server-side backoff, listed under the Web UI's pending activities. Audiences already sent are never asked
        for again."""
        self._sending = list(requests)
        redo: list[tuple[StatusEmailRequest, str, bool]] = []
        try:
            outcome = await workflow.execute_local_activity(
                SEND_STATUS_EMAILS,
                StatusEmailBatch(requests=requests),
                result_type=StatusEmailBatchResult,
                start_to_close_timeout=FIRST_ATTEMPT_TIMEOUT,
                retry_policy=ONE_ATTEMPT,
            )
        except FailureError as error:  # the batch as a whole (a timeout, a dead worker): each is retried
            self._sending = []
            if is_cancellation(error):
                raise
            redo = [(r, root_cause(error).message, True) for r in requests]
        else:
            self._sending = []
            if len(outcome.results) != len(requests):  # only on replay, after an unversioned change
                raise workflow.NondeterminismError(
                    f"nondeterminism: the recorded batch holds {len(outcome.results)} results for {len(requests)} "
                    "queued emails; the order table changed under running orders: version it with workflow.patched"
                )
            for request, result in zip(requests, outcome.results):
                self.record(request, result)
                if result.retry:
                    redo.append((_again(request, result), result.retry_reason, result.retry_waits_for_server))
        # The first that waits for the server is retried with backoff, the others that would wait alike go back
        # to the head of the queue, in order; an email failing for a reason of its own is retried on its own.
        held: list[StatusEmailRequest] = []
        for request, reason, waits_for_server in redo:
            if self._handing_over:
                self._carried.append(request)
            elif waits_for_server and self._held_up(self._lane(request)):
                held.append(request)
            else:
                self._start_retry(_Retry(request, reason, waits_for_server))
        self._queue.extendleft(reversed(held))
        self._changed()

    def _start_retry(self, retry: _Retry) -> None:
        self._retries.append(retry)
        task = asyncio.create_task(self._retry(retry))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _retry(self, retry: _Retry) -> None:
        """A regular activity, retried by the server until the email is sent, or held for an operator."""
        try:
            await self._retry_until_done(retry)
        finally:
            self._retries.remove(retry)  # state only: no workflow call may run while the worker evicts the workflow
        self._changed()

    async def _retry_until_done(self, retry: _Retry) -> None:
        request = retry.request
        while True:
            try:
                retry.handle = workflow.start_activity(
                    SEND_STATUS_EMAIL,
                    request.model_copy(update={"waiting_for_server": retry.waits_for_server}),
                    result_type=StatusEmailResult,
                    start_to_close_timeout=EMAIL_GIVE_UP,
                    heartbeat_timeout=ATTEMPT_HEARTBEAT,
                    schedule_to_close_timeout=EMAIL_GIVE_UP,
                    retry_policy=EMAIL_RETRY,
                    summary=request.email_trigger,  # names the email in the Web UI's pending activities
                )
                if retry.abandoned:  # given up while this attempt was being started
                    retry.handle.cancel()
                result = await retry.handle
            except FailureError as error:
                if is_cancellation(error) and retry.abandoned:  # given up by us, not the workflow being cancelled
                    if self._handing_over:
                        self._carried.append(request)
                    else:
                        self.notes.append(f"{request.email_trigger}: no longer retried, {retry.abandoned}")
                    return
                if is_cancellation(error):
                    raise
                cause = root_cause(error)
                what = cause.message if isinstance(cause, ApplicationError) else f"{type(cause).__name__}: {cause.message}"
                self.record_failure(request.email_trigger, what)
                return
            finally:
                retry.handle = None
            self.record(request, result)
            if not result.retry:
                return
            request = retry.request = _again(request, result)
            retry.reason, retry.waits_for_server = result.retry_reason, result.retry_waits_for_server
            self._changed()


def _again(request: StatusEmailRequest, result: StatusEmailResult) -> StatusEmailRequest:
    """The same email, for what the attempt left: its audiences not reached, the recipients a 4xx put off."""
    return request.model_copy(update={"audiences": result.retry, "recipients": result.retry_recipients or None})
