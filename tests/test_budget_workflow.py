"""BudgetApprovalWorkflow and CostCentreWorkflow on a real Temporal dev server, emails checked at a real SMTP
server: who is asked, who is heard, what the customer and the approvers receive, and what is refused."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError
from temporalio.worker import Replayer

from printroom.cli.capture import SmtpCapture
from printroom.activities.email import EmailActivities
from printroom.models import (
    HOLD_DRAFTS,
    PLAN_APPROVAL,
    ApprovalPlan,
    SEND_STATUS_EMAIL,
    ApprovalOutcome,
    ApprovalState,
    DraftContent,
    DraftRules,
    DraftSent,
    HeldDrafts,
    Order,
    CostCentreBook,
    CostCentreTerms,
    OrderState,
    Spending,
    SpendingRecord,
    StatusEmailRequest,
)
from printroom.settings import CostCentreSettings, EmailPolicies, Settings
from printroom.worker.main import build_worker
from printroom.worker.plugin import PrintroomPlugin
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, messages_to, order_state, sample_order

CHEFIN = "chefin@bücher.example"
CHEFIN_ON_THE_WIRE = "chefin@xn--bcher-kva.example"  # the envelope carries the domain in its ASCII form


async def start(client: Client, task_queue: str, order: dict[str, Any]):
    return await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)


async def approval_state(client: Client, order: dict[str, Any]) -> ApprovalState:
    return await client.get_workflow_handle(f"budget-{order['id']}").query("state", result_type=ApprovalState)


async def status_is(handle, status: str) -> bool:
    return (await order_state(handle)).status == status


def over_budget(**changes: Any) -> dict[str, Any]:
    return sample_order(budget={"limit": "200.00", "approvers": [CHEFIN, "head@example.org"]}, **changes)


def with_cost_centres(settings: Settings, **more: Any) -> Settings:
    centres = {
        "marketing": CostCentreSettings(budget=Decimal("500.00"), warn_at_percent=Decimal(80), approvers=["cmo@example.org"]),
        "lab": CostCentreSettings(budget=Decimal("1000.00"), currency="CHF", approvers=["lab@example.org"]),
    }
    return settings.model_copy(update={"cost_centres": centres, **more})


async def test_only_the_approvers_are_heard_and_the_first_decision_wins(client, dev_worker, smtp: SmtpCapture):
    order = over_budget()
    handle = await start(client, dev_worker.task_queue, order)
    budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
    await eventually(lambda: messages_to(smtp, CHEFIN_ON_THE_WIRE), what="the approval request to the first approver")
    assert (await order_state(handle)).status == "awaiting_approval"

    # Someone not asked: refused and recorded, by signal (relayed through the order) and by update (answered).
    await handle.signal("approve", {"by": "intern@example.org", "comment": "looks fine"})
    # Relayed by the order: refused before the updates come (an update whose workflow task meets a late signal
    # carrying the workflow's completion is answered "unexpected workflow task failure" by the server).
    await eventually(lambda: _refused_approval(client, order), what="the relayed signal refused")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await budget.execute_update("decide", {"decision": "approve", "by": "intern@example.org"})
    assert "intern@example.org is not an approver of order" in str(refused.value.cause)
    # The approver, written with the ASCII form of her domain and other capitals, is heard.
    outcome = await budget.execute_update(
        "decide", {"decision": "approve", "by": "Chefin@XN--BCHER-KVA.example", "comment": "Einmalig"}, result_type=ApprovalOutcome
    )
    assert (outcome.status, outcome.by, outcome.comment) == ("approved", "Chefin@XN--BCHER-KVA.example", "Einmalig")
    assert (await budget.result()).status == "approved"
    await eventually(lambda: status_is(handle, "submitted"), what="the order moved by the approval")
    # A later decision is refused with who decided and when: by the order, or by the server for the ended approval,
    # whose state still says who decided.
    await handle.signal("reject", {"by": "head@example.org", "comment": "too late"})
    state = await eventually(lambda: _refused(handle), what="the late decision refused")
    assert re.fullmatch(r"the budget approval has ended: approved by Chefin@XN--BCHER-KVA.example on \d\d \w+ \d{4} at \d\d:\d\d UTC", state.refused[-1].reason)
    with pytest.raises(RPCError, match="already completed"):
        await budget.execute_update("decide", {"decision": "reject", "by": "head@example.org"})

    approval = await budget.query("state", result_type=ApprovalState)
    assert (approval.status, approval.decision.by) == ("approved", "Chefin@XN--BCHER-KVA.example")
    assert sorted(r.kind for r in approval.refused) == ["approve", "decide"]  # the intern, by signal and by update
    assert all("intern@example.org is not an approver" in r.reason for r in approval.refused)
    await handle.signal("change_status", {"trigger": "cancel"})
    final = await handle.result()
    assert [c.trigger for c in final.changes] == ["request_approval", "approve_budget", "cancel"]
    assert final.changes[1].by == "Chefin@XN--BCHER-KVA.example" and final.changes[1].comment == "Einmalig"
    # Both approvers were asked, in the order's language; the customer learnt the outcome, with the comment.
    for approver in (CHEFIN_ON_THE_WIRE, "head@example.org"):
        (request,) = [m.parsed() for m in messages_to(smtp, approver)]
        assert request["Subject"] == f"Approbation requise : la commande {order['id']} dépasse son budget"
    (approved,) = [m.parsed() for m in messages_to(smtp, "marie@example.org") if "budget" in m.parsed()["Subject"]]
    assert "Einmalig" in approved.get_body(("plain",)).get_content()


async def test_a_rejection_rejects_the_order_and_tells_the_customer_why(client, dev_worker, smtp):
    order = over_budget(language="en")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    await handle.signal("reject", {"by": "head@example.org", "comment": "Too expensive: print 250 instead"})
    state = await handle.result()
    assert state.status == "rejected" and state.changes[-1].trigger == "reject_budget"
    (rejected,) = [m.parsed() for m in messages_to(smtp, "marie@example.org") if "budget" in m.parsed()["Subject"].lower()]
    assert "Too expensive: print 250 instead" in rejected.get_body(("plain",)).get_content()


async def test_an_approval_signalled_on_the_budget_workflow_moves_the_order_and_tells_the_customer(client, dev_worker, smtp):
    order = over_budget(language="de")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    await client.get_workflow_handle(f"budget-{order['id']}").signal("approve", {"by": "head@example.org", "comment": "Einmalig"})
    await eventually(lambda: status_is(handle, "submitted"), what="the order back to submitted")
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()
    customer = [m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org")]
    assert any("freigegeben" in s for s in customer), customer
    approval = await approval_state(client, order)
    assert (approval.status, approval.decision.by, approval.reminders_sent) == ("approved", "head@example.org", 0)


async def test_cancelling_a_waiting_order_cancels_its_approval_and_tells_the_approvers(client, dev_worker, smtp):
    order = over_budget(language="en")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
    state = await handle.result()
    assert state.status == "cancelled" and not state.emails_failed
    budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
    assert (await budget.result()).status == "cancelled"
    told = [m.parsed()["Subject"] for m in messages_to(smtp, "head@example.org")]
    assert told == [f"Approval needed: order {order['id']} is over its budget", f"No longer needed: approval of order {order['id']}"]
    # A decision for an approval that has ended is refused by Temporal: the approval workflow has completed.
    with pytest.raises(RPCError, match="already completed"):
        await budget.execute_update("decide", {"decision": "approve", "by": "head@example.org"})


async def test_an_order_workflow_cancelled_from_temporal_still_tells_the_approvers(client, dev_worker, smtp):
    order = over_budget(language="en")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, CHEFIN_ON_THE_WIRE), what="the approval request")
    await handle.cancel()  # `temporal workflow cancel`: the approval is asked to cancel as the order closes
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)  # ended as Canceled, not failed
    budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
    assert (await budget.result()).status == "cancelled"
    await eventually(lambda: len(messages_to(smtp, CHEFIN_ON_THE_WIRE)) == 2, what="approval_cancelled")
    assert messages_to(smtp, CHEFIN_ON_THE_WIRE)[1].parsed()["Subject"] == f"No longer needed: approval of order {order['id']}"


async def test_a_cost_centre_names_the_approvers_and_counts_what_it_approved(client, dev_env, settings, smtp, task_queue):
    centred = with_cost_centres(settings)
    async with build_worker(client, centred, task_queue=task_queue):
        # budget.required: an approval whatever the price; nobody named on the order, so the cost centre's approvers.
        first = sample_order(language="en", cost_centre="marketing", budget={"required": True}, price={"amount": "300.00", "currency": "EUR"})
        handle = await start(client, task_queue, first)
        await eventually(lambda: messages_to(smtp, "cmo@example.org"), what="the approval request to the cost centre's approver")
        assert (await approval_state(client, first)).approvers_from == "cost centre marketing"
        subject = messages_to(smtp, "cmo@example.org")[0].parsed()["Subject"]
        assert subject == f"Approval needed: order {first['id']}"  # no limit: not "over its budget"
        await handle.signal("approve", {"by": "cmo@example.org"})
        await eventually(lambda: status_is(handle, "submitted"), what="approved")
        centre = client.get_workflow_handle("cost-centre-marketing")
        spending = await eventually(lambda: _spent(centre, Decimal("300.00")), what="the order counted")
        assert (spending.orders, spending.warned_at) == (1, None)
        # An order that needs no approval counts when accepted.
        second = sample_order(language="en", cost_centre="marketing", price={"amount": "150.00", "currency": "EUR"})
        other = await start(client, task_queue, second)
        await other.signal("change_status", {"trigger": "accept"})
        spending = await eventually(lambda: _spent(centre, Decimal("450.00")), what="the second order counted")
        # 450 of 500 is over 80 %: the approvers are warned, once.
        await eventually(lambda: messages_to(smtp, "cmo@example.org")[1:], what="the budget warning")
        warning = messages_to(smtp, "cmo@example.org")[1].parsed()
        assert warning["Subject"] == "Cost centre marketing has spent 90 % of its budget"
        assert "€450.00 of its budget of €500.00" in warning.get_body(("plain",)).get_content()
        third = sample_order(language="en", cost_centre="marketing", price={"amount": "10.00", "currency": "EUR"})
        last = await start(client, task_queue, third)
        await last.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _spent(centre, Decimal("460.00")), what="the third order counted")
        # The approved order is rejected by the print room, the others cancelled (one of them while its count is
        # still on its way): each price comes off, once.
        quick = await start(client, task_queue, sample_order(cost_centre="marketing", price={"amount": "25.00", "currency": "EUR"}))
        await quick.signal("change_status", {"trigger": "accept"})
        await handle.signal("change_status", {"trigger": "reject"})
        for h in (quick, other, last):
            await h.signal("change_status", {"trigger": "cancel"})
        for h in (handle, quick, other, last):
            await h.result()
        spending = await eventually(lambda: _spent(centre, Decimal("0.00")), what="the four orders taken back")
        assert (spending.orders, spending.taken_back) == (0, 4)
        assert len(messages_to(smtp, "cmo@example.org")) == 2  # the request and one warning: none for the third
        notes = (await order_state(other)).email_notes
        period = spending.period
        # What the cost centre answered, not what it was asked: counted, then taken back, in its period.
        assert f"cost centre marketing: 150.00 EUR counted in {period}" in notes
        assert f"cost centre marketing: 150.00 EUR taken back from {period}" in notes
        details = (await centre.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
        assert "- 4 order(s) cancelled or rejected after counting: taken back" in details
        await centre.terminate("test over")


async def test_a_cost_centre_that_refuses_an_order_is_the_orders_note_not_counted_in(client, settings, task_queue):
    """record_spending reports what the cost centre answered: one whose period has moved on past the order's
    (a period already closed) and one that counts this period in another currency than the settings say today
    (the settings changed) refuse the order; the order's notes say so, and never "counted in"."""
    from datetime import datetime, timezone

    from printroom.activities.budget import cost_centre_terms, spending_period

    closed, changed = f"closed-{task_queue}", f"changed-{task_queue}"
    euros = CostCentreSettings(budget=Decimal("1000.00"), currency="EUR", approvers=["cmo@example.org"])
    centred = settings.model_copy(update={"cost_centres": {closed: euros, changed: euros}})
    async with build_worker(client, centred, task_queue=task_queue):
        # Two cost centres as they stand: one already counting in a later period, one counting this period in CHF.
        for name, currency, period in ((closed, "EUR", "2099-12"), (changed, "CHF", None)):
            terms = cost_centre_terms(centred, name)
            assert terms is not None
            terms = terms.model_copy(update={"currency": currency})
            centre = await client.start_workflow("CostCentreWorkflow", CostCentreBook(terms=terms), id=f"cost-centre-{name}", task_queue=task_queue)
            earlier = sample_order(price={"amount": "10.00", "currency": currency})
            await centre.signal("add_spending", SpendingRecord(order=earlier, period=period or spending_period(datetime.now(timezone.utc), terms)))
            await eventually(lambda: _spent(centre, Decimal("10.00")), what=f"{name}'s earlier order counted")
        notes: dict[str, list[str]] = {}
        for name in (closed, changed):
            order = sample_order(cost_centre=name, price={"amount": "240.00", "currency": "EUR"})
            handle = await start(client, task_queue, order)
            await handle.signal("change_status", {"trigger": "accept"})
            notes[name] = await eventually(lambda: _cost_centre_noted(handle, name), what=f"{name}'s answer on the order")
            await handle.signal("change_status", {"trigger": "cancel"})
            await handle.result()
            spending = await client.get_workflow_handle(f"cost-centre-{name}").query("spending", result_type=Spending)
            assert spending.spent == Decimal("10.00") and spending.orders == 1  # nothing of the order counted
            await client.get_workflow_handle(f"cost-centre-{name}").terminate("test over")
        assert not any("counted in" in n for n in notes[closed] + notes[changed])
        assert any(n.startswith(f"cost centre {closed}: order ") and n.endswith(", a period already closed; not counted")
                   for n in notes[closed]), notes[closed]  # fmt: skip
        assert any(n.startswith(f"cost centre {changed}: order ") and n.endswith(" is in EUR; this cost centre counts in CHF (never converted)")
                   for n in notes[changed]), notes[changed]  # fmt: skip


