"""Which of Temporal's answers to an activity's own client calls are worth another attempt."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

# Temporal answers worth another attempt; any other (a bad argument, no permission, too large) will not change.
_TRANSIENT_RPC = frozenset({
    RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.ABORTED, RPCStatusCode.INTERNAL, RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED,
})  # fmt: skip


def retried_unless_refused(error: RPCError, what: str) -> Exception:
    """A busy or unreachable Temporal is retried; one that refused the call is told to the order, not retried."""
    if error.status in _TRANSIENT_RPC:
        return error
    return ApplicationError(f"{what}: Temporal refused it ({error.status.name}: {error.message})", non_retryable=True)
