"""Budget approval on the time-skipping test server: days of reminders, escalation and silence in seconds, with a
real SMTP server saying who received what, in which language."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from printroom.models import ApprovalOutcome, ApprovalState, CostCentreBook, CostCentreTerms, Spending, SpendingRecord
from printroom.settings import BudgetSettings, Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, messages_to, sample_order

DAY = timedelta(hours=24)


def with_budget(settings: Settings, **budget: Any) -> Settings:
    return settings.model_copy(update={"budget": BudgetSettings(**{"remind_every": "24h", "max_reminders": 2, **budget})})


def subjects(smtp, address: str) -> list[str]:
    return [m.parsed()["Subject"] for m in messages_to(smtp, address)]


async def start(client: Client, task_queue: str, **order: Any):
    order = sample_order(budget={"limit": "100.00", "approvers": ["head@example.org"]}, **order)
    handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
    return order, handle, client.get_workflow_handle(f"budget-{order['id']}", result_type=ApprovalOutcome)


async def test_silent_approvers_are_reminded_then_the_order_expires_when_on_timeout_is_reject(
    time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue
):
    client = time_skipping_env.client
    async with build_worker(client, with_budget(settings, on_timeout="reject"), task_queue=task_queue):
        order, handle, budget = await start(client, task_queue, language="de")
        await eventually(lambda: subjects(smtp, "head@example.org"), what="the request")
        await time_skipping_env.sleep(DAY - timedelta(minutes=10))
        assert len(subjects(smtp, "head@example.org")) == 1  # no reminder before remind_every
        await time_skipping_env.sleep(timedelta(minutes=20))
        await eventually(lambda: len(subjects(smtp, "head@example.org")) == 2, what="the first reminder")
        await time_skipping_env.sleep(DAY)
        await eventually(lambda: len(subjects(smtp, "head@example.org")) == 3, what="the second reminder")
        assert subjects(smtp, "head@example.org")[1:] == [f"Erinnerung: Auftrag {order['id']} wartet noch auf Ihre Freigabe"] * 2
        assert (await budget.query("state", result_type=ApprovalState)).reminders_sent == 2
        state = await handle.result()  # a day after the last reminder: expired, the order rejected
    assert state.status == "rejected" and state.changes[-1].trigger == "reject_budget"
    assert state.changes[-1].comment.startswith("no answer after 2 reminder(s)")
    assert (await budget.result()).status == "expired"
    assert len(subjects(smtp, "head@example.org")) == 3
    assert f"Das Budget für Ihren Auftrag {order['id']} wurde nicht freigegeben" in subjects(smtp, "marie@example.org")


async def test_silence_escalates_once_to_escalate_to_who_alone_may_then_decide(
    time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue
):
    client = time_skipping_env.client
    escalating = with_budget(settings, on_timeout="escalate", escalate_to=["direktorin@bücher.example"], max_reminders=1)
    async with build_worker(client, escalating, task_queue=task_queue):
        order, handle, budget = await start(client, task_queue, language="en")
        await eventually(lambda: subjects(smtp, "head@example.org"), what="the request")
        await time_skipping_env.sleep(2 * DAY + timedelta(minutes=5))  # one reminder, then a day of silence
        boss = "direktorin@xn--bcher-kva.example"
        await eventually(lambda: subjects(smtp, boss), what="the escalated request")
        assert subjects(smtp, boss) == [f"Approval needed: order {order['id']} is over its budget"]
        approval = await budget.query("state", result_type=ApprovalState)
        assert (approval.status, approval.approvers, approval.escalated_to, approval.reminders_sent) == (
            "escalated", ["direktorin@bücher.example"], ["direktorin@bücher.example"], 0
        )
        await budget.signal("approve", {"by": "head@example.org"})  # no longer asked: refused
        await time_skipping_env.sleep(DAY + timedelta(minutes=5))
        await eventually(lambda: len(subjects(smtp, boss)) == 2, what="the escalated approver reminded")
        await budget.signal("approve", {"by": "Direktorin@bücher.example", "comment": "Freigegeben"})
        assert (await budget.result()).by == "Direktorin@bücher.example"
        await eventually(lambda: _status(handle, "submitted"), what="the order approved")
        refused = (await budget.query("state", result_type=ApprovalState)).refused
        assert len(refused) == 1 and refused[0].reason.startswith("head@example.org is not an approver")
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()
    assert len(subjects(smtp, "head@example.org")) == 2  # the request and one reminder; nothing after escalation


async def test_silence_tells_the_operators_once_and_the_approval_keeps_waiting(
    time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue
):
    client = time_skipping_env.client
    async with build_worker(client, with_budget(settings, max_reminders=0), task_queue=task_queue):
        order, handle, budget = await start(client, task_queue, language="fr")
        await time_skipping_env.sleep(DAY + timedelta(minutes=5))
        await eventually(lambda: len(subjects(smtp, "ops@example.com")) == 2, what="the operators told")
        overdue = messages_to(smtp, "ops@example.com")[1].parsed()
        assert overdue["Subject"] == f"Sans réponse : la commande {order['id']} attend toujours l'approbation du budget"
        assert "head@example.org" in overdue.get_body(("plain",)).get_content()
        await time_skipping_env.sleep(10 * DAY)
        assert len(subjects(smtp, "ops@example.com")) == 2 and len(subjects(smtp, "head@example.org")) == 1
        # The operators chased the approver and ask again: asked afresh (a new email), silence counted from now.
        answer_by = (await budget.query("state", result_type=ApprovalState)).answer_by
        await handle.signal("ask_again", {"by": "Léa", "comment": "called her; she will answer today"})
        await eventually(lambda: len(subjects(smtp, "head@example.org")) == 2, what="the approver asked again")
        state = await budget.query("state", result_type=ApprovalState)
        assert state.answer_by is not None and answer_by is not None and state.answer_by - answer_by >= 10 * DAY
        await time_skipping_env.sleep(DAY + timedelta(minutes=5))
        await eventually(lambda: len(subjects(smtp, "ops@example.com")) == 3, what="the operators told again")
        await handle.signal("approve", {"by": "head@example.org"})
        assert (await budget.result()).status == "approved"
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_a_cost_centre_continues_as_new_and_keeps_its_spending_and_what_it_counted(
    time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue
):
    client = time_skipping_env.client
    terms = CostCentreTerms(name="print-ops", budget=Decimal("1000"), currency="EUR", warn_at_percent=Decimal(90), period="month")
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await client.start_workflow(
            "CostCentreWorkflow", CostCentreBook(terms=terms, history_limit=50), id=f"cost-centre-{task_queue}", task_queue=task_queue
        )
        first_run = (await handle.describe()).run_id
        orders = [sample_order(price={"amount": "10.00", "currency": "EUR"}) for _ in range(30)]
        for order in orders + orders[:5]:  # five of them sent twice: counted once
            await handle.signal("add_spending", SpendingRecord(order=order, period="2026-11"))
        spending = await eventually(lambda: _spent(handle, Decimal("300.00")), what="thirty orders counted")
        assert spending.orders == 30 and spending.period == "2026-11"
        assert (await handle.describe()).run_id != first_run  # continued as new, and kept counting
        await handle.signal("add_spending", SpendingRecord(order=orders[0], period="2026-11"))
        await handle.signal("add_spending", SpendingRecord(order=sample_order(price={"amount": "5", "currency": "EUR"}), period="2026-12"))
        spending = await eventually(lambda: _spent(handle, Decimal("5")), what="a new period")
        assert (spending.period, spending.orders) == ("2026-12", 1)
        await handle.terminate("test over")


async def _spent(handle, amount: Decimal) -> Spending | None:
    try:
        spending = await handle.query("spending", result_type=Spending)
    except RPCError:  # a loaded host: the query timed out while the worker replayed the new run; ask again
        return None
    return spending if spending.spent == amount else None


async def _status(handle, status: str) -> bool:
    from printroom.models import OrderState

    return (await handle.query("state", result_type=OrderState)).status == status
