"""The budget approval's and the cost centres' activities: the plan read from the settings, an order counted in
(and taken back from) its cost centre, and the drafts an approval holds for its order fetched from the approval."""

from __future__ import annotations

from datetime import datetime, timezone

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from printroom.activities.budget import cost_centre_terms, plan_approval, spending_period, unknown_cost_centre
from printroom.activities.temporal_errors import retried_unless_refused
from printroom.models import (
    CONFIRM_ORDER_CANCELLED,
    FETCH_HANDED_DRAFTS,
    HANDED_DRAFTS_QUERY,
    COST_CENTRE_WORKFLOW,
    COUNT_ORDER,
    PLAN_APPROVAL,
    RECORD_SPENDING,
    TAKE_BACK_ORDER,
    TAKE_BACK_SPENDING,
    ApprovalPlan,
    ApprovalState,
    Confirmed,
    CostCentreBook,
    FetchHandedDrafts,
    HandedDrafts,
    HeldDrafts,
    Order,
    OrderRun,
    OrderState,
    SpendingAnswer,
    SpendingRecord,
    budget_workflow_id,
    cost_centre_workflow_id,
)
from printroom.settings import Settings
from printroom.approvers import address_key


class ApprovalSteps:
    """Mixed into the worker's activity class: reads `self.settings`, talks to Temporal through the activity's
    client."""

    settings: Settings

    @activity.defn(name=PLAN_APPROVAL)
    async def plan_approval(self, order: Order) -> ApprovalPlan:
        """Who approves this order and how long they are given, as the settings say today."""
        return plan_approval(self.settings, order)

    @activity.defn(name=RECORD_SPENDING)
    async def record_spending(self, record: SpendingRecord) -> SpendingAnswer:
        """Adds an approved or accepted order's price to its cost centre's period (CostCentreWorkflow, started
        when it is the first), with the cost centre's settings of today, and says what the cost centre answered:
        `ok` only once it has counted this run of the order."""
        order, name = record.order, record.order.cost_centre
        if name is None:
            return SpendingAnswer(ok=False, note="the order names no cost centre")
        terms = cost_centre_terms(self.settings, name)
        if terms is None:
            return SpendingAnswer(ok=False, note=unknown_cost_centre(self.settings, name) + "; its price is not counted")
        if order.price is None:
            return SpendingAnswer(ok=False, note=f"cost centre {name}: the order has no price; nothing counted")
        if order.price.currency != terms.currency:
            return SpendingAnswer(
                ok=False,
                note=f"cost centre {name} counts in {terms.currency} and the order's price is in {order.price.currency}: "
                "not counted (printroom never converts currencies)",
            )
        record = record.model_copy(update={"settings": terms, "period": spending_period(datetime.now(timezone.utc), terms)})
        client, what = activity.client(), f"counting order {order.id} in {cost_centre_workflow_id(name)}"
        try:
            try:
                await client.start_workflow(
                    COST_CENTRE_WORKFLOW, CostCentreBook(terms=terms), id=cost_centre_workflow_id(name),
                    task_queue=activity.info().task_queue,
                )  # fmt: skip
            except WorkflowAlreadyStartedError:
                pass  # counted by the run that is there
            return await _answered(client.get_workflow_handle(cost_centre_workflow_id(name)), COUNT_ORDER, record, what)
        except RPCError as error:
            raise _retried_while_moving(error, what) from error

    @activity.defn(name=TAKE_BACK_SPENDING)
    async def take_back_spending(self, record: SpendingRecord) -> SpendingAnswer:
        """An order counted and then cancelled or rejected: what this run of it added comes off its cost centre's
        period, once, and only while that period is the current one; the answer says which."""
        order, name = record.order, record.order.cost_centre or ""
        if (terms := cost_centre_terms(self.settings, name)) is not None:  # today's period, as when counting
            record = record.model_copy(update={"period": spending_period(datetime.now(timezone.utc), terms)})
        handle = activity.client().get_workflow_handle(cost_centre_workflow_id(name))
        what = f"taking order {order.id} back in {cost_centre_workflow_id(name)}"
        try:
            return await _answered(handle, TAKE_BACK_ORDER, record, what)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND and not await _running(handle):
                return SpendingAnswer(ok=False, note=f"cost centre {name}: no spending recorded any more; nothing taken back")
            raise _retried_while_moving(error, what) from error

    @activity.defn(name=CONFIRM_ORDER_CANCELLED)
    async def confirm_order_cancelled(self, run: OrderRun) -> Confirmed:
        """An approval told its order was cancelled asks the order first: that signal, like any, could come from
        anyone, and would have the approvers told a lie."""
        return await _order_cancelled(activity.client(), run)

    @activity.defn(name=FETCH_HANDED_DRAFTS)
    async def fetch_handed_drafts(self, fetch: FetchHandedDrafts) -> HandedDrafts:
        """The drafts an approval rang its order about, as that approval run holds them (its query), checked
        against whom it says it asked and the settings' draft rules. The signal only rings: anyone able to signal
        could otherwise have an operator send a forged email in the print room's name."""
        handle = activity.client().get_workflow_handle(budget_workflow_id(fetch.order_id), run_id=fetch.approval_run_id)
        try:
            handed = await handle.query(HANDED_DRAFTS_QUERY, fetch.message_ids, result_type=list[HeldDrafts])
            state = await handle.query("state", result_type=ApprovalState)
        except RPCError as error:
            raise retried_unless_refused(error, f"reading {budget_workflow_id(fetch.order_id)}") from error
        wanted = set(fetch.message_ids)
        found = [h for h in handed if {d.message_id for d in h.drafts} <= wanted]
        if not found:
            return HandedDrafts(why_not=f"the approval holds no drafts {', '.join(sorted(wanted))} for its order")
        held = found[-1]  # the latest, were the same email ever handed over twice
        # The approval's own record of whom it asked (the request it made the drafts from is its own too).
        asked = {address_key(a) for a in [*state.approvers, *state.escalated_to, *(held.request.approvers or [])]}
        for draft in held.drafts:
            if strangers := [a for a in draft.to if address_key(a) not in asked]:
                return HandedDrafts(why_not=f"addressed to {', '.join(strangers)}, whom the approval did not ask")
            if not draft.reason and not self.settings.emails.for_trigger(draft.email_trigger).edit_before_send:
                return HandedDrafts(
                    why_not=f"held for editing, but emails.{draft.email_trigger}.edit_before_send is off in the settings"
                )
        return HandedDrafts(held=held)


