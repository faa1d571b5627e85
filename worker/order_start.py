"""What a printroom client tells each order it starts: its start emails that are off (memo `printroom.start`), and
its first status among its search attributes."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

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
log = logging.getLogger("printroom.client")


def order_start(settings: Settings) -> OrderStart:
    """The start emails these settings never send: an order told so runs no activity in its first task."""
    return OrderStart(emails_off=[t for t in ORDER.emails_on_start if settings.emails.for_trigger(t).send == "never"])


FIRST_STATUS = (SearchAttributePair(ORDER_STATUS, ORDER.initial), SearchAttributePair(DRAFTS_PENDING, 0))

Attributes = SearchAttributes | TypedSearchAttributes


def with_first_status(given: Attributes | None) -> Attributes:
    """The caller's search attributes and, where it set none of its own, the order's first status and no drafts
    waiting: the order is listed by status from its start, and its first task upserts only what differs from them
    (nothing, unless that task moves the order or holds a draft: the server writes its visibility row once)."""
    if given is None or isinstance(given, TypedSearchAttributes):
        return TypedSearchAttributes(list(FIRST_STATUS)).updated(*(given or ()))  # the caller's own values win
    return {**{pair.key.name: [pair.value] for pair in FIRST_STATUS}, **given}  # the caller's older, untyped form


def _added(given: Attributes | None) -> list[str]:
    """The names of the first status's attributes that printroom adds to `given` (the caller set the others)."""
    named = {pair.key.name for pair in given} if isinstance(given, TypedSearchAttributes) else set(given or {})
    return [pair.key.name for pair in FIRST_STATUS if pair.key.name not in named]


def _names_one_of(refusal: str, attributes: list[str]) -> bool:
    """The server's refusal is about one of these attributes ("... for search attribute OrderStatus", "search
    attribute OrderStatus is not defined"), not one of the caller's whose name merely begins the same way."""
    return any(re.search(rf"search attribute {re.escape(name)}\b", refusal) for name in attributes)


class OrderStartMemo(Interceptor):
    """A client interceptor (PrintroomPlugin adds it): every OrderWorkflow started through the client carries the
    memo, unless the caller wrote one of its own under that key, and (started by start_workflow) its first status.
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
        """An order's start with the memo and its first status; where the namespace refuses the status attributes
        printroom added (not registered yet, or with another type), the start as the caller wrote it: the order
        publishes them itself once a worker has registered them (a worker refuses to start where they clash)."""
        if input.workflow != ORDER_WORKFLOW:
            return await super().start_workflow(input)
        self._add_memo(input)
        given, added = input.search_attributes, _added(input.search_attributes)
        input.search_attributes = with_first_status(given)
        try:
            return await super().start_workflow(input)
        except RPCError as error:
            if error.status != RPCStatusCode.INVALID_ARGUMENT or not _names_one_of(error.message, added):
                raise
            input.search_attributes = given
            handle = await super().start_workflow(input)
            log.warning("the namespace refused %s (%s): order %s started without them; it publishes them itself "
                        "once a printroom worker has registered them", " and ".join(added), error.message, input.id)  # fmt: skip
            return handle

    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> WorkflowUpdateHandle:  # type: ignore[type-arg]
        """The memo only: the SDK settles an update-with-start's start once, so a refused start cannot be tried
        again without the attributes; such an order publishes its first status in its first task."""
        if input.start_workflow_input.workflow == ORDER_WORKFLOW:
            self._add_memo(input.start_workflow_input)
        return await super().start_update_with_start_workflow(input)

    def _add_memo(self, start: StartWorkflowInput | UpdateWithStartStartWorkflowInput) -> None:
        if ORDER_START_MEMO not in (start.memo or {}):
            start.memo = {**(start.memo or {}), ORDER_START_MEMO: order_start(self._settings())}
