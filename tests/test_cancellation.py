"""Pure: how the workflows tell a cancellation from a failure, on errors decoded from the failures Temporal sends
(a cancelled child workflow, a cancelled activity), so that a cancel is never reported as a failed email or
approval."""

from __future__ import annotations

import pytest
from temporalio.api.failure.v1 import (
    ActivityFailureInfo,
    ApplicationFailureInfo,
    CanceledFailureInfo,
    ChildWorkflowExecutionFailureInfo,
    Failure,
)
from temporalio.converter import DataConverter
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

from printroom.workflows.sending import is_cancellation


def decoded(failure: Failure) -> BaseException:
    return DataConverter.default.failure_converter.from_failure(failure, DataConverter.default.payload_converter)


def child_failure(cause: Failure) -> Failure:
    info = ChildWorkflowExecutionFailureInfo(
        namespace="default", workflow_type={"name": "BudgetApprovalWorkflow"}, workflow_execution={"workflow_id": "budget-PO-1"}
    )
    return Failure(message="Child Workflow execution cancelled", child_workflow_execution_failure_info=info, cause=cause)


CANCELLED = Failure(message="cancelled from the Web UI", canceled_failure_info=CanceledFailureInfo())
FAILED = Failure(message="no approvers", application_failure_info=ApplicationFailureInfo(type="ValueError"))


@pytest.mark.parametrize(
    "cause, cause_type, cancellation",
    [(CANCELLED, CancelledError, True), (FAILED, ApplicationError, False)],
    ids=["cancelled-is-a-cancellation", "failed-is-not-a-cancellation"],
)
def test_a_child_workflow_is_a_cancellation_only_when_cancelled(cause: Failure, cause_type: type[BaseException], cancellation: bool) -> None:
    error = decoded(child_failure(cause))
    assert isinstance(error, ChildWorkflowError) and isinstance(error.cause, cause_type)
    assert is_cancellation(error) is cancellation


def test_a_cancelled_activity_and_a_bare_cancel_are_cancellations_and_a_failed_activity_is_not() -> None:
    info = ActivityFailureInfo(activity_type={"name": "SendStatusEmail"})
    cancelled = decoded(Failure(message="Activity task cancelled", activity_failure_info=info, cause=CANCELLED))
    failed = decoded(Failure(message="Activity task failed", activity_failure_info=info, cause=FAILED))
    assert isinstance(cancelled, ActivityError) and is_cancellation(cancelled)
    assert isinstance(failed, ActivityError) and not is_cancellation(failed)
    assert is_cancellation(CancelledError("bare"))  # a local activity's arrives unwrapped