async def _cost_centre_noted(handle, name: str) -> list[str] | None:
    notes = (await order_state(handle)).email_notes
    return notes if any(n.startswith(f"cost centre {name}:") for n in notes) else None


async def test_a_cost_centre_takes_an_order_back_once_and_only_from_the_current_period(client, settings, task_queue):
    """Take-backs as the order sends them (after its count), and the ones a cost centre must refuse: twice, never
    counted, carrying another price than was counted, malformed, counted in a period that has closed since."""
    terms = CostCentreTerms(name="lab", budget=Decimal("1000"), currency="EUR", warn_at_percent=Decimal(90), period="month")
    a, b, never = (sample_order(cost_centre="lab", price={"amount": amount, "currency": "EUR"}) for amount in ("100.00", "40.00", "7.00"))
    async with build_worker(client, settings, task_queue=task_queue):
        centre = await client.start_workflow(
            "CostCentreWorkflow", CostCentreBook(terms=terms), id=f"cost-centre-{task_queue}", task_queue=task_queue
        )
        for order in (a, b):
            await centre.signal("add_spending", SpendingRecord(order=order, period="2026-11"))
        await eventually(lambda: _spent(centre, Decimal("140.00")), what="two orders counted")
        # What a's count added comes off, whatever price the take-back carries; sent twice, it comes off once.
        inflated = {**a, "price": {"amount": "900000.00", "currency": "EUR"}}
        for order in (inflated, a):
            await centre.signal("take_back_spending", SpendingRecord(order=Order.model_validate(order), period="2026-11"))
        await centre.signal("take_back_spending", SpendingRecord(order=never, period="2026-11"))
        await centre.signal("take_back_spending", {"order": b, "period": "2026-99"})
        spending = await eventually(lambda: _refused_count(centre, 2), what="the uncounted and the malformed refused")
        assert (spending.spent, spending.orders, spending.taken_back) == (Decimal("40.00"), 1, 1)
        malformed, uncounted = sorted(spending.refused)  # refused as they arrive, the first before it is queued
        assert uncounted == f"order {never['id']} was not counted here; nothing taken back"
        assert malformed.startswith("malformed payload: period: String should match pattern")
        # December: b was counted in November, whose figures are not reopened; December starts from nothing.
        await centre.signal("take_back_spending", SpendingRecord(order=b, period="2026-12"))
        spending = await eventually(lambda: _refused_count(centre, 3), what="the closed period's order refused")
        assert (spending.period, spending.spent, spending.orders) == ("2026-12", Decimal(0), 0)
        assert spending.refused[-1] == f"order {b['id']} was not counted in a period that has closed; not taken back"
        await centre.terminate("test over")


