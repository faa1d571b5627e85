"""Records the histories that tests/test_replay.py replays, as VERSION-<workflow id>.json: one per kind of run
(automatic emails, an SMTP outage, a drafted and edited email, a refused address held as a draft, a budget
approval with its approval and cost-centre workflows, an approval asked again with nobody to ask, an escalated
approval asked again, a reminder timer, inputs at the models' edges, an order started again, an email waiting for
its PDF, an approval cancelled from outside and asked again, a cost centre carrying its warning, a bounced email
sent again to a corrected address, a forged hold_drafts refused, a decision kept through a late cancel, an order
started through a client with PrintroomPlugin: its memo and first status set at its start). 0.1.0 is not released yet: until it is, its histories
are recorded again whenever the workflow changes. From the release on, histories of released versions stay (running
orders must keep replaying), and a change that alters the commands a workflow issues, or what its models accept,
goes behind workflow.patched and gets a new VERSION here.

    .venv/bin/python -m tests.histories.record             # all of them
    .venv/bin/python -m tests.histories.record H-BOUNCED   # one path added since, alone (the others unchanged)
    .venv/bin/python -m tests.histories.record H-FORGED    # H-FORGED and H-LATE-CANCEL, recorded together
    .venv/bin/python -m tests.histories.record H-REDRAFTED # an approval's request drafted again in one task
    .venv/bin/python -m tests.histories.record H-PLUGIN    # an order started through a printroom client
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from printroom.cli.binaries import temporal_binary
from printroom.cli.capture import SmtpCapture
from temporalio.service import RPCError

from printroom.models import HOLD_DRAFTS, SEND_STATUS_EMAIL, ApprovalOutcome, ApprovalState, CostCentreBook, CostCentreTerms, Order, OrderState, Spending, SpendingRecord
from printroom.settings import BudgetSettings, DocumentSettings, EmailPolicies, Settings
from printroom.worker.main import build_worker, with_pydantic
from printroom.worker.plugin import PrintroomPlugin
from printroom.workflows.order import SEARCH_ATTRIBUTES
from tests.conftest import Refusing, eventually, free_port, sample_order

HERE = Path(__file__).parent
VERSION = "0.1.0"


def settings_for(port: int, tmp: Path, **more: Any) -> Settings:
    return Settings(
        operators=["ops@example.com"], smtp={"port": port, "timeout_seconds": 2}, deliveries_dir=tmp / f"deliveries-{port}",
        emails={"order_shipped": {"edit_before_send": True}}, shops={"default": {}, "campus": {}},
        cost_centres={"marketing": {"budget": "1000", "warn_at_percent": 20, "approvers": ["cmo@example.org"]}}, **more,
    )  # fmt: skip


async def start(client: Client, name: str, **order: Any) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "OrderWorkflow", sample_order(name, **order), id=f"order-{name}", task_queue="record", result_type=OrderState
    )


async def _status(handle: WorkflowHandle[Any, Any], status: str) -> bool:
    return (await handle.query("state", result_type=OrderState)).status == status


async def _counted_and_taken_back(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        spending = await handle.query("spending", result_type=Spending)
        return (spending.orders, spending.taken_back) == (0, 1)
    except RPCError:
        return False


async def _problem(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        return bool((await handle.query("state", result_type=ApprovalState)).problem)
    except RPCError:
        return False


async def _asked_of(handle: WorkflowHandle[Any, Any], approver: str) -> bool:
    state = await handle.query("state", result_type=ApprovalState)
    return state.status == "requested" and state.approvers == [approver]


async def _refused_again(handle: WorkflowHandle[Any, Any]) -> bool:
    return any(r.kind == "ask_again" for r in (await handle.query("state", result_type=ApprovalState)).refused)


async def drafts(handle: WorkflowHandle[Any, Any], count: int) -> bool:
    return len((await handle.query("state", result_type=OrderState)).drafts_pending) >= count


async def on_the_dev_server(tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=with_pydantic(None), search_attributes=SEARCH_ATTRIBUTES
    )
    client, port = env.client, free_port()
    async with build_worker(client, settings_for(port, tmp), task_queue="record"):
        with SmtpCapture(port=port):
            shipped = await start(client, "H-SHIPPED")
            await shipped.signal("change_status", {"trigger": "ship"})  # refused: not allowed yet
            for trigger in ("accept", "start_production", "complete", "ship"):
                await shipped.signal("change_status", {"trigger": trigger, "by": "Léa"})
            await eventually(lambda: drafts(shipped, 1), what="order_shipped held")
            await shipped.signal("send_draft", {"draft_id": "d9"})  # refused: no such draft
            await shipped.execute_update("edit_and_send", {"draft_id": "d1", "note": "Livré jeudi", "by": "Léa"})
            await shipped.result()

            # Inputs at the edges of what the models accept: what they accept is pinned by this history.
            international = await start(
                client, "H-INTERNATIONAL", language="de-CH", shop="campus",
                customer={"name": "Jürgen Müller-Lüdenscheidt", "email": "müller@bücher.example", "wants_status_emails": ["order_shipped"]},
                price={"amount": "9999999.99", "currency": "CHF"},
                budget={"limit": "9999999.99", "approvers": ["chefin@xn--bcher-kva.example"]},
                jobs=[{"id": "J-ü1", "name": "Broschüre «Frühling»", "quantity": 1, "document": "PO/J1/Broschüre final.pdf"}],
            )  # fmt: skip
            await international.signal("change_status", {"trigger": "reject", "comment": "Datei fehlt – bitte erneut senden"})
            await international.result()

            approval = await start(
                client, "H-APPROVAL", cost_centre="marketing", budget={"limit": "200.00", "approvers": ["head@example.org"]}
            )
            await eventually(lambda: _status(approval, "awaiting_approval"), what="the approval asked")
            await approval.signal("approve", {"by": "intern@example.org"})  # refused: not an approver
            await approval.signal("approve", {"by": "head@example.org", "comment": "OK"})
            await eventually(lambda: _status(approval, "submitted"), what="the approval's outcome")
            for trigger in ("accept", "cancel"):
                await approval.signal("change_status", {"trigger": trigger})
            await approval.result()
            budget = client.get_workflow_handle("budget-H-APPROVAL")
            cost_centre = client.get_workflow_handle("cost-centre-marketing")
            await eventually(lambda: _counted_and_taken_back(cost_centre), what="the order counted, then taken back")
            await cost_centre.terminate("recorded")
            # Nobody to ask (a cost centre the settings lack); an operator asks again, still nobody: refused.
            asked = await start(client, "H-ASKED-AGAIN", cost_centre="design", budget={"limit": "1.00"})
            await eventually(lambda: _status(asked, "awaiting_approval"), what="the approval started")
            asked_budget = client.get_workflow_handle("budget-H-ASKED-AGAIN")
            await eventually(lambda: _problem(asked_budget), what="nobody to ask")
            await asked.signal("ask_again", {"by": "Léa"})
            await eventually(lambda: _refused_again(asked_budget), what="asking again refused")
            await asked.signal("change_status", {"trigger": "cancel"})
            await asked.result()
        # The SMTP server is down at first: the local attempt fails, a regular activity retries until it is back.
        outage = await start(client, "H-OUTAGE")
        await asyncio.sleep(4)
        with SmtpCapture(port=port) as back:
            await eventually(lambda: len(back.messages) >= 2, timeout=30)
            await outage.signal("change_status", {"trigger": "cancel"})
            await outage.result()
    refusing = Refusing()
    refusing.replies["marie@example.org"] = "550 5.1.1 mailbox unavailable"
    controller = Controller(refusing, hostname="127.0.0.1", port=free_port())
    controller.start()
    async with build_worker(client, settings_for(controller.port, tmp), task_queue="record"):
        refused = await start(client, "H-REFUSED")
        await refused.signal("change_status", {"trigger": "cancel"})
        await eventually(lambda: drafts(refused, 2), what="both refused emails held")
        await refused.signal("discard_draft", {"draft_id": "d1", "reason": "address unknown", "by": "Léa"})
        await refused.signal("discard_draft", {"draft_id": "d2", "reason": "address unknown", "by": "Léa"})
        await refused.result()
    controller.stop()
    handles = [shipped, international, approval, budget, cost_centre, asked, asked_budget, outage, refused]
    handles += await the_paths_of_issue_20(client, tmp)
    for alone in dict.fromkeys(ALONE.values()):  # each path also recorded alone, once each
        handles += await alone(client, tmp)
    await _save(handles)
    await env.shutdown()
    return handles


async def the_paths_of_issue_20(client: Client, tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    """An order started again under the same id (its second run), an email waiting for its PDF while the next
    goes, an approval cancelled from outside (its request held for an operator, then no longer needed) and started
    again by ask_again, a cost centre continuing as new while its warning waits for the mail server."""
    port = free_port()
    store = tmp / "documents"
    (store / "PO" / "J1").mkdir(parents=True)
    settings = settings_for(port, tmp).model_copy(
        update={"emails": EmailPolicies.model_validate({"order_completed": {"attachments": ["document"]},
                                                        "approval_requested": {"edit_before_send": True}}),
                "documents": DocumentSettings(root=store)}
    )  # fmt: skip
    async with build_worker(client, settings, task_queue="record"):
        with SmtpCapture(port=port) as smtp:
            for _ in range(2):
                restarted = await start(client, "H-RESTARTED")
                await restarted.signal("change_status", {"trigger": "cancel"})
                await restarted.result()
            pdf = await start(client, "H-PDF", language="en", jobs=[{"id": "J1", "name": "Flyers", "quantity": 5, "document": "PO/J1/final.pdf"}])
            for trigger in ("accept", "start_production", "complete"):
                await pdf.signal("change_status", {"trigger": trigger})
            await eventually(lambda: _waiting(pdf, "order_completed"), what="order_completed waiting for its PDF")
            await pdf.signal("change_status", {"trigger": "ship"})
            await eventually(lambda: any("on its way" in m.parsed()["Subject"] for m in smtp.messages), what="order_shipped")
            (store / "PO" / "J1" / "final.pdf").write_bytes(b"%PDF-1.4")
            await asyncio.wait_for(pdf.result(), 60)
            withdrawn = await start(client, "H-WITHDRAWN", budget={"limit": "10", "approvers": ["head@example.org"]})
            withdrawn_budget = client.get_workflow_handle("budget-H-WITHDRAWN")
            await eventually(lambda: _status(withdrawn, "awaiting_approval"), what="the approval asked")
            await eventually(lambda: _exists(withdrawn_budget), what="the approval started")
            cancelled_run = client.get_workflow_handle("budget-H-WITHDRAWN", run_id=(await withdrawn_budget.describe()).run_id)
            await eventually(lambda: drafts(withdrawn, 1), what="the request held for an operator, fetched from the approval")
            await withdrawn_budget.cancel()
            await eventually(lambda: _approval(withdrawn, "cancelled from outside"), what="the order told")
            await withdrawn.signal("ask_again", {"by": "Léa"})
            await eventually(lambda: _approval(withdrawn, "waiting"), what="a new approval")
            await withdrawn.signal("approve", {"by": "head@example.org"})
            await eventually(lambda: _status(withdrawn, "submitted"), what="approved")
            await withdrawn.signal("change_status", {"trigger": "cancel"})
            await withdrawn.result()
            history = await cancelled_run.fetch_history()  # the approval cancelled from outside, beside the one after it
            (HERE / f"{VERSION}-budget-H-WITHDRAWN-from-outside.json").write_text(history.to_json())
    terms = CostCentreTerms(name="carried", budget=Decimal("10"), currency="EUR", warn_at_percent=Decimal(50), period="month",
                            approvers=["cmo@example.org"])  # fmt: skip
    async with build_worker(client, settings_for(free_port(), tmp), task_queue="record"):  # no mail server there
        carried = await client.start_workflow(
            "CostCentreWorkflow", CostCentreBook(terms=terms, history_limit=50), id="cost-centre-carried", task_queue="record"
        )
        for amount in range(1, 21):  # one at a time, each counted before the next: a task each, past the limit
            order = sample_order(f"H-CARRIED-{amount}", price={"amount": "1", "currency": "EUR"})
            await carried.signal("add_spending", SpendingRecord(order=Order.model_validate(order), period="2026-12"))
            await eventually(lambda: _spent(carried, amount), what=f"order {amount} counted")
        first_run = client.get_workflow_handle("cost-centre-carried", run_id=carried.first_execution_run_id)
        await eventually(lambda: _continued(first_run), timeout=60, what="the cost centre continued as new")
        await client.get_workflow_handle("cost-centre-carried").terminate("recorded")
    return [restarted, pdf, withdrawn, client.get_workflow_handle("budget-H-WITHDRAWN"), first_run]


async def the_paths_of_issue_24(client: Client, tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    """A customer's receipt bounced for good (recorded once though read twice, beside a temporary bounce and one
    for an email the order never sent): its copy held, sent by an operator to a corrected address, which the
    order's next email goes to."""
    port = free_port()
    async with build_worker(client, settings_for(port, tmp), task_queue="record"):
        with SmtpCapture(port=port):
            customer = {"name": "Jürgen Müller", "email": "müller@bücher.example", "wants_status_emails": True}
            bounced = await start(client, "H-BOUNCED", customer=customer)
            receipt = await eventually(lambda: _sent_to(bounced, "customer"), what="the receipt sent")
            failed = {"message_id": receipt, "recipient": customer["email"], "status": "5.1.1", "permanent": True,
                      "diagnostic": "550 5.1.1 Benutzer unbekannt"}  # fmt: skip
            for payload in (failed, failed, {**failed, "status": "4.2.2", "permanent": False},
                            {**failed, "message_id": receipt.replace("order_received", "order_shipped")}):  # fmt: skip
                await bounced.signal("email_bounced", payload)
            await eventually(lambda: drafts(bounced, 1), what="the receipt's copy held")
            await bounced.execute_update("edit_and_send", {"draft_id": "d1", "to": ["juergen@example.org"], "by": "Léa"})
            await bounced.signal("change_status", {"trigger": "cancel", "by": "Léa"})
            await bounced.result()
    return [bounced]


