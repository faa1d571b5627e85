"""OrderWorkflow on the time-skipping test server: retries that would take minutes take no time."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from printroom.cli.capture import SmtpCapture
from tests.conftest import eventually, free_port, sample_order, with_smtp_port
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
    assert [e.email_trigger for e in state.emails_sent] == [
        "order_received", "order_received_operator", "order_cancelled", "order_cancelled"
    ]
    assert len(ids) == len(set(ids)) == 4
