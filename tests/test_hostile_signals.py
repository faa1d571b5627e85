"""Hostile input at the workflow (issue #13 item 3): any JSON, sent on any of an order's signals or as its update,
against a live order on the Temporal dev server. Each signal is applied or refused in `state` with its reason, the
update is refused with its reason in the answer, and no workflow task fails (a failure there would retry for ever)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError

from printroom.models import HOLD_DRAFTS, OrderState
from tests.conftest import eventually, order_state, sample_order
from tests.test_hostile_input import JSON

SIGNALS = ("change_status", "send_draft", "discard_draft", "approve", "reject", "ask_again", "email_bounced", HOLD_DRAFTS)
REQUESTS = st.lists(st.tuples(st.sampled_from((*SIGNALS, "edit_and_send")), JSON), min_size=10, max_size=10)


async def _answered(handle: WorkflowHandle[Any, Any], signals: int) -> OrderState | None:
    state = await order_state(handle)
    return state if len(state.refused) + len(state.changes) >= signals else None


@hypothesis_settings(max_examples=5, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(requests=REQUESTS)
async def test_any_payload_on_any_signal_or_the_update_is_applied_or_refused_and_no_workflow_task_fails(
    client: Client, dev_worker, task_queue: str, requests: list[tuple[str, Any]]
):
    order = sample_order()
    handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
    signals = 0
    for name, payload in requests:
        if name == "edit_and_send":
            # No draft is held: whatever the payload, the validator refuses it and says why, before any history.
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(name, payload)
            reason = str(refused.value.cause)
            assert reason and "Traceback" not in reason, reason
            assert any(word in reason for word in ("draft", "payload", "field", "Input should be", "valid")), reason
        else:
            await handle.signal(name, payload)
            signals += 1
    state = await eventually(lambda: _answered(handle, signals), what=f"all {signals} signals applied or refused")
    for refusal in state.refused:
        assert refusal.kind in SIGNALS and refusal.reason, refusal
    failed = [e async for e in handle.fetch_history_events() if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed == [], f"a workflow task failed: {failed[0].workflow_task_failed_event_attributes.failure.message}"
    description = await handle.describe()
    assert description.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)
    if description.status == WorkflowExecutionStatus.RUNNING:
        await handle.signal("change_status", {"trigger": "cancel"})
        assert (await handle.result())["status"] == "cancelled"