async def the_gaps_of_issue_20(client: Client, tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    """A forged hold_drafts on an order whose approval waits (refused: the approval holds no such drafts), and a
    decision taken while the approval's request is retried (no mail server), followed by a late Request
    Cancellation on budget-<id> that does not undo it."""
    port = free_port()
    over_budget = {"limit": "10", "approvers": ["head@example.org"]}
    async with build_worker(client, settings_for(port, tmp), task_queue="record"):
        with SmtpCapture(port=port):
            forged = await start(client, "H-FORGED", budget=over_budget)
            await eventually(lambda: _status(forged, "awaiting_approval"), what="the approval asked")
            await eventually(lambda: _exists(client.get_workflow_handle("budget-H-FORGED")), what="the approval started")
            await forged.signal(HOLD_DRAFTS, {"message_ids": ["<forged@example.net>"]})
            await eventually(lambda: _refused_order(forged), what="the forged hand-over refused")
            await forged.signal("change_status", {"trigger": "cancel"})
            await forged.result()
    down = settings_for(free_port(), tmp)  # no mail server there
    async with build_worker(client, down, task_queue="record"):
        late = await start(client, "H-LATE-CANCEL", budget=over_budget)
        late_budget = client.get_workflow_handle("budget-H-LATE-CANCEL", result_type=ApprovalOutcome)
        await eventually(lambda: _retried(late_budget), timeout=30, what="the approval's request retried")
    # While no worker runs, the decision and then a cancel: both reach the approval in one task; the decision stays.
    await late_budget.signal("approve", {"by": "head@example.org"})
    await late_budget.cancel()
    async with build_worker(client, down, task_queue="record"):
        outcome = await asyncio.wait_for(late_budget.result(), 30)
        assert outcome.status == "approved", outcome
        await eventually(lambda: _status(late, "submitted"), what="the order moved on the decision")
        await late.terminate("recorded: its own emails wait for a mail server")
    return [forged, client.get_workflow_handle("budget-H-FORGED"), late, late_budget]


async def a_request_drafted_again(client: Client, tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    """approval_requested held for an operator, then ask_again: round 1's draft settled and round 2's held in one
    task (a new oldest draft, nothing else published changed), then cancelled. Its history as 5065b81 (before
    OldestDraftHeld) wrote it is kept as 0.1.0-order-H-REDRAFTED-before-oldest-draft-held.json."""
    port = free_port()
    drafting = Settings(operators=["ops@example.com"], smtp={"port": port, "timeout_seconds": 2}, deliveries_dir=tmp / "redrafted",
                        emails={"approval_requested": {"edit_before_send": True}})  # fmt: skip
    async with build_worker(client, drafting, task_queue="record"):
        with SmtpCapture(port=port):
            order = await start(client, "H-REDRAFTED", language="en", budget={"limit": "10", "approvers": ["head@example.org"]})
            await eventually(lambda: _draft_ids(order, ["d1"]), what="round 1's request held")
            await order.signal("ask_again", {"by": "Léa", "comment": "new approvers"})
            await eventually(lambda: _draft_ids(order, ["d2"]), what="round 2's request held, round 1's settled")
            await order.signal("change_status", {"trigger": "cancel"})
            await asyncio.wait_for(order.result(), 30)
    return [order]


async def started_through_the_plugin(client: Client, tmp: Path) -> list[WorkflowHandle[Any, Any]]:
    """An order an application's client with PrintroomPlugin started: the memo and its first status (OrderStatus,
    DraftsPending) set at its start, so its first task sends its receipts and upserts nothing; then two changes."""
    port = free_port()
    app = Client(client.service_client, namespace=client.namespace, plugins=[PrintroomPlugin(settings_for(port, tmp))])
    async with Worker(app, task_queue="record"):
        with SmtpCapture(port=port):
            order = await start(app, "H-PLUGIN")
            await eventually(lambda: _sent_to(order, "customer"), what="the receipt sent in the first task")
            for trigger in ("accept", "cancel"):
                await order.signal("change_status", {"trigger": trigger, "by": "Léa"})
                await eventually(lambda: _status(order, "accepted" if trigger == "accept" else "cancelled"), what=trigger)
            await order.result()
    return [order]


ALONE = {
    "H-BOUNCED": the_paths_of_issue_24,
    "H-FORGED": the_gaps_of_issue_20,
    "H-LATE-CANCEL": the_gaps_of_issue_20,
    "H-REDRAFTED": a_request_drafted_again,
    "H-PLUGIN": started_through_the_plugin,
}  # the paths added since the first recording, which `record <name>` records alone (the others unchanged)


async def _draft_ids(handle: WorkflowHandle[Any, Any], ids: list[str]) -> bool:
    return [d.id for d in (await handle.query("state", result_type=OrderState)).drafts_pending] == ids


async def _refused_order(handle: WorkflowHandle[Any, Any]) -> bool:
    return any(r.kind == HOLD_DRAFTS for r in (await handle.query("state", result_type=OrderState)).refused)


async def _retried(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        pending = (await handle.describe()).raw_description.pending_activities
    except RPCError:
        return False
    return any(a.activity_type.name == SEND_STATUS_EMAIL for a in pending)


async def _sent_to(handle: WorkflowHandle[Any, Any], audience: str) -> str | None:
    sent = (await handle.query("state", result_type=OrderState)).emails_sent
    return next((e.message_id for e in sent if e.audience == audience), None)


async def _waiting(handle: WorkflowHandle[Any, Any], trigger: str) -> bool:
    state = await handle.query("state", result_type=OrderState)
    return any(p.email_trigger == trigger and p.last_error for p in state.emails_pending)


async def _approval(handle: WorkflowHandle[Any, Any], words: str) -> bool:
    return words in (await handle.query("state", result_type=OrderState)).approval


async def _exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
        return True
    except RPCError:
        return False


async def _spent(handle: WorkflowHandle[Any, Any], amount: int) -> bool:
    try:  # the handle names no run: the run of now, after a continue-as-new too
        return (await handle.query("spending", result_type=Spending)).spent == amount
    except RPCError:
        return False


async def _continued(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW


async def on_the_time_skipping_server(tmp: Path) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server"), data_converter=with_pydantic(None)
    )
    port = free_port()
    settings = settings_for(port, tmp, drafts={"remind_after": "4h", "max_reminders": 2})
    async with build_worker(env.client, settings, task_queue="record"):
        with SmtpCapture(port=port):
            reminded = await start(env.client, "H-REMINDED")
            for trigger in ("accept", "start_production", "complete", "ship"):
                await reminded.signal("change_status", {"trigger": trigger})
            await eventually(lambda: drafts(reminded, 1), what="order_shipped held")
            await env.sleep(timedelta(hours=9))  # two reminders
            await reminded.execute_update("edit_and_send", {"draft_id": "d1"})
            await reminded.result()
    escalating = settings.model_copy(
        update={"budget": BudgetSettings(remind_every="24h", max_reminders=1, on_timeout="escalate", escalate_to=["boss@example.org"])}
    )
    async with build_worker(env.client, escalating, task_queue="record"):
        with SmtpCapture(port=port):
            escalated = await start(env.client, "H-ESCALATED", budget={"limit": "10", "approvers": ["head@example.org"]})
            await eventually(lambda: _status(escalated, "awaiting_approval"), what="the approval asked")
            await env.sleep(timedelta(days=3, hours=1))  # a reminder, the escalation, the new approver's reminder
            budget = env.client.get_workflow_handle("budget-H-ESCALATED")
            await escalated.signal("ask_again", {"by": "Léa", "comment": "head is back"})  # head asked afresh
            await eventually(lambda: _asked_of(budget, "head@example.org"), what="asked again")
            await env.sleep(timedelta(days=1, hours=1))  # head's reminder
            await budget.execute_update("decide", {"decision": "reject", "by": "head@example.org", "comment": "No"})
            await escalated.result()
    await _save([reminded, escalated, budget])
    await env.shutdown()


async def _save(handles: list[WorkflowHandle[Any, Any]]) -> None:
    for handle in handles:
        history = await handle.fetch_history()
        (HERE / f"{VERSION}-{handle.id}.json").write_text(history.to_json())


async def main(only: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if only and only[0] in ALONE:
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=temporal_binary(), data_converter=with_pydantic(None), search_attributes=SEARCH_ATTRIBUTES
            )
            await _save(await ALONE[only[0]](env.client, Path(tmp)))
            await env.shutdown()
            return
        await on_the_dev_server(Path(tmp))
        await on_the_time_skipping_server(Path(tmp))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    os._exit(0)