async def _refused_count(centre, count: int) -> Spending | None:
    spending = await centre.query("spending", result_type=Spending)
    return spending if len(spending.refused) >= count else None


async def test_a_price_in_another_currency_than_the_cost_centre_is_not_counted_and_says_why(client, settings, smtp, task_queue):
    async with build_worker(client, with_cost_centres(settings), task_queue=task_queue):
        order = sample_order(cost_centre="lab", price={"amount": "99.00", "currency": "EUR"})
        handle = await start(client, task_queue, order)
        await handle.signal("change_status", {"trigger": "accept"})
        await handle.signal("change_status", {"trigger": "cancel"})
        state = await handle.result()
    assert any("cost centre lab counts in CHF and the order's price is in EUR" in n for n in state.email_notes), state.email_notes


async def test_an_unknown_cost_centre_is_said_to_the_operators_and_in_the_approval(client, settings, smtp, task_queue):
    async with build_worker(client, with_cost_centres(settings), task_queue=task_queue):
        order = sample_order(language="en", cost_centre="marketting", budget={"limit": "100.00"})
        handle = await start(client, task_queue, order)
        approval = await eventually(lambda: _with_problem(client, order), what="the approval's problem")
        assert approval.problem.startswith("cost centre 'marketting' is not in the settings (known: lab, marketing)")
        await eventually(lambda: messages_to(smtp, "ops@example.com")[1:], what="the operators told")
        overdue = messages_to(smtp, "ops@example.com")[-1].parsed()
        assert overdue["Subject"] == f"No answer: order {order['id']} is still waiting for budget approval"
        assert "nobody can be asked" in overdue.get_body(("plain",)).get_content()
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_with_nobody_to_ask_the_operators_fix_the_settings_and_ask_again(client, settings, smtp, task_queue):
    """A cost centre missing from the settings: nobody is asked and the operators are told. Asking again before
    the fix is refused with the reason; after it, the cost centre's approver is asked, and decides."""
    order = sample_order(language="en", cost_centre="design", budget={"limit": "100.00"})
    async with build_worker(client, with_cost_centres(settings), task_queue=task_queue):
        handle = await start(client, task_queue, order)
        await eventually(lambda: _with_problem(client, order), what="the approval's problem")
        await eventually(lambda: messages_to(smtp, "ops@example.com")[1:], what="the operators told nobody can be asked")
        await handle.signal("ask_again", {"by": "Léa"})  # relayed by the order, as the approvers' answers are
        state = await eventually(lambda: _refused_approval(client, order), what="asking again refused: nothing fixed")
        assert state.refused[-1].kind == "ask_again"
        assert state.refused[-1].reason.startswith("still nobody to ask: cost centre 'design' is not in the settings")
    fixed = with_cost_centres(settings)
    fixed.cost_centres["design"] = CostCentreSettings(budget=Decimal("800.00"), approvers=["directrice@bücher.example"])
    async with build_worker(client, fixed, task_queue=task_queue):
        await handle.signal("ask_again", {"by": "Léa", "comment": "design added to the settings"})
        await eventually(lambda: messages_to(smtp, "directrice@xn--bcher-kva.example"), what="the new approver asked")
        state = await approval_state(client, order)
        assert (state.status, state.approvers, state.problem) == ("requested", ["directrice@bücher.example"], "")
        assert state.approvers_from == "cost centre design" and state.answer_by is not None
        request = messages_to(smtp, "directrice@xn--bcher-kva.example")[0].parsed()
        assert request["Subject"] == f"Approval needed: order {order['id']} is over its budget"
        await handle.signal("approve", {"by": "directrice@bücher.example"})
        await eventually(lambda: status_is(handle, "submitted"), what="approved by the new approver")
        await handle.signal("ask_again", {"by": "Léa"})
        refused = await eventually(lambda: _refused(handle), what="asking again after the decision refused")
        assert refused.refused[-1].reason.startswith("the budget approval has ended: approved by directrice@bücher.example")
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_an_order_cancelled_while_its_approval_reads_the_settings_again_ends_the_approval_as_cancelled(
    client, settings, task_queue
):
    """The cancel comes while ask_again's plan is being read: the approval ends with its cancel move and an
    outcome, as when the cancel comes while it waits, not as a workflow cut short."""

    class SecondPlanWaits(EmailActivities):
        plans, reading, released = 0, asyncio.Event(), asyncio.Event()

        @activity.defn(name=PLAN_APPROVAL)
        async def plan_approval(self, order: Order) -> ApprovalPlan:
            SecondPlanWaits.plans += 1
            if SecondPlanWaits.plans > 1:
                SecondPlanWaits.reading.set()
                await asyncio.wait_for(SecondPlanWaits.released.wait(), 30)
            return await EmailActivities.plan_approval(self, order)

    centred = with_cost_centres(settings)
    async with build_worker(client, centred, task_queue=task_queue, emails=SecondPlanWaits.from_settings(centred)):
        order = sample_order(language="en", cost_centre="design", budget={"limit": "100.00"})
        handle = await start(client, task_queue, order)
        await eventually(lambda: _with_problem(client, order), what="nobody to ask")
        await handle.signal("ask_again", {"by": "Léa"})
        await asyncio.wait_for(SecondPlanWaits.reading.wait(), 20)
        await handle.signal("change_status", {"trigger": "cancel"})
        budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
        try:
            outcome = await asyncio.wait_for(budget.result(), 20)
        finally:
            SecondPlanWaits.released.set()
        assert (outcome.status, outcome.comment) == ("cancelled", "the order was cancelled")
        assert (await handle.result()).status == "cancelled"


