"""A bounded fault scenario (issue #13 (c)): the Temporal dev server SIGKILLed and started again on the same SQLite
file while drafts wait for an operator, approvals wait with their reminder timers, and emails are in flight.
Afterwards every draft and timer is still there, and every email arrives exactly once (counted by Message-ID)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.stack import DevServer, runless, timer_pending
from printroom.cli.capture import SmtpCapture
from printroom.models import ApprovalOutcome, ApprovalState, Draft, DraftSent, OrderState
from printroom.settings import EmailPolicies, Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow
from tests.conftest import eventually, sample_order

DRAFTED, APPROVALS, MOVING = 4, 3, 5


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[DevServer]:
    dev = DevServer(tmp_path)
    yield dev
    dev.stop()


async def test_the_temporal_server_killed_and_restarted_loses_no_draft_timer_or_email(server: DevServer, settings: Settings, smtp: SmtpCapture):
    faulty = settings.model_copy(update={"emails": EmailPolicies.model_validate({"order_accepted": {"edit_before_send": True}})})
    client = await server.start()
    drafted = [sample_order(f"PO-D{n}") for n in range(DRAFTED)]
    approving = [sample_order(f"PO-A{n}", budget={"limit": "100", "approvers": ["head@example.org"]}) for n in range(APPROVALS)]
    moving = [sample_order(f"PO-M{n}") for n in range(MOVING)]
    async with build_worker(client, faulty, task_queue="faults"):
        handles = {o["id"]: await client.start_workflow(OrderWorkflow.run, o, id=f"order-{o['id']}", task_queue="faults")
                   for o in [*drafted, *approving, *moving]}  # fmt: skip
        for order in drafted:
            await handles[order["id"]].signal("change_status", {"trigger": "accept", "by": "Léa"})
        await eventually(lambda: _all(handles, drafted, lambda s: len(s.drafts_pending) == 1), what="every draft held")
        await eventually(lambda: len(_to(smtp, "head@example.org")) == APPROVALS, what="every approval asked for")
        for order in moving:  # emails in flight as the server dies
            await handles[order["id"]].signal("change_status", {"trigger": "reject", "comment": "no paper"})

        server.kill()
        await asyncio.sleep(2)
        client = await server.start()  # the same SQLite file, the same address: the worker reconnects on its own
        handles = {oid: client.get_workflow_handle(f"order-{oid}") for oid in handles}

        # Drafts and timers survived: the drafts are there in full, every approval still waits on its reminder.
        for order in drafted:
            drafts = await eventually(lambda: _drafts(handles[order["id"]]), timeout=60, what=f"the draft of {order['id']}")
            assert drafts[0].email_trigger == "order_accepted" and drafts[0].html
        for order in approving:
            budget = client.get_workflow_handle(f"budget-{order['id']}")
            assert (await budget.query("state", result_type=ApprovalState)).status == "requested"
            assert await timer_pending(budget), f"the reminder timer of budget-{order['id']}"

        # The work goes on: drafts sent, approvals decided, and nothing arrives twice.
        for order in drafted:
            await handles[order["id"]].execute_update("edit_and_send", {"draft_id": "d1", "by": "Léa"}, result_type=DraftSent)
        for order in approving:
            budget = client.get_workflow_handle(f"budget-{order['id']}")
            await budget.execute_update("decide", {"decision": "approve", "by": "head@example.org"}, result_type=ApprovalOutcome)
        expected = (
            {f"<{o['id']}.order_received.1.customer@example.com>" for o in [*drafted, *approving, *moving]}
            | {f"<{o['id']}.order_accepted.1.customer@example.com>" for o in drafted}
            | {f"<{o['id']}.order_rejected.1.customer@example.com>" for o in moving}
            | {f"<{o['id']}.order_approved.1.customer@example.com>" for o in approving}
            | {f"<{o['id']}.approval_requested.1.approvers@example.com>" for o in approving}
        )
        await eventually(lambda: expected <= set(_ids(smtp)), timeout=60, what="every expected email")
        await asyncio.sleep(2)  # anything that would arrive a second time
        counts = Counter(_ids(smtp))
        assert {m: c for m, c in counts.items() if c > 1} == {}, "duplicated"
        assert expected - set(counts) == set(), "missing"
        for oid, handle in handles.items():
            if not oid.startswith("PO-M"):
                await handle.signal("change_status", {"trigger": "cancel"})


def _to(smtp: SmtpCapture, address: str) -> list[Any]:
    return [m for m in smtp.messages if address in m.rcpt_tos]


def _ids(smtp: SmtpCapture) -> list[str]:
    return [runless(str(m.parsed()["Message-ID"])) for m in smtp.messages]  # each order runs once here


async def _all(handles: dict[str, Any], orders: list[dict[str, Any]], check: Any) -> bool:
    states = [await handles[o["id"]].query("state", result_type=OrderState) for o in orders]
    return all(check(s) for s in states)


async def _drafts(handle: Any) -> list[Draft] | None:
    try:
        return await handle.query("drafts", result_type=list[Draft]) or None
    except Exception:  # noqa: BLE001  # the server or the worker still coming back
        return None
