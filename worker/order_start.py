"""What a printroom client tells each order it starts: its start emails that are off (memo `printroom.start`), and
its first status among its search attributes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import (
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    StartWorkflowUpdateWithStartInput,
    UpdateWithStartStartWorkflowInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.common import SearchAttributePair, SearchAttributes, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from printroom.models import ORDER_START_MEMO, OrderStart
from printroom.settings import Settings
from printroom.statemachines.order import ORDER
from printroom.workflows.order import DRAFTS_PENDING, ORDER_STATUS

ORDER_WORKFLOW = "OrderWorkflow"
T = TypeVar("T")
log = logging.getLogger("printroom.client")


def order_start(settings: Settings) -> OrderStart:
    """The start emails these settings never send: an order told so runs no activity in its first task."""
    return OrderStart(emails_off=[t for t in ORDER.emails_on_start if settings.emails.for_trigger(t).send == "never"])


FIRST_STATUS = (SearchAttributePair(ORDER_STATUS, ORDER.initial), SearchAttributePair(DRAFTS_PENDING, 0))

Attributes = SearchAttributes | TypedSearchAttributes


def with_first_status(given: Attributes | None) -> Attributes:
    """The caller's search attributes and, where it set none of its own, the order's first status and no drafts
    waiting: the order is listed by status from its start, and its first task upserts only what differs from them
    (nothing, as a rule: the server writes the order's visibility row once instead of twice)."""
    if given is None or isinstance(given, TypedSearchAttributes):
        named = {pair.key.name for pair in given or ()}
        return TypedSearchAttributes([*(given or ()), *(pair for pair in FIRST_STATUS if pair.key.name not in named)])
    return {**{pair.key.name: [pair.value] for pair in FIRST_STATUS}, **given}  # the caller's older, untyped form


def _unregistered(error: RPCError, given: Attributes | None) -> bool:
    """The server refused a search attribute printroom added (not one of the caller's): the namespace has not
    registered it yet, which a printroom worker does when it starts."""
    named = {pair.key.name for pair in given} if isinstance(given, TypedSearchAttributes) else set(given or {})
    added = [pair.key.name for pair in FIRST_STATUS if pair.key.name not in named]
    return error.status == RPCStatusCode.INVALID_ARGUMENT and any(name in error.message for name in added)


class OrderStartMemo(Interceptor):
    """A client interceptor (PrintroomPlugin adds it): every OrderWorkflow started through the client carries the
    memo, unless the caller wrote one of its own under that key, and its first status (`with_first_status`).
    `settings` is read when an order starts, not before: the plugin validates its settings on first use."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, self._settings)


class _Outbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, settings: Callable[[], Settings]) -> None:
        super().__init__(next)
        self._settings = settings

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle:  # type: ignore[type-arg]
        return await self._started(input, lambda: super(_Outbound, self).start_workflow(input))

    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> WorkflowUpdateHandle:  # type: ignore[type-arg]
        return await self._started(input.start_workflow_input, lambda: super(_Outbound, self).start_update_with_start_workflow(input))

    async def _started(self, start: StartWorkflowInput | UpdateWithStartStartWorkflowInput, call: Callable[[], Awaitable[T]]) -> T:
        """An order's start with the memo and its first status; where the namespace lacks the status attributes,
        the start as the caller wrote it: the order publishes them itself once a worker has registered them."""
        if start.workflow != ORDER_WORKFLOW:
            return await call()
        if ORDER_START_MEMO not in (start.memo or {}):
            start.memo = {**(start.memo or {}), ORDER_START_MEMO: order_start(self._settings())}
        given = start.search_attributes
        start.search_attributes = with_first_status(given)
        try:
            return await call()
        except RPCError as error:
            if not _unregistered(error, given):
                raise
            log.warning("OrderStatus and DraftsPending are not registered in this namespace yet (%s): order %s "
                           "started without them; it publishes them itself once a printroom worker has started "
                           "(it registers them)", error.message, start.id)  # fmt: skip
            start.search_attributes = given
            return await call()