async def _refused_approval(client, order) -> ApprovalState | None:
    state = await approval_state(client, order)
    return state if state.refused else None


async def test_an_approval_request_set_to_be_edited_waits_on_the_order_for_an_operator(client, settings, smtp, task_queue):
    drafting = settings.model_copy(update={"emails": EmailPolicies.model_validate({"approval_requested": {"edit_before_send": True}})})
    async with build_worker(client, drafting, task_queue=task_queue):
        order = over_budget(language="en")
        handle = await start(client, task_queue, order)
        state = await eventually(lambda: _drafts(handle), what="the request held on the order")
        assert state.drafts_pending[0].to == [CHEFIN, "head@example.org"]
        assert messages_to(smtp, CHEFIN_ON_THE_WIRE) == []
        sent = await handle.execute_update(
            "edit_and_send", {"draft_id": "d1", "note": "Urgent: event on Friday", "by": "Léa"}, result_type=DraftSent
        )
        assert sent.to == [CHEFIN, "head@example.org"]
        (request,) = [m.parsed() for m in messages_to(smtp, CHEFIN_ON_THE_WIRE)]
        assert "Urgent: event on Friday" in request.get_body(("plain",)).get_content()
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_a_held_approval_request_is_no_longer_needed_once_the_approval_has_ended(client, settings, smtp, task_queue):
    """Reproduced in issue 20: the approval was decided while its request waited on the order for an operator; the
    draft kept the rejected order open, reminded operators, and could still be sent ("Approval needed")."""
    drafting = settings.model_copy(update={"emails": EmailPolicies.model_validate({"approval_requested": {"edit_before_send": True}})})
    async with build_worker(client, drafting, task_queue=task_queue):
        order = over_budget(language="en")
        handle = await start(client, task_queue, order)
        await eventually(lambda: _drafts(handle), what="the request held on the order")
        budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
        await budget.execute_update("decide", {"decision": "reject", "by": "head@example.org", "comment": "too dear"})
        state = await asyncio.wait_for(handle.result(), 20)  # closes: nothing is waiting for an operator any more
        assert state.status == "rejected" and state.drafts_pending == []
        assert any(n.startswith("d1 (approval_requested to ") and n.endswith("no longer needed, the budget approval ended rejected")
                   for n in state.email_notes), state.email_notes  # fmt: skip
        assert not [m for m in smtp.messages if "Approval needed" in m.parsed()["Subject"]]


