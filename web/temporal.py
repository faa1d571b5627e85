"""What the pages ask of Temporal: an approval's state, an approver's decision, the orders with drafts waiting and
an order's held drafts, an operator's send or discard. Each answer
is one of ours; Temporal out of reach is `Unreachable`, said to the visitor as "try again", never as a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from printroom.draft_requests import discard_and_confirm
from printroom.models import ApprovalOutcome, ApprovalState, Decide, Draft, DraftSent, OrderState, RefusedRequest, StatusEmailRequest, budget_workflow_id
from printroom.workflows.order import DRAFTS_PENDING, OLDEST_DRAFT_HELD

T = TypeVar("T")

# A page waits this long for Temporal, then says "try again" (a worker down makes queries wait).
CALL_TIMEOUT = timedelta(seconds=10)
# An order of the desk's list answers its `drafts` query within this, or is listed as not answering (no worker).
DESK_QUERY_TIMEOUT = timedelta(seconds=3)
# A discard is a signal: its outcome is read back from the order's state, this many times 0.1 s apart (5 s).
DISCARD_CHECKS = 50
# A visitor waits this long for a connection being made, then is told to try again; the attempt goes on meanwhile.
CONNECT_WAIT = 1.0
# After a failed connection attempt, visitors are told "try again" at once for this long: a flood of them does not
# start a connection each.
CONNECT_PAUSE = 2.0
# A call not answered within QUICK_WAIT asks whether Temporal itself still answers (a health check of HEALTH_WAIT):
# if not, the visitor is told now, within 2 s, rather than after CALL_TIMEOUT, and the client is dropped; if it does
# (a worker is slow), the call waits on as before.
QUICK_WAIT = 1.0
HEALTH_WAIT = 0.8


class Unreachable(Exception):
    """Temporal (or every worker) did not answer: nothing was recorded."""


class NotWaiting(Exception):
    """No such workflow: no approval for this order, or no such order."""


class NoAnswer(Exception):
    """The decision was handed to Temporal but its answer did not come in time: it may have been recorded."""


def waiting_orders(task_queue: str) -> str:
    """The open orders on `task_queue` whose drafts wait, as the visibility store finds them (each order keeps
    DraftsPending up to date)."""
    queue = task_queue.replace("\\", "\\\\").replace('"', '\\"')
    return f'WorkflowType = "OrderWorkflow" AND ExecutionStatus = "Running" AND TaskQueue = "{queue}" AND DraftsPending > 0'


@dataclass(frozen=True)
class WaitingOrder:
    """An open order with drafts waiting, as the visibility store lists it."""

    workflow_id: str
    started: datetime
    drafts: int
    # When its oldest waiting draft was held (OldestDraftHeld); an order started before that attribute: None.
    oldest_draft: datetime | None = None

    @property
    def waiting_since(self) -> datetime:
        """What the desk sorts by: its oldest draft's age, or, without one known, the order's own."""
        return self.oldest_draft or self.started


@dataclass(frozen=True)
class Refused:
    """The workflow did not take the decision, the send or the discard; its reason, as the workflow gave it (English),
    and, when the workflow named it, its words and values for a page in another language."""

    reason: str
    words: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


class TemporalPages:
    """Connects when first needed (and again after a failure), with the worker's client settings."""

    def __init__(self, connect: Callable[[], Awaitable[Client]]) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._connecting: asyncio.Future[Client] | None = None
        self._checking: asyncio.Future[bool] | None = None
        self._failed: tuple[float, str] | None = None  # when the last connection attempt failed, and why

    async def client(self) -> Client:
        """One attempt to connect at a time, shared by every visitor who comes while it runs; each waits for it at
        most CONNECT_WAIT, so that nobody queues behind another's wait (Temporal out of reach: 503 within 2 s)."""
        if self._client is not None:
            return self._client
        if self._connecting is None or self._connecting.done():
            if self._failed is not None and asyncio.get_running_loop().time() - self._failed[0] < CONNECT_PAUSE:
                raise Unreachable(f"{self._failed[1]} (trying again within {CONNECT_PAUSE:.0f}s)")
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
            reason = str(error) or f"no answer within {CALL_TIMEOUT.total_seconds():.0f}s"
            self._failed = (asyncio.get_running_loop().time(), reason)
            raise Unreachable(reason) from None
        self._failed = None
        return self._client

    async def _answered(self, client: Client, call: Awaitable[T], *, sent: bool) -> T:
        """`call`'s outcome, or, when it takes over QUICK_WAIT and Temporal no longer answers a health check, the
        client dropped (the next visitor connects again) and Unreachable now: NoAnswer if `call` sent a decision
        or a signal, which Temporal may yet take. A frozen Temporal kept each visitor CALL_TIMEOUT (10-20 s)."""
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=QUICK_WAIT)
            if not done and not await self._alive(client):
                if self._client is client:
                    self._client = None
                if sent:
                    raise NoAnswer()
                raise Unreachable(f"Temporal stopped answering (no answer within {QUICK_WAIT:.0f}s, nor to a health check)")
            return await task
        finally:
            task.cancel()  # the visitor has been answered: a call still waiting is of no use

    async def _alive(self, client: Client) -> bool:
        """Whether Temporal answers a health check within HEALTH_WAIT; one check shared by the pages asking at once."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._health(client))
        return await asyncio.shield(self._checking)

    @staticmethod
    async def _health(client: Client) -> bool:
        try:
            check = client.service_client.check_health(timeout=timedelta(seconds=HEALTH_WAIT))
            return await asyncio.wait_for(check, HEALTH_WAIT + 0.1)
        except (RPCError, RuntimeError, OSError, asyncio.TimeoutError):
            return False

    async def close(self) -> None:
        """Stops an attempt still running (the service is stopping)."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)

    async def approval(self, order_id: str) -> ApprovalState:
        client = await self.client()
        handle = client.get_workflow_handle(budget_workflow_id(order_id))
        try:
            return await self._answered(client, handle.query("state", result_type=ApprovalState, rpc_timeout=CALL_TIMEOUT), sent=False)
        except (RPCError, WorkflowQueryFailedError) as error:
            raise self._problem(error) from None

    async def decide(self, order_id: str, decision: Decide, update_id: str) -> ApprovalOutcome | Refused:
        """The `decide` update, under an id of the link's: a second POST of the same link (a double click, a retry
        after a timeout) joins the first instead of deciding again."""
        return await self._update(budget_workflow_id(order_id), "decide", decision, update_id, ApprovalOutcome)

    async def edit_and_send(self, workflow_id: str, edits: dict[str, Any], update_id: str) -> DraftSent | Refused:
        """The order's `edit_and_send` update: its validator refuses a bad edit with the reason, nothing written."""
        return await self._update(workflow_id, "edit_and_send", edits, update_id, DraftSent)

    async def _update(self, workflow_id: str, name: str, payload: Any, update_id: str, answer: type[Any]) -> Any:
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id)
        try:
            return await self._answered(client, asyncio.wait_for(
                handle.execute_update(name, payload, id=update_id, result_type=answer, rpc_timeout=CALL_TIMEOUT),
                2 * CALL_TIMEOUT.total_seconds(),
            ), sent=True)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if not isinstance(cause, ApplicationError):
                return Refused(str(cause))
            named = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            return Refused(cause.message, str(named.get("words", "")), dict(named.get("values") or {}))
        except (RPCTimeoutOrCancelledError, asyncio.TimeoutError):
            raise NoAnswer() from None
        except RPCError as error:
            raise self._problem(error) from None

    async def drafts(self, workflow_id: str, timeout: timedelta = CALL_TIMEOUT) -> list[Draft]:
        return await self._query(workflow_id, "drafts", list[Draft], timeout=timeout)

    async def order_state(self, workflow_id: str) -> OrderState:
        return await self._query(workflow_id, "state", OrderState)

    async def draft_source(self, workflow_id: str, draft_id: str) -> StatusEmailRequest | None:
        """The status change a draft came from: what a preview is rendered from, as the send renders it."""
        return await self._query(workflow_id, "draft_source", StatusEmailRequest | None, draft_id)

    async def _query(self, workflow_id: str, name: str, answer: Any, *args: Any, timeout: timedelta = CALL_TIMEOUT) -> Any:
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id)
        try:
            return await self._answered(client, handle.query(name, *args, result_type=answer, rpc_timeout=timeout), sent=False)
        except (RPCError, WorkflowQueryFailedError) as error:
            raise self._problem(error) from None

    async def waiting_orders(self, task_queue: str) -> list[WaitingOrder]:
        """Every open order of the print room's task queue with drafts waiting, the one whose oldest draft waits
        longest first (one visibility listing, 1,000 a page, sorted here: the SQL visibility stores take no
        ORDER BY)."""
        client = await self.client()

        async def listing() -> list[WaitingOrder]:
            found = []
            async for execution in client.list_workflows(waiting_orders(task_queue), page_size=1000, rpc_timeout=CALL_TIMEOUT):
                attributes = execution.typed_search_attributes
                pending, oldest = attributes.get(DRAFTS_PENDING) or 0, attributes.get(OLDEST_DRAFT_HELD)
                found.append(WaitingOrder(execution.id, execution.start_time, pending, oldest))
            return sorted(found, key=lambda w: (w.waiting_since, w.workflow_id))

        try:
            return await self._answered(client, asyncio.wait_for(listing(), 2 * CALL_TIMEOUT.total_seconds()), sent=False)
        except RPCError as error:
            raise self._problem(error) from None
        except asyncio.TimeoutError:
            raise Unreachable(f"the list of orders did not come within {2 * CALL_TIMEOUT.total_seconds():.0f}s") from None

    async def discard(self, workflow_id: str, draft_id: str, reason: str, by: str) -> OrderState | Refused:
        """The `discard_draft` signal, then the order's state: applied (the draft gone) or refused (and why)."""
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id)
        try:
            discarding = discard_and_confirm(handle, draft_id, reason, by, checks=DISCARD_CHECKS, rpc_timeout=CALL_TIMEOUT)
            answer = await self._answered(client, discarding, sent=True)
        except RPCError as error:
            raise self._problem(error) from None
        if answer is None:
            raise NoAnswer()
        return Refused(answer.reason, answer.words, answer.values) if isinstance(answer, RefusedRequest) else answer

    def _problem(self, error: RPCError | WorkflowQueryFailedError) -> Exception:
        if isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND:
            return NotWaiting(error.message)
        if isinstance(error, RPCError) and error.status == RPCStatusCode.UNAVAILABLE:
            self._client = None  # the server went away: connect again next time
        return Unreachable(getattr(error, "message", str(error)))
