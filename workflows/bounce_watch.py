"""BounceWatchWorkflow, `printroom-bounces`: polls the print room's bounce mailbox through one activity, a timer
between polls. A poll's result is counts only, so a run's history stays small whatever the mailbox holds; it
continues as new after `polls_per_run` polls. A mailbox that cannot be read is shown in the current details and
polled again later and later (no retry storm against a server that refuses us)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from printroom.models import BOUNCE_WATCH_WORKFLOW, POLL_BOUNCES, BouncePoll, BouncePollResult, BounceWatch, BounceWatchState
    from printroom.workflows.requests import WorkflowInput

# A poll is one session: a batch read, signalled, filed away. Temporal not answering is retried a little; what
# still fails waits for the next poll, like a mailbox that cannot be read.
POLL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0, maximum_attempts=3)
POLL_TIMEOUT = timedelta(minutes=10)
POLL_HEARTBEAT = timedelta(minutes=2)
STOP_AFTER_UNSET = 3
# After failures in a row the wait doubles (poll_every x 2, x 4, ...) up to this.
MAX_BACKOFF = timedelta(hours=1)
POLL_NOW = "poll_now"


@workflow.defn(name=BOUNCE_WATCH_WORKFLOW)
class BounceWatchWorkflow:
    @workflow.init
    def __init__(self, raw: Any = None) -> None:
        self._input = WorkflowInput(BounceWatch, raw, "bounce watch")
        self._watch = self._input.value or BounceWatch()
        self._state = BounceWatchState(**self._watch.model_dump())
        self._poll_asked = False

    @workflow.run
    async def run(self, raw: Any = None) -> BounceWatchState:
        if self._input.value is None:
            raise self._input.fail()
        self._publish()
        for _ in range(self._watch.polls_per_run):
            result = await self._poll()
            unset = result is not None and result.poll_every is None  # [bounces] gone from that worker's settings
            self._watch.unset_in_a_row = self._watch.unset_in_a_row + 1 if unset else 0
            if self._watch.unset_in_a_row >= STOP_AFTER_UNSET:
                self._state.stopped = result.error if result is not None else None
                self._publish()
                return self._state
            await self._wait(self._pause(result))
        workflow.continue_as_new(self._watch)

    async def _poll(self) -> BouncePollResult | None:
        """One poll; None when it failed (recorded as the last error)."""
        self._watch.polls += 1
        try:
            result = await workflow.execute_activity(
                POLL_BOUNCES, BouncePoll(poll=self._watch.polls), result_type=BouncePollResult,
                start_to_close_timeout=POLL_TIMEOUT, heartbeat_timeout=POLL_HEARTBEAT, retry_policy=POLL_RETRY,
            )  # fmt: skip
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                raise
            self._failed(f"the poll failed: {error.cause or error}")
            return None
        self._watch.last_poll = workflow.now()
        self._watch.counts = self._watch.counts.plus(result.counts)
        self._watch.mailbox = result.mailbox or self._watch.mailbox
        if result.poll_every is not None:
            self._watch.poll_every = result.poll_every
        if result.error is not None:
            self._failed(result.error)
        else:
            self._watch.failures_in_a_row, self._watch.last_error = 0, None
        return result

    def _failed(self, error: str) -> None:
        self._watch.failures_in_a_row += 1
        self._watch.last_error = error
        workflow.logger.warning("bounce watcher: %s (failure %d in a row)", error, self._watch.failures_in_a_row)

    def _pause(self, result: BouncePollResult | None) -> timedelta:
        """At once when a full batch left more waiting; poll_every normally; doubling after failures in a row."""
        if result is not None and result.more and result.error is None:
            return timedelta(0)
        failures = self._watch.failures_in_a_row
        if failures == 0:
            return self._watch.poll_every
        return min(self._watch.poll_every * 2 ** min(failures, 12), max(MAX_BACKOFF, self._watch.poll_every))

    async def _wait(self, pause: timedelta) -> None:
        self._state.next_poll = workflow.now() + pause
        self._publish()
        if pause > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._poll_asked, timeout=pause)
            except TimeoutError:
                pass
        self._poll_asked = False

    @workflow.signal(name=POLL_NOW)
    def poll_now(self, _: Any = None) -> None:
        """Poll without waiting for the timer (an operator who just fixed the password; benchmarks)."""
        self._poll_asked = True

    @workflow.query(name="state")
    def state(self) -> BounceWatchState:
        return self._state

    def _publish(self) -> None:
        """The query's answer and the Web UI's current details, from what a run carries."""
        self._state = BounceWatchState(**self._watch.model_dump(), next_poll=self._state.next_poll, stopped=self._state.stopped)
        counts, watch = self._watch.counts, self._watch
        lines = [
            f"**Bounce watcher** · {watch.mailbox or 'the [bounces] mailbox'}",
            f"matched {counts.matched} · unmatched {counts.unmatched} (moved aside) · ignored {counts.ignored} (left in "
            f"place) · malformed {counts.malformed} · signals sent {counts.signals}",
            f"polls {watch.polls}; last {_when(watch.last_poll)}; next {_when(self._state.next_poll)}",
        ]
        if watch.last_error:
            lines.append(f"**Cannot read the mailbox** ({watch.failures_in_a_row} time(s) in a row): {watch.last_error}")
        if self._state.stopped:
            lines.append(f"**Stopped**: {self._state.stopped}")
        workflow.set_current_details("\n\n".join(lines))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "-"