async def test_asking_again_settles_the_request_still_held_from_the_round_before(client, settings, smtp, task_queue):
    drafting = settings.model_copy(update={"emails": EmailPolicies.model_validate({"approval_requested": {"edit_before_send": True}})})
    async with build_worker(client, drafting, task_queue=task_queue):
        order = over_budget(language="en")
        handle = await start(client, task_queue, order)
        await eventually(lambda: _drafts(handle), what="round 1's request held")
        await handle.signal("ask_again", {"by": "Léa", "comment": "new approvers in the settings"})
        state = await eventually(lambda: _draft_ids(handle, ["d2"]), what="round 2's request held, round 1's settled")
        assert any(n.startswith("d1 (approval_requested") and n.endswith("no longer needed, the approvers were asked again")
                   for n in state.email_notes)  # fmt: skip
        with pytest.raises(WorkflowUpdateFailedError):  # d1 is settled: refused, never sent
            await handle.execute_update("edit_and_send", {"draft_id": "d1", "by": "Léa"})
        await handle.signal("change_status", {"trigger": "cancel"})
        assert (await asyncio.wait_for(handle.result(), 20)).drafts_pending == []


async def _draft_ids(handle, ids: list[str]) -> OrderState | None:
    state = await order_state(handle)
    return state if [d.id for d in state.drafts_pending] == ids else None


