"""The activity an order uses to fetch the drafts its approval rang about (`fetch_handed_drafts`), against a real
Temporal dev server: a stand-in approval workflow holds the drafts, and the activity's own checks refuse what the
approval never asked for and what the settings do not allow, saying which; the drafts that pass are handed over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from printroom.activities.approval_steps import ApprovalSteps
from printroom.models import (
    HANDED_DRAFTS_QUERY,
    ApprovalState,
    DraftContent,
    FetchHandedDrafts,
    HandedDrafts,
    HeldDrafts,
    Order,
    StatusEmailRequest,
    budget_workflow_id,
)
from printroom.settings import EmailPolicies, Settings
from tests.conftest import sample_order

ASKED = "head@example.org"


@workflow.defn(name="StandInApproval")
class StandInApproval:
    """Holds what a real approval would: the drafts it made and whom it asked (its `state`)."""

    def __init__(self) -> None:
        self._held: list[HeldDrafts] = []
        self._state: ApprovalState | None = None

    @workflow.run
    async def run(self, held: list[HeldDrafts], state: ApprovalState) -> None:
        self._held, self._state = held, state
        await workflow.wait_condition(lambda: False)

    @workflow.query(name=HANDED_DRAFTS_QUERY)
    def handed(self, message_ids: list[str]) -> list[HeldDrafts]:
        return [h for h in self._held if any(d.message_id in message_ids for d in h.drafts)]

    @workflow.query(name="state")
    def state(self) -> ApprovalState:
        assert self._state is not None
        return self._state


class Steps(ApprovalSteps):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def held(order: Order, message_id: str, to: str, *, reason: str = "") -> HeldDrafts:
    request = StatusEmailRequest(order=order, email_trigger="approval_requested", status="awaiting_approval", approvers=[ASKED])
    draft = DraftContent(email_trigger="approval_requested", audience="approvers", sender="Print room <printroom@example.com>",
                         to=[to], message_id=message_id, reason=reason)  # fmt: skip
    return HeldDrafts(request=request, drafts=[draft])


@pytest.fixture
async def approval(client: Client) -> AsyncIterator[tuple[Order, str]]:
    """An approval of an order (its id, its run) holding: <asked@x> to the approver it asked, <stranger@x> to
    someone it never asked, <failed@x> held because sending failed (not for editing)."""
    order = Order.model_validate(sample_order())
    task_queue = f"handed-{uuid.uuid4().hex[:8]}"
    drafts = [held(order, "<asked@x>", ASKED), held(order, "<stranger@x>", "mallory@example.net"),
              held(order, "<failed@x>", ASKED, reason="the mail server refused it for good")]  # fmt: skip
    state = ApprovalState(order_id=order.id, status="requested", approvers=[ASKED])
    async with Worker(client, task_queue=task_queue, workflows=[StandInApproval], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(StandInApproval.run, args=[drafts, state], id=budget_workflow_id(order.id), task_queue=task_queue)
        try:
            yield order, handle.result_run_id or ""
        finally:
            await handle.terminate("test over")


def editing(on: bool) -> Settings:
    return Settings(emails=EmailPolicies.model_validate({"approval_requested": {"edit_before_send": on}}))


async def fetch(client: Client, settings: Settings, order: Order, run: str, message_id: str) -> HandedDrafts:
    fetching = FetchHandedDrafts(order_id=order.id, approval_run_id=run, message_ids=[message_id])
    return await ActivityEnvironment(client=client).run(Steps(settings).fetch_handed_drafts, fetching)


async def test_a_held_draft_to_someone_the_approval_never_asked_is_refused(client, approval) -> None:
    order, run = approval
    answer = await fetch(client, editing(True), order, run, "<stranger@x>")
    assert answer.held is None
    assert answer.why_not == "addressed to mallory@example.net, whom the approval did not ask"


async def test_a_draft_held_for_editing_is_refused_when_the_settings_turn_editing_off(client, approval) -> None:
    order, run = approval
    answer = await fetch(client, editing(False), order, run, "<asked@x>")
    assert answer.held is None
    assert answer.why_not == "held for editing, but emails.approval_requested.edit_before_send is off in the settings"
    # Held because sending failed, it is an operator's to settle whatever the editing setting says.
    failed = await fetch(client, editing(False), order, run, "<failed@x>")
    assert failed.why_not == "" and failed.held is not None and failed.held.drafts[0].message_id == "<failed@x>"


async def test_the_approvals_own_draft_to_an_approver_it_asked_is_handed_over(client, approval) -> None:
    order, run = approval
    answer = await asyncio.wait_for(fetch(client, editing(True), order, run, "<asked@x>"), 20)
    assert answer.why_not == ""
    assert answer.held is not None and answer.held.drafts[0].to == [ASKED]
    missing = await fetch(client, editing(True), order, run, "<never@x>")
    assert (missing.held, missing.why_not) == (None, "the approval holds no drafts <never@x> for its order")
