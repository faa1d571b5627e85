"""What a printroom client tells each order it starts (memo `printroom.start`): its start emails that are off."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.client import Interceptor, OutboundInterceptor, StartWorkflowInput, WorkflowHandle

from printroom.models import ORDER_START_MEMO, OrderStart
from printroom.settings import Settings
from printroom.statemachines.order import ORDER

ORDER_WORKFLOW = "OrderWorkflow"


def order_start(settings: Settings) -> OrderStart:
    """The start emails these settings never send: an order told so runs no activity in its first task."""
    return OrderStart(emails_off=[t for t in ORDER.emails_on_start if settings.emails.for_trigger(t).send == "never"])


class OrderStartMemo(Interceptor):
    """A client interceptor (PrintroomPlugin adds it): every OrderWorkflow started through the client carries the
    memo, unless the caller wrote one of its own under that key. `settings` is read when an order starts, not
    before: the plugin validates its settings on first use."""

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
        return await super().start_workflow(input)