@pytest.mark.parametrize(
    ("budget", "price", "problem"),
    [
        ({"limit": "-5", "approvers": ["head@example.org"]}, None, "budget.limit: Input should be greater than or equal to 0"),
        ({"limit": "two hundred", "approvers": ["head@example.org"]}, None, "budget.limit: Input should be a valid decimal"),
        ({"limit": "200", "currency": "USD"}, {"amount": "240", "currency": "EUR"}, "printroom never converts currencies"),
        ({"limit": "200", "approvers": ["head@"]}, None, "budget.approvers.0: value is not a valid email address"),
        ({"approvers": ["head@example.org"]}, None, "budget needs a limit, or required: true"),
    ],
)
async def test_a_bad_budget_fails_the_order_at_once_naming_the_field(client, dev_worker, budget, price, problem):
    order = sample_order(budget=budget, **({"price": price} if price else {}))
    handle = await start(client, dev_worker.task_queue, order)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert problem in str(failed.value.cause)


async def test_a_decision_for_an_order_that_waits_for_none_is_refused(client, dev_worker, smtp):
    order = sample_order()
    with pytest.raises(RPCError, match="not found"):  # no budget- workflow at all
        await client.get_workflow_handle(f"budget-{order['id']}").execute_update("decide", {"decision": "approve", "by": "a@b.org"})
    handle = await start(client, dev_worker.task_queue, order)
    await handle.signal("approve", {"by": "head@example.org"})
    state = await eventually(lambda: _refused(handle), what="the refusal")
    assert state.refused[0].reason == "the order is not waiting for a budget approval"
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


async def _spent(centre, amount: Decimal) -> Spending | None:
    try:
        spending = await centre.query("spending", result_type=Spending)
    except RPCError:
        return None
    return spending if spending.spent == amount else None


async def _with_problem(client, order) -> ApprovalState | None:
    try:
        state = await approval_state(client, order)
    except RPCError:
        return None
    return state if state.problem else None


async def _drafts(handle) -> OrderState | None:
    state = await order_state(handle)
    return state if state.drafts_pending else None


async def _refused(handle) -> OrderState | None:
    state = await order_state(handle)
    return state if state.refused else None


