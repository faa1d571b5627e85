"""What a printroom client tells each order it starts: its start emails that are off (memo `printroom.start`), and
its first status among its search attributes."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.client import Interceptor, OutboundInterceptor, StartWorkflowInput, WorkflowHandle
from temporalio.common import SearchAttributePair, SearchAttributes, TypedSearchAttributes

from printroom.models import ORDER_START_MEMO, OrderStart
from printroom.settings import Settings
from printroom.statemachines.order import ORDER
from printroom.workflows.order import DRAFTS_PENDING, ORDER_STATUS

ORDER_WORKFLOW = "OrderWorkflow"


def order_start(settings: Settings) -> OrderStart:
    """The start emails these settings never send: an order told so runs no activity in its first task."""
    return OrderStart(emails_off=[t for t in ORDER.emails_on_start if settings.emails.for_trigger(t).send == "never"])


def with_first_status(given: SearchAttributes | TypedSearchAttributes | None) -> SearchAttributes | TypedSearchAttributes:
    """The caller's search attributes and, where it set none of its own, the order's first status and no drafts
    waiting: the order is listed by status from its start, and its first task has nothing to upsert (the
    server writes the order's visibility row once instead of twice)."""
    ours = [SearchAttributePair(ORDER_STATUS, ORDER.initial), SearchAttributePair(DRAFTS_PENDING, 0)]
    if isinstance(given, TypedSearchAttributes):
        named = {pair.key.name for pair in given}
        return TypedSearchAttributes([*given, *(pair for pair in ours if pair.key.name not in named)])
    return {**{pair.key.name: [pair.value] for pair in ours}, **(given or {})}  # the older, untyped form


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
        if input.workflow == ORDER_WORKFLOW and ORDER_START_MEMO not in (input.memo or {}):
            input.memo = {**(input.memo or {}), ORDER_START_MEMO: order_start(self._settings())}
        if input.workflow == ORDER_WORKFLOW:
            input.search_attributes = with_first_status(input.search_attributes)
        return await super().start_workflow(input)