async def _order_cancelled(client: Client, run: OrderRun) -> Confirmed:
    """An order says it was cancelled when its status is `cancelled` or its workflow was asked to cancel."""
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    try:
        state = await handle.query("state", result_type=OrderState)
        if state.status == "cancelled":
            return Confirmed(yes=True)
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
                return Confirmed(yes=True)
    except RPCError as error:
        raise retried_unless_refused(error, f"asking {run.workflow_id} whether it was cancelled") from error
    return Confirmed(yes=False, why_not=f"{run.workflow_id} is {state.status} and nobody asked to cancel it")


async def _answered(handle: WorkflowHandle, update: str, record: SpendingRecord, what: str) -> SpendingAnswer:
    try:
        return await handle.execute_update(update, record, result_type=SpendingAnswer)
    except WorkflowUpdateFailedError as error:  # the cost centre refused the record itself: it will not change
        cause = error.cause.message if error.cause else str(error)
        raise ApplicationError(f"{what}: the cost centre refused it ({cause})", non_retryable=True) from None


def _retried_while_moving(error: RPCError, what: str) -> Exception:
    """NOT_FOUND while the cost centre continues as new is passing: asked again, of its next run."""
    return error if error.status == RPCStatusCode.NOT_FOUND else retried_unless_refused(error, what)


async def _running(handle: WorkflowHandle) -> bool:
    """Whether a workflow of that id runs: NOT_FOUND from an update means it is between two runs, or never was."""
    try:
        return (await handle.describe()).close_time is None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