async def test_a_second_decision_while_the_approval_is_still_open_is_refused_with_who_and_when(client, settings, smtp, task_queue):
    """Two approvers answer while no worker runs: both decisions reach the open approval in one go, the first wins
    and the second is refused with who decided and when."""
    order = over_budget()
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await start(client, task_queue, order)
        budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
        await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    await budget.signal("approve", {"by": "head@example.org", "comment": "ok"})
    await budget.signal("reject", {"by": CHEFIN, "comment": "non"})
    async with build_worker(client, settings, task_queue=task_queue):
        assert (await budget.result()).by == "head@example.org"
        approval = await budget.query("state", result_type=ApprovalState)
        assert approval.refused[-1].kind == "reject"
        assert re.fullmatch(
            rf"the order {order['id']} was already approved by head@example.org on \d\d \w+ \d{{4}} at \d\d:\d\d UTC",
            approval.refused[-1].reason,
        )
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_a_decision_while_the_mail_server_is_down_moves_the_order_at_once(client, settings, task_queue):
    """The approval's request is being retried (server down) when the approver answers: the request is given up,
    not sent after the fact, and the order moves on without waiting for the mail server; a late cancel does not
    turn the decision the approver was answered into "cancelled"."""
    from tests.conftest import free_port, with_smtp_port

    async with build_worker(client, with_smtp_port(settings, free_port()), task_queue=task_queue):
        order = over_budget()
        handle = await start(client, task_queue, order)
        budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
        await eventually(lambda: _retrying(budget), what="the approval request retried while the server is down")
        first = await budget.execute_update("decide", {"decision": "approve", "by": "head@example.org"}, result_type=ApprovalOutcome)
        assert first.status == "approved"
        # A cancel that reaches it while it winds down (its emails given up) does not undo what the approver was told.
        await budget.cancel()
        outcome = await asyncio.wait_for(budget.result(), 20)
        assert (outcome.status, outcome.from_outside) == ("approved", False)
        approval = await budget.query("state", result_type=ApprovalState)
        assert "approval_requested: no longer retried, the approval was approved before it went out" in approval.email_notes
        await eventually(lambda: status_is(handle, "submitted"), what="the order moved on the decision")
        await handle.terminate("test over: its own emails wait for the mail server")


async def _retrying(budget) -> bool:
    try:
        return bool((await budget.query("state", result_type=ApprovalState)).emails_sent == [] and await _pending(budget))
    except RPCError:
        return False


async def _pending(budget) -> bool:
    """The email is with the retried activity (not the plan, not the first attempt)."""
    description = await budget.describe()
    return any(a.activity_type.name == SEND_STATUS_EMAIL for a in description.raw_description.pending_activities)


async def _approval_is(handle, status: str) -> bool:
    try:
        return (await handle.query("state", result_type=ApprovalState)).status == status
    except RPCError:
        return False


async def _exists(handle) -> bool:
    try:
        await handle.query("state", result_type=ApprovalState)
        return True
    except RPCError:
        return False


async def test_an_order_cancelled_while_its_approval_starts_cancels_the_approval(client, settings, task_queue):
    """The cancel reaches the order before its child has started (a mail server that never greets holds the first
    workflow task, and with it the child's start): the approval is cancelled once it has started, instead of
    reminding its approvers of a cancelled order."""
    from tests.conftest import with_smtp_port

    connected = asyncio.Event()

    async def never_greets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await asyncio.sleep(30)

    silent = await asyncio.start_server(never_greets, "127.0.0.1", 0)
    slow = with_smtp_port(settings, silent.sockets[0].getsockname()[1])
    slow = slow.model_copy(update={"smtp": slow.smtp.model_copy(update={"timeout_seconds": 2})})
    async with silent, build_worker(client, slow, task_queue=task_queue):
        order = over_budget(language="en")
        handle = await start(client, task_queue, order)
        # The first task is sending order_received (its local activity holds the task open): the command that
        # starts the approval goes to the server only when that task completes.
        await asyncio.wait_for(connected.wait(), 30)
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
        await eventually(lambda: _approval_is(budget, "cancelled"), timeout=30, what="the approval cancelled once started")
        assert (await order_state(handle)).status == "cancelled"
        try:  # usually the cancel comes before the plan: nobody was asked, nobody is told, and it ends at once
            outcome = await asyncio.wait_for(budget.result(), 15)
            assert (outcome.status, outcome.comment) == ("cancelled", "the order was cancelled before anyone was asked")
        except asyncio.TimeoutError:  # a loaded host: planned first, its emails wait for the silent server
            await budget.terminate("test over: its emails wait for a mail server that never answers")
        # Its history replays as it ran (a cancel crossing a local activity's result once did not).
        replayed = await Replayer(workflows=[], plugins=[PrintroomPlugin(Settings())]).replay_workflow(
            await budget.fetch_history(), raise_on_replay_failure=False
        )
        assert replayed.replay_failure is None
        await handle.terminate("test over: its emails wait for a mail server that never answers")


