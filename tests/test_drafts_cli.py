"""`printroom drafts …` as an operator runs it, against a real dev server and worker."""

from __future__ import annotations

import email
import uuid
from email import policy
from pathlib import Path
from typing import Any

from printroom.models import OrderState
from printroom.worker.main import build_worker
from tests.conftest import eventually, messages_to, order_state, sample_order
from tests.conftest import printroom_beside_a_worker as printroom
from tests.test_drafts import drafting


async def test_an_operator_lists_reads_sends_and_discards_drafts_from_the_command_line(client, settings, smtp, task_queue, tmp_path: Path):
    env = {"PRINTROOM_TEMPORAL__ADDRESS": client.service_client.config.target_host, "PRINTROOM_TEMPORAL__NAMESPACE": "default"}
    async with build_worker(client, drafting(settings), task_queue=task_queue):
        order = sample_order(customer={"name": "Jürgen Müller", "email": "juergen@example.org", "wants_status_emails": True})
        handle = await client.start_workflow(
            "OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue, result_type=OrderState
        )
        for trigger in ("accept", "start_production", "complete", "ship"):
            await handle.signal("change_status", {"trigger": trigger})
        await eventually(lambda: _drafts(handle, 2), what="order_accepted and order_shipped held")

        listed = await eventually(lambda: _listed(env, handle.id), what="the order in `drafts list`", timeout=30)
        assert f"{handle.id}  shipped  2 draft(s) waiting" in listed

        shown = await printroom("drafts", "show", order["id"], **env)
        assert shown.returncode == 0, shown.stderr
        assert "d1: order_accepted to the customer" in shown.stdout and "d2: order_shipped to the customer" in shown.stdout
        assert f"Subject: Votre commande {order['id']} a été acceptée" in shown.stdout

        ambiguous = await printroom("drafts", "send", order["id"], **env)
        assert ambiguous.returncode == 1
        assert "2 drafts wait (d1, d2): say which with draft_id" in ambiguous.stderr

        out = tmp_path / "d2.eml"
        written = await printroom("drafts", "show", handle.id, "d2", "--out", str(out), **env)
        assert written.returncode == 0, written.stderr
        as_file = email.message_from_bytes(out.read_bytes(), policy=policy.default)
        assert as_file["Subject"] == f"Votre commande {order['id']} a été expédiée" and as_file["To"] == "juergen@example.org"

        sent = await printroom("drafts", "send", order["id"], "d2", "--note", "Colis remis à DHL", "--by", "Léa", **env)
        assert sent.returncode == 0, sent.stderr
        assert f"sent d2: 'Votre commande {order['id']} a été expédiée' to juergen@example.org" in sent.stdout
        shipped = [m.parsed() for m in messages_to(smtp, "juergen@example.org") if "expédiée" in m.parsed()["Subject"]]
        assert len(shipped) == 1 and "Colis remis à DHL" in shipped[0].get_body(("plain",)).get_content()

        not_allowed = await printroom("drafts", "send", order["id"], "d1", "--cc", "boss@example.org", **env)
        assert not_allowed.returncode == 1 and "operators may not change Cc" in not_allowed.stderr
        not_allowed = await printroom("drafts", "send", order["id"], "d1", "--to", "müller@bücher.example", **env)
        assert not_allowed.returncode == 1 and "operators may not change its recipients" in not_allowed.stderr

        dropped = await printroom("drafts", "discard", order["id"], "d1", "--reason", "phoned instead", "--by", "Léa", **env)
        assert dropped.returncode == 0, dropped.stderr
        assert "discarded d1; 0 draft(s) still waiting" in dropped.stdout
        state = await handle.result()  # shipped, and nothing waits any more: the order is closed
        again = await printroom("drafts", "discard", order["id"], "d1", "--reason", "twice", **env)
        assert again.returncode == 1 and "workflow execution already completed" in again.stderr
    assert state.status == "shipped" and state.drafts_pending == []
    assert [(c.trigger, c.by) for c in state.changes if c.trigger.endswith("_draft")] == [("send_draft", "Léa"), ("discard_draft", "Léa")]


async def _drafts(handle: Any, count: int) -> bool:
    return len((await order_state(handle)).drafts_pending) >= count


async def _listed(env: dict[str, str], workflow_id: str) -> str | None:
    run = await printroom("drafts", "list", **env)
    return run.stdout if workflow_id in run.stdout else None


async def test_drafts_show_finds_an_order_whose_own_id_starts_with_order(client, settings, smtp, task_queue):
    """Issue 20: `printroom drafts show order-7` read the workflow `order-7` (order 7), not the order named order-7."""
    env = {"PRINTROOM_TEMPORAL__ADDRESS": client.service_client.config.target_host, "PRINTROOM_TEMPORAL__NAMESPACE": "default"}
    async with build_worker(client, drafting(settings), task_queue=task_queue):
        order = sample_order(f"order-{uuid.uuid4().hex[:6]}")
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _drafts(handle, 1), what="order_accepted held")
        shown = await printroom("drafts", "show", order["id"], **env)
        assert shown.returncode == 0, shown.stderr
        assert f"Subject: Votre commande {order['id']} a été acceptée" in shown.stdout
        by_workflow_id = await printroom("drafts", "show", handle.id, **env)  # its workflow id works as before
        assert by_workflow_id.returncode == 0 and f"Votre commande {order['id']}" in by_workflow_id.stdout
        await handle.terminate("test over")
