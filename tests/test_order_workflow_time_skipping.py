"""OrderWorkflow on the time-skipping test server: retries that would take minutes take no time."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from printroom.cli.capture import SmtpCapture
from printroom.models import OrderState
from tests.conftest import eventually, free_port, messages_to, sample_order, with_smtp_port
from printroom.worker.main import build_worker
from printroom.workflows.order import OrderWorkflow


async def test_the_order_flow_runs_on_the_time_skipping_server(time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue):
    client = time_skipping_env.client
    async with build_worker(client, settings, task_queue=task_queue):
        order = sample_order()
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "reject", "comment": "Fichier en RVB, merci de l'envoyer en CMJN"})
        state = await handle.result()
    assert state.status == "rejected"
    rejected = [m.parsed() for m in smtp.messages if m.parsed()["Subject"].endswith("n'a pas pu être acceptée")]
    assert len(rejected) == 1
    assert "Fichier en RVB, merci de l'envoyer en CMJN" in rejected[0].get_body(("plain",)).get_content()


async def test_an_hour_of_smtp_outage_is_retried_with_backoff_and_the_email_is_sent_once(
    time_skipping_env: WorkflowEnvironment, settings, task_queue
):
    client = time_skipping_env.client
    port = free_port()
    async with build_worker(client, with_smtp_port(settings, port), task_queue=task_queue):
        order = sample_order()
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        await time_skipping_env.sleep(3600)  # backoff doubles from 1 s, capped at 5 min: about 17 attempts
        description = await handle.describe()
        attempt = description.raw_description.pending_activities[0].attempt
        assert attempt >= 10, f"only {attempt} attempts in an hour"
        with SmtpCapture(port=port) as back:
            await time_skipping_env.sleep(600)
            await eventually(lambda: len(back.messages) >= 2, what="the two order_received emails")
            await handle.signal("change_status", {"trigger": "cancel"})
            state = await handle.result()
            ids = [m.parsed()["Message-ID"] for m in back.messages]
    # The operators' copy has a lane of its own: it may come first.
    assert sorted(e.email_trigger for e in state.emails_sent) == [
        "order_cancelled", "order_cancelled", "order_received", "order_received_operator"
    ]
    assert len(ids) == len(set(ids)) == 4


async def test_a_waiting_draft_reminds_the_operators_every_remind_after_at_most_max_reminders_times(
    time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue
):
    """drafts.remind_after = 4h, max_reminders = 2: a draft held on Friday evening is announced twice, not for ever."""
    client = time_skipping_env.client
    drafting = settings.model_copy(
        update={
            "emails": type(settings.emails)(order_accepted={"edit_before_send": True}),
            "drafts": settings.drafts.model_copy(update={"remind_after": timedelta(hours=4), "max_reminders": 2}),
        }
    )
    async with build_worker(client, drafting, task_queue=task_queue):
        order = sample_order()
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        await handle.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _drafts(handle), what="the acceptance held")
        assert _reminders(smtp) == []
        await time_skipping_env.sleep(timedelta(hours=3, minutes=50))
        assert _reminders(smtp) == []
        await time_skipping_env.sleep(timedelta(minutes=20))  # 4h10 after the draft
        await eventually(lambda: len(_reminders(smtp)) == 1, what="the first reminder")
        await time_skipping_env.sleep(timedelta(hours=4))
        await eventually(lambda: len(_reminders(smtp)) == 2, what="the second reminder")
        await time_skipping_env.sleep(timedelta(hours=24))
        assert len(_reminders(smtp)) == 2  # max_reminders: then the order just waits, visible in DraftsPending
        await handle.execute_update("edit_and_send", {"draft_id": "d1"})
        await handle.signal("change_status", {"trigger": "cancel"})
        state = await handle.result()
    first = _reminders(smtp)[0]
    assert first["Subject"] == f"Le brouillon d1 de la commande {order['id']} vous attend"  # in the order's language
    assert f"Votre commande {order['id']} a été acceptée" in first.get_body(("plain",)).get_content()
    assert [e.email_trigger for e in state.emails_sent].count("draft_waiting") == 2
    assert len({e.message_id for e in state.emails_sent}) == len(state.emails_sent)


async def _drafts(handle) -> bool:
    return bool((await handle.query("state", result_type=OrderState)).drafts_pending)


def _reminders(smtp: SmtpCapture) -> list:
    return [m.parsed() for m in messages_to(smtp, "ops@example.com") if m.parsed()["Subject"].startswith("Le brouillon d1 ")]


async def test_a_pdf_missing_for_most_of_a_day_holds_up_only_its_own_email(time_skipping_env: WorkflowEnvironment, settings, smtp, task_queue, tmp_path):
    """order_completed waits 20 hours for its job's PDF (retried with backoff, under smtp.give_up_after); the order
    ships meanwhile and order_shipped goes at once; then the PDF is there and order_completed goes, once."""
    from tests.test_restarts_and_retries import JOB_WITH_A_PDF, attaching_a_pdf

    client = time_skipping_env.client
    attaching, store = attaching_a_pdf(settings, tmp_path)
    async with build_worker(client, attaching, task_queue=task_queue):
        order = sample_order(language="en", jobs=JOB_WITH_A_PDF)
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)
        for trigger in ("accept", "start_production", "complete", "ship"):
            await handle.signal("change_status", {"trigger": trigger})
        await time_skipping_env.sleep(timedelta(hours=20))
        subjects = [m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org")]
        assert f"Your order {order['id']} is on its way" in subjects and f"Your order {order['id']} is ready" not in subjects
        (store / "PO" / "J1" / "final.pdf").write_bytes(b"%PDF-1.4 final")
        await time_skipping_env.sleep(timedelta(minutes=10))  # the next retry, at most 5 minutes away
        state: OrderState = await handle.result()
    ready = [m for m in messages_to(smtp, "marie@example.org") if m.parsed()["Subject"] == f"Your order {order['id']} is ready"]
    assert len(ready) == 1 and [a.get_filename() for a in ready[0].parsed().iter_attachments()] == ["final.pdf"]
    assert [e.email_trigger for e in state.emails_sent if e.audience == "customer"][-2:] == ["order_shipped", "order_completed"]
    assert state.emails_failed == [] and state.drafts_pending == []