async def test_an_approval_cancelled_from_outside_tells_nobody_and_ask_again_starts_a_new_one(client, dev_worker, smtp):
    """Request Cancellation on `budget-<id>` (the Web UI): the order was not cancelled, so no approver is told it
    was; the order says its approval is gone and an operator's ask_again starts a new one, which is answered."""
    order = over_budget(language="en")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    budget = client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)
    await budget.cancel()  # not the order's doing
    ended = await budget.result()
    assert (ended.status, ended.from_outside) == ("cancelled", True)
    state = await eventually(lambda: _failed(handle), what="the order told that its approval ended without a decision")
    assert state.status == "awaiting_approval"
    assert "was cancelled from outside the order" in state.approval and "ask_again" in state.approval
    assert "send ask_again to this order to start a new approval" in state.emails_failed[-1].error
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    # The Web UI's current details say so too (Markdown: the underscores escaped), not "waiting for its approval".
    assert "- NO BUDGET APPROVAL RUNNING: the budget approval" in details and "was cancelled from outside the order" in details
    assert "send ask\\_again to this order" in details and "waiting for its budget approval" not in details
    subjects = [m.parsed()["Subject"] for m in messages_to(smtp, "head@example.org")]
    assert subjects == [f"Approval needed: order {order['id']} is over its budget"]  # no "No longer needed"
    await handle.signal("ask_again", {"by": "Léa"})
    await eventually(lambda: len(messages_to(smtp, "head@example.org")) == 2, what="the new approval's request")
    again = messages_to(smtp, "head@example.org")[1].parsed()
    assert again["Subject"] == subjects[0] and again["Message-ID"] != messages_to(smtp, "head@example.org")[0].parsed()["Message-ID"]
    await handle.signal("approve", {"by": "head@example.org", "comment": "ok now"})
    await eventually(lambda: status_is(handle, "submitted"), what="the order moved on the new approval's decision")
    assert (await budget.result()).status == "approved"
    assert (await order_state(handle)).approval == "approved by head@example.org"
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


async def _failed(handle) -> OrderState | None:
    state = await order_state(handle)
    return state if state.emails_failed else None


async def test_drafts_handed_to_an_order_must_be_its_approvals_own(client, dev_worker, smtp):
    """The approval only rings its order (the drafts' Message-IDs); the order fetches the drafts from that approval
    itself. A forged hand-over, whatever it carries, puts nothing where an operator sends drafts."""
    order = over_budget(language="en")
    handle = await start(client, dev_worker.task_queue, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    parsed = Order.model_validate(order)
    request = StatusEmailRequest(order=parsed, email_trigger="approval_requested", status="awaiting_approval",
                                 approvers=["mallory@example.net"])  # fmt: skip
    draft = DraftContent(email_trigger="approval_requested", audience="approvers", sender="x <x@example.com>",
                         to=["mallory@example.net"], message_id="<x@y>", rules=DraftRules(may_attach=True, may_edit_cc=True))  # fmt: skip
    attempts = {
        "a whole forged draft": (HeldDrafts(request=request, drafts=[draft]).model_dump(mode="json"), "malformed payload"),
        "a Message-ID the approval never held": ({"message_ids": ["<x@y>"]}, "the approval holds no drafts <x@y> for its order"),
        "nothing named": ({"message_ids": []}, "malformed payload"),
    }
    for payload, _ in attempts.values():
        await handle.signal(HOLD_DRAFTS, payload)
    state = await eventually(lambda: _refused_n(handle, 3), what="the three forged hand-overs refused")
    assert state.drafts_pending == []
    for what, (_, reason) in attempts.items():
        assert [r for r in state.refused if r.kind == HOLD_DRAFTS and reason in r.reason], what
    # A forged "your order was cancelled" to the approval: it asks the order, which says no; nobody is told.
    budget = client.get_workflow_handle(f"budget-{order['id']}")
    await budget.signal("printroom.order_cancelled")
    approval = await eventually(lambda: _refused_approval(client, order), what="the forged cancel refused")
    assert approval.status == "requested" and "is awaiting_approval and nobody asked to cancel it" in approval.refused[-1].reason
    assert not [m for m in messages_to(smtp, "head@example.org") if "No longer needed" in m.parsed()["Subject"]]
    await handle.signal("change_status", {"trigger": "cancel"})
    await eventually(lambda: [m for m in messages_to(smtp, "head@example.org") if "No longer needed" in m.parsed()["Subject"]],
                     what="the order's own cancel told")  # fmt: skip


async def _refused_n(handle, count: int) -> OrderState | None:
    state = await order_state(handle)
    return state if len(state.refused) >= count else None
