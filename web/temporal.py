"""What the pages ask of Temporal: an approval's state, an approver's decision, an order's held drafts. Each answer
is one of ours; Temporal out of reach is `Unreachable`, said to the visitor as "try again", never as a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from printroom.models import ApprovalOutcome, ApprovalState, Decide, Draft, budget_workflow_id

# A page waits this long for Temporal, then says "try again" (a worker down makes queries wait).
CALL_TIMEOUT = timedelta(seconds=10)
# A visitor waits this long for a connection being made, then is told to try again; the attempt goes on meanwhile.
CONNECT_WAIT = 2.0


class Unreachable(Exception):
    """Temporal (or every worker) did not answer: nothing was recorded."""


class NotWaiting(Exception):
    """No such workflow: no approval for this order, or no such order."""


class NoAnswer(Exception):
    """The decision was handed to Temporal but its answer did not come in time: it may have been recorded."""


@dataclass(frozen=True)
class Refused:
    """The approval did not take the decision; its reason, as the workflow gave it."""

    reason: str


class TemporalPages:
    """Connects when first needed (and again after a failure), with the worker's client settings."""

    def __init__(self, connect: Callable[[], Awaitable[Client]]) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._connecting: asyncio.Future[Client] | None = None

    async def client(self) -> Client:
        """One attempt to connect at a time, shared by every visitor who comes while it runs; each waits for it at
        most CONNECT_WAIT, so that nobody queues behind another's wait (Temporal out of reach: 503 within 2 s)."""
        if self._client is not None:
            return self._client
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._attempt())
            self._connecting.add_done_callback(lambda done: done.cancelled() or done.exception())  # read: never "unretrieved"
        try:
            return await asyncio.wait_for(asyncio.shield(self._connecting), CONNECT_WAIT)
        except asyncio.TimeoutError:
            raise Unreachable(f"no connection to Temporal within {CONNECT_WAIT:.0f}s (still trying)") from None

    async def _attempt(self) -> Client:
        try:
            self._client = await asyncio.wait_for(self._connect(), CALL_TIMEOUT.total_seconds())
        except (RuntimeError, RPCError, OSError, asyncio.TimeoutError) as error:
            raise Unreachable(str(error) or f"no answer within {CALL_TIMEOUT.total_seconds():.0f}s") from None
        return self._client

    async def close(self) -> None:
        """Stops an attempt still running (the service is stopping)."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)

    async def approval(self, order_id: str) -> ApprovalState:
        handle = (await self.client()).get_workflow_handle(budget_workflow_id(order_id))
        try:
            return await handle.query("state", result_type=ApprovalState, rpc_timeout=CALL_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError) as error:
            raise self._problem(error) from None

    async def decide(self, order_id: str, decision: Decide, update_id: str) -> ApprovalOutcome | Refused:
        """The `decide` update, under an id of the link's: a second POST of the same link (a double click, a retry
        after a timeout) joins the first instead of deciding again."""
        handle = (await self.client()).get_workflow_handle(budget_workflow_id(order_id))
        try:
            return await asyncio.wait_for(
                handle.execute_update("decide", decision, id=update_id, result_type=ApprovalOutcome, rpc_timeout=CALL_TIMEOUT),
                2 * CALL_TIMEOUT.total_seconds(),
            )
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            return Refused(cause.message if isinstance(cause, ApplicationError) else str(cause))
        except (RPCTimeoutOrCancelledError, asyncio.TimeoutError):
            raise NoAnswer() from None
        except RPCError as error:
            raise self._problem(error) from None

    async def drafts(self, workflow_id: str) -> list[Draft]:
        handle = (await self.client()).get_workflow_handle(workflow_id)
        try:
            return await handle.query("drafts", result_type=list[Draft], rpc_timeout=CALL_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError) as error:
            raise self._problem(error) from None

    def _problem(self, error: RPCError | WorkflowQueryFailedError) -> Exception:
        if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
            return NotWaiting(error.message)
        if isinstance(error, RPCError) and error.status == RPCStatusCode.UNAVAILABLE:
            self._client = None  # the server went away: connect again next time
        return Unreachable(getattr(error, "message", str(error)))
