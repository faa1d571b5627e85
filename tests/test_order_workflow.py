"""OrderWorkflow on a real Temporal dev server, emails checked at a real SMTP server."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer, Worker

from printroom.cli.capture import SmtpCapture
from printroom.models import OrderState
from printroom.activities.email import EmailActivities
from printroom.settings import Settings
from printroom.worker.plugin import PrintroomPlugin
from printroom.workflows.order import OrderWorkflow
from printroom.worker.main import build_worker
from tests.conftest import event_names, eventually, task_settled, free_port, with_smtp_port, messages_to, order_state, sample_order


async def start_on(client: Client, task_queue: str, order: dict[str, Any]):
    return await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=task_queue)


async def start(client: Client, worker: Worker, order: dict[str, Any]):
    return await start_on(client, worker.task_queue, order)


async def test_an_order_emails_the_customer_at_each_status_change(client, dev_worker, smtp: SmtpCapture):
    order = sample_order()
    handle = await start(client, dev_worker, order)
    for trigger in ("accept", "start_production", "complete", "ship"):
        await handle.signal("change_status", {"trigger": trigger, "by": "Léa"})
    result = await handle.result()

    assert result.status == "shipped"
    customer = [m.parsed() for m in messages_to(smtp, "marie@example.org")]
    subjects = [m["Subject"] for m in customer]
    assert subjects == [
        f"Nous avons bien reçu votre commande {order['id']}",
        f"Votre commande {order['id']} a été acceptée",
        f"Votre commande {order['id']} est en production",
        f"Votre commande {order['id']} est prête",
        f"Votre commande {order['id']} a été expédiée",
    ]
    first = customer[0]
    assert first["From"].addresses[0].display_name == "Salle d'impression"
    assert first["From"].addresses[0].addr_spec == "printroom@example.com"
    assert first["To"] == "marie@example.org"
    assert first["Content-Language"] == "fr"
    html = first.get_body(("html",)).get_content()
    assert f"https://shop.example.com/orders/{order['id']}" in html
    assert "Flyers A5" in first.get_body(("plain",)).get_content()
    operators = [m.parsed()["Subject"] for m in messages_to(smtp, "ops@example.com")]
    assert operators == [f"Nouvelle commande {order['id']} de Marie Curie"]
    assert [e.email_trigger for e in result.emails_sent] == [
        "order_received", "order_received_operator", "order_accepted",
        "order_in_production", "order_completed", "order_shipped",
    ]


async def test_a_forbidden_trigger_is_refused_with_its_reason_and_changes_nothing(client, dev_worker, smtp):
    handle = await start(client, dev_worker, sample_order())
    await handle.signal("change_status", {"trigger": "ship", "by": "Léa"})
    state = await eventually(lambda: _refused(handle), what="the refusal in the state query")
    assert state.status == "submitted"
    assert state.refused[0].kind == "change_status"
    assert "'ship' is not allowed while the order is 'submitted'" in state.refused[0].reason
    assert "allowed now: accept, reject, cancel" in state.refused[0].reason
    assert state.changes == []
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


async def test_an_unknown_trigger_and_a_malformed_signal_are_refused(client, dev_worker, smtp):
    handle = await start(client, dev_worker, sample_order())
    await handle.signal("change_status", {"trigger": "teleport"})
    await handle.signal("change_status", {"trigger": ["accept"], "comment": 12})
    await handle.signal("change_status", "accept")
    state = await eventually(lambda: _refused(handle, count=3), what="three refusals")
    reasons = [r.reason for r in state.refused]
    assert reasons[0].startswith("unknown trigger 'teleport'; known: accept, reject")
    assert "trigger: Input should be a valid string" in reasons[1]
    assert "comment: Input should be a valid string" in reasons[1]
    assert "(the whole payload): Input should be a valid dictionary" in reasons[2]
    assert state.status == "submitted"
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


@pytest.mark.parametrize(
    "changes, problems",
    [
        ({"id": ""}, ["id: String should have at least 1 character"]),
        ({"customer": {"email": "not-an-address"}}, ["customer.email: value is not a valid email address"]),
        ({"jobs": []}, ["jobs: List should have at least 1 item"]),
        ({"jobs": [{"id": "J1", "quantity": "many"}], "price": {"amount": "cheap"}},
         ["jobs.0.quantity: Input should be a valid integer", "price.amount: Input should be a valid decimal"]),
    ],
)
async def test_invalid_order_input_fails_the_workflow_at_once_naming_each_bad_field(
    client, dev_worker, smtp, changes, problems
):
    order = sample_order(**changes)
    handle = await client.start_workflow(
        "OrderWorkflow", order, id=f"order-bad-{uuid.uuid4().hex[:8]}", task_queue=dev_worker.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    message = failure.value.cause.message
    assert message.startswith("invalid order input: ")
    assert message.endswith("Fix the JSON and start the workflow again.")
    for problem in problems:
        assert problem in message
    assert smtp.messages == []


async def test_an_order_without_an_id_field_fails_naming_it(client, dev_worker, smtp):
    order = sample_order()
    del order["id"]
    handle = await client.start_workflow("OrderWorkflow", order, id="order-no-id", task_queue=dev_worker.task_queue)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "id: Field required" in failure.value.cause.message


async def _refused(handle, count: int = 1) -> OrderState | None:
    state = await order_state(handle)
    return state if len(state.refused) >= count else None


async def test_with_the_smtp_server_down_emails_wait_retry_and_arrive_once_it_is_back(client, task_queue, settings):
    port = free_port()  # nothing listens here until the test starts a capture: the server is down
    async with build_worker(client, with_smtp_port(settings, port), task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _attempts(handle, at_least=2), what="the first email being retried")
        state = await order_state(handle)
        # Each lane's first email is retried, the customer's next one waits behind it (it would fail alike and must
        # not arrive first); the operators' notice has a lane of its own.
        assert sorted((p.email_trigger, p.status) for p in state.emails_pending) == [
            ("order_accepted", "queued"), ("order_received", "sending"), ("order_received_operator", "sending")
        ]
        assert state.status == "accepted"  # status changes are not held up by the mail server
        assert f"cannot reach the SMTP server 127.0.0.1:{port}" in state.emails_pending[0].last_error
        with SmtpCapture(port=port) as back:
            await eventually(lambda: len(back.messages) >= 3, timeout=30, what="three emails after the server is back")
            await handle.signal("change_status", {"trigger": "cancel"})
            await handle.result()
            ids = [m.parsed()["Message-ID"] for m in back.messages]
    assert len(ids) == len(set(ids)) == 5  # received, operator copy, accepted, cancelled x2: each exactly once


async def test_an_order_over_budget_waits_for_an_approver_who_approves_it(client, dev_worker, smtp):
    order = sample_order(budget={"limit": "200.00", "approvers": ["head@example.org"]})
    handle = await start(client, dev_worker, order)
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    assert (await order_state(handle)).status == "awaiting_approval"
    await handle.signal("change_status", {"trigger": "accept"})  # operators must wait for the approver
    await handle.signal("approve", {"by": "head@example.org", "comment": "OK for this once"})  # relayed to budget-<id>
    await eventually(lambda: _status_is(handle, "submitted"), what="the order moved by the approval")
    await handle.signal("change_status", {"trigger": "accept"})
    await handle.signal("change_status", {"trigger": "cancel"})
    state = await handle.result()
    assert [c.trigger for c in state.changes] == ["request_approval", "approve_budget", "accept", "cancel"]
    assert "'accept' is not allowed while the order is 'awaiting_approval'" in state.refused[0].reason
    request = messages_to(smtp, "head@example.org")[0].parsed()
    assert request["Subject"] == f"Approbation requise : la commande {order['id']} dépasse son budget"
    assert re.search(r"coûte 240,00\s€", request.get_body(("plain",)).get_content())
    customer = [m.parsed()["Subject"] for m in messages_to(smtp, "marie@example.org")]
    assert f"Le budget de votre commande {order['id']} a été approuvé" in customer


async def test_an_approvers_signal_on_an_order_within_budget_is_refused(client, dev_worker, smtp):
    handle = await start(client, dev_worker, sample_order())
    await handle.signal("reject", {"by": "head@example.org"})
    state = await eventually(lambda: _refused(handle), what="the refusal")
    assert state.refused[0].kind == "reject"
    assert state.refused[0].reason == "the order is not waiting for a budget approval"
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


async def test_operators_can_list_orders_by_status_through_the_search_attribute(client, dev_worker, smtp):
    order = sample_order()
    handle = await start(client, dev_worker, order)
    await handle.signal("change_status", {"trigger": "accept"})
    query = f'WorkflowId = "order-{order["id"]}" AND OrderStatus = "accepted"'
    found = await eventually(lambda: _ids(client, query), what="the order listed as accepted")
    assert found == [f"order-{order['id']}"]
    await handle.signal("change_status", {"trigger": "cancel"})
    await handle.result()


async def test_an_automatic_status_email_writes_six_history_events_the_floor_of_its_design(client, dev_worker, smtp):
    """What an automatic email costs the server (bench/order_emails.py weighs it against a bare workflow): the
    status change's signal, one workflow task, the send's local-activity marker and the one upsert of OrderStatus
    that the spec asks for. Those six are the floor: an extra task, an activity instead of a local one (three events
    and a task queue round trip more) or a second upsert fails here. Each change is awaited in history, not by a
    query: a query answered while the task's local activity runs makes the SDK end that task early."""
    order = sample_order()
    handle = await start(client, dev_worker, order)
    await eventually(lambda: task_settled(handle, "MARKER_RECORDED", 1), what="order_received sent and its task done")
    task = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]
    for n, trigger in enumerate(("accept", "start_production", "complete"), start=2):
        before = len(await event_names(handle))
        await handle.signal("change_status", {"trigger": trigger, "by": "Léa"})
        await eventually(lambda: task_settled(handle, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", n), what=f"{trigger}: its email's task done")
        assert (await event_names(handle))[before:] == [
            "WORKFLOW_EXECUTION_SIGNALED", *task, "MARKER_RECORDED", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
        ], trigger  # fmt: skip
    assert len(messages_to(smtp, "marie@example.org")) == 4
    await handle.signal("change_status", {"trigger": "ship"})
    assert (await handle.result()).status == "shipped"


async def _status_is(handle, status: str) -> bool:
    return (await order_state(handle)).status == status


async def _ids(client, query: str) -> list[str]:
    return [w.id async for w in client.list_workflows(query)]


async def _attempts(handle, at_least: int) -> bool:
    description = await handle.describe()
    pending = description.raw_description.pending_activities
    return bool(pending) and pending[0].attempt >= at_least


async def test_a_permanent_refusal_is_held_as_a_draft_the_operators_are_told_and_the_order_goes_on(client, task_queue, refusing_smtp):
    """Nothing lost: the customer's emails that the server refuses for good wait as drafts with the reason; the
    operators hear of each at once; the cancelled order stays open until the drafts are settled."""
    handler, refusing = refusing_smtp
    handler.replies["marie@example.org"] = "550 5.1.1 mailbox unavailable"
    async with build_worker(client, refusing, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "cancel"})
        state = await eventually(lambda: _with_drafts(handle, 2), what="both refused emails held as drafts")
        assert state.status == "cancelled" and state.emails_failed == []
        assert [(d.id, d.email_trigger, d.to) for d in state.drafts_pending] == [
            ("d1", "order_received", ["marie@example.org"]), ("d2", "order_cancelled", ["marie@example.org"])
        ]
        assert state.drafts_pending[0].reason.startswith("127.0.0.1:")
        assert "550 5.1.1 mailbox unavailable" in state.drafts_pending[0].reason
        # The operators' own emails are not held up, and each held draft is announced to them (draft_waiting).
        await eventually(lambda: len(handler.delivered) == 4, what="the operators' emails and two draft_waiting notices")
        assert handler.delivered == [["ops@example.com"]] * 4
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        for draft_id in ("d1", "d2"):
            await handle.signal("discard_draft", {"draft_id": draft_id, "reason": "address unknown", "by": "Léa"})
        state = await handle.result()
    assert state.drafts_pending == [] and state.emails_failed == []
    assert sorted((e.email_trigger, e.audience) for e in state.emails_sent) == [
        ("draft_waiting", "operators"), ("draft_waiting", "operators"),
        ("order_cancelled", "operators"), ("order_received_operator", "operators"),
    ]
    discarded = [c for c in state.changes if c.trigger == "discard_draft"]
    assert [(c.by, c.comment) for c in discarded] == [
        ("Léa", "d1: order_received to marie@example.org; address unknown"),
        ("Léa", "d2: order_cancelled to marie@example.org; address unknown"),
    ]


async def _with_drafts(handle, count: int) -> OrderState | None:
    state = await order_state(handle)
    return state if len(state.drafts_pending) >= count else None


async def test_after_a_partial_send_only_the_audiences_left_are_retried(client, task_queue, refusing_smtp):
    handler, flaky = refusing_smtp
    async with build_worker(client, flaky, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await eventually(lambda: len(handler.delivered) == 2, what="the two order_received emails")
        handler.replies["ops@example.com"] = "451 4.3.0 try again later"
        await handle.signal("change_status", {"trigger": "cancel"})
        pending = await eventually(lambda: _retrying(handle), what="the operators' copy being retried")
        assert "451 4.3.0 try again later" in pending.last_error
        del handler.replies["ops@example.com"]
        state = await handle.result()
    assert handler.delivered == [["marie@example.org"], ["ops@example.com"], ["marie@example.org"], ["ops@example.com"]]
    assert [(e.email_trigger, e.audience) for e in state.emails_sent][-2:] == [
        ("order_cancelled", "customer"), ("order_cancelled", "operators")
    ]
    assert state.emails_failed == []


async def _retrying(handle):
    state = await order_state(handle)
    return next((p for p in state.emails_pending if p.last_error), None)


async def test_recipients_refused_while_others_were_accepted_are_reported_in_the_state(client, task_queue, refusing_smtp):
    handler, refusing = refusing_smtp
    handler.replies["gone@example.com"] = "550 5.1.1 no such user"
    two_operators = refusing.model_copy(update={"operators": ["ops@example.com", "gone@example.com"]})
    async with build_worker(client, two_operators, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "cancel"})
        state = await handle.result()
    refused = [n for n in state.email_notes if "gone@example.com" in n]
    assert refused == [
        "order_received_operator: gone@example.com refused by the server: 550 5.1.1 no such user",
        "order_cancelled: gone@example.com refused by the server: 550 5.1.1 no such user",
    ]
    assert [e.to for e in state.emails_sent if e.audience == "operators"] == [["ops@example.com"], ["ops@example.com"]]


async def test_an_email_whose_attachment_is_missing_waits_visibly_and_goes_once_the_file_is_there(
    client, task_queue, settings, smtp, tmp_path
):
    store = tmp_path / "documents"
    (store / "PO-A").mkdir(parents=True)
    attaching = settings.model_copy(
        update={
            "emails": type(settings.emails)(order_completed={"attachments": ["document"]}),
            "documents": settings.documents.model_copy(update={"root": store}),
        }
    )
    order = sample_order(f"PO-{uuid.uuid4().hex[:6]}", jobs=[{"id": "J1", "name": "Flyers", "document": "PO-A/final.pdf"}])
    async with build_worker(client, attaching, task_queue=task_queue):
        handle = await start_on(client, task_queue, order)
        for trigger in ("accept", "start_production", "complete"):
            await handle.signal("change_status", {"trigger": trigger})
        pending = await eventually(lambda: _retrying(handle), what="order_completed waiting for its attachment")
        assert pending.email_trigger == "order_completed"
        assert pending.last_error == f"the final document of job J1: PO-A/final.pdf is not in the document store {store}; put it there"
        (store / "PO-A" / "final.pdf").write_bytes(b"%PDF-1.7 final")
        await eventually(lambda: len(messages_to(smtp, "marie@example.org")) == 4, what="order_completed, once the file is there")
        await handle.signal("change_status", {"trigger": "ship"})
        state = await handle.result()
    completed = [m.parsed() for m in messages_to(smtp, "marie@example.org")][3]
    assert [a.get_filename() for a in completed.iter_attachments()] == ["final.pdf"]
    assert [e.attachments for e in state.emails_sent if e.email_trigger == "order_completed"] == [["final.pdf"]]
    assert state.emails_failed == []


async def test_cancelling_the_workflow_while_an_email_retries_ends_it_without_a_failed_email(client, task_queue, settings):
    """`temporal workflow cancel` (the Web UI's Request Cancellation) stops the order's workflow: the email being
    retried stops too, and nothing is recorded as failed that did not fail."""
    down = with_smtp_port(settings, free_port())
    async with build_worker(client, down, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await eventually(lambda: _attempts(handle, at_least=2), what="the first email being retried")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        assert isinstance(ended.value.cause, CancelledError)
        state = await order_state(handle)
    assert state.emails_failed == [] and state.emails_sent == []
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_cancelling_the_workflow_while_a_draft_waits_ends_it_and_sends_nothing(client, task_queue, settings, smtp):
    drafting = settings.model_copy(update={"emails": type(settings.emails)(order_accepted={"edit_before_send": True})})
    async with build_worker(client, drafting, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "accept"})
        await eventually(lambda: _with_drafts(handle, 1), what="the acceptance held")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await order_state(handle)
    assert state.emails_failed == [] and [d.id for d in state.drafts_pending] == ["d1"]
    assert [e.email_trigger for e in state.emails_sent] == ["order_received", "order_received_operator"]
    assert not [m for m in messages_to(smtp, "marie@example.org") if "acceptée" in m.parsed()["Subject"]]


class BuggyEmails(EmailActivities):
    """printroom's own activities with a bug injected into building one email (a fault, not a stand-in: the
    SMTP server and Temporal are real)."""

    async def _send_one(self, request, audience, to, cc, notes, only=None):  # type: ignore[override]
        if request.email_trigger == "order_accepted":
            raise KeyError("lang")
        return await super()._send_one(request, audience, to, cc, notes, only)


async def test_an_unexpected_error_is_not_retried_for_ever_and_later_emails_still_go(client, task_queue, settings, smtp):
    emails = BuggyEmails.from_settings(settings)
    async with build_worker(client, settings, task_queue=task_queue, emails=emails):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "accept"})
        await handle.signal("change_status", {"trigger": "start_production"})
        await eventually(lambda: [m for m in messages_to(smtp, "marie@example.org") if "en production" in m.parsed()["Subject"]],
                         what="the next email, not held up by the bug")  # fmt: skip
        state = await order_state(handle)
        (held,) = state.drafts_pending  # the customer's acceptance waits for an operator, with why
        assert held.email_trigger == "order_accepted"
        assert held.reason == "unexpected KeyError: 'lang' (a bug of printroom's; please report it)"
        assert (await handle.describe()).raw_description.pending_activities == []  # nothing retrying
        await handle.signal("discard_draft", {"draft_id": held.id})
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()


async def test_a_server_greylisting_one_of_three_recipients_gets_the_email_retried_for_that_one_alone(client, task_queue, refusing_smtp):
    handler, greylisting = refusing_smtp
    sender = greylisting.sender.model_copy(update={"cc": ["archive@example.com", "boss@example.com"]})
    greylisting = greylisting.model_copy(
        update={"sender": sender, "emails": type(greylisting.emails)(order_cancelled={"cc": True})}
    )
    handler.replies["boss@example.com"] = "451 4.7.1 greylisted, try again in a minute"
    async with build_worker(client, greylisting, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await handle.signal("change_status", {"trigger": "cancel"})
        retrying = await eventually(lambda: _retrying(handle), what="boss@ being retried")
        assert retrying.email_trigger == "order_cancelled" and "451 4.7.1 greylisted" in retrying.last_error
        del handler.replies["boss@example.com"]  # the greylist lets it through now
        state = await handle.result()
    customer_copies = [r for r in handler.delivered if "marie@example.org" in r or "boss@example.com" in r]
    assert customer_copies == [
        ["marie@example.org"],  # order_received
        ["marie@example.org", "archive@example.com"],  # order_cancelled, boss put off
        ["boss@example.com"],  # the retry, for boss alone
    ]
    assert len([e for e in state.emails_sent if e.email_trigger == "order_cancelled" and "boss@example.com" in e.cc]) == 1
    assert state.emails_failed == []


class SlowToAnswer:
    """Keeps each message, then takes 9 s to say 250: longer than the first attempt's 8 s."""

    def __init__(self) -> None:
        self.kept: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.kept.append(envelope.content.decode(errors="replace"))
        await asyncio.sleep(9)
        return "250 OK"


async def test_a_transfer_slower_than_the_first_attempt_finishes_and_is_never_sent_twice(client, task_queue, settings):
    """The first attempt is cut at 8 s while the server takes 9 s to say 250: the transaction finishes all the
    same and is recorded; the retried attempt waits on its live claim, then finds it sent. One copy."""
    slow = SlowToAnswer()
    controller = Controller(slow, hostname="127.0.0.1", port=free_port())
    controller.start()
    quiet = settings.model_copy(update={
        "emails": type(settings.emails)(order_received_operator={"send": "never"}),
        "smtp": settings.smtp.model_copy(update={"timeout_seconds": 30}),  # we wait for the server's answer
    })  # fmt: skip
    try:
        async with build_worker(client, with_smtp_port(quiet, controller.port), task_queue=task_queue):
            handle = await start_on(client, task_queue, sample_order())
            state = await eventually(lambda: _sent(handle, "order_received"), timeout=60, what="order_received, slowly")
            await handle.terminate("test over")
    finally:
        controller.stop()
    ids = [re.search(r"Message-ID: (<[^>]+>)", m).group(1) for m in slow.kept]  # type: ignore[union-attr]
    assert [i.split(".")[1] for i in ids] == ["order_received"], ids
    assert any("was accepted by the server on an earlier attempt; not sent again" in n for n in state.email_notes)
    assert not any("twice" in n for n in state.email_notes)
    assert state.emails_failed == [] and state.drafts_pending == []


async def _sent(handle, email_trigger: str) -> OrderState | None:
    state = await order_state(handle)
    return state if email_trigger in [e.email_trigger for e in state.emails_sent] else None


async def test_cancelling_the_workflow_while_an_email_is_being_taken_by_the_server_lets_it_finish_once(client, task_queue, settings):
    """The email in flight finishes (the server has it: it is recorded, never cut in the middle of DATA), the
    order's workflow ends as Canceled, nothing is recorded as failed, and its history (a cancel that crossed a
    local activity's result) replays."""
    slow = SlowToAnswer()
    controller = Controller(slow, hostname="127.0.0.1", port=free_port())
    controller.start()
    quiet = settings.model_copy(update={
        "emails": type(settings.emails)(order_received_operator={"send": "never"}),
        "smtp": settings.smtp.model_copy(update={"timeout_seconds": 30}),
    })  # fmt: skip
    try:
        async with build_worker(client, with_smtp_port(quiet, controller.port), task_queue=task_queue):
            handle = await start_on(client, task_queue, sample_order())
            await eventually(lambda: slow.kept, what="the server taking order_received")
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            state = await order_state(handle)
            await asyncio.sleep(10)  # the server's 250 comes 9 s after it took the message
            records = list(quiet.deliveries_dir.glob("*.sent"))
    finally:
        controller.stop()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert len(slow.kept) == 1 and state.emails_failed == []
    assert len(records) == 1  # finished and recorded: no retry, anywhere, would send it again
    replayed = await Replayer(workflows=[], plugins=[PrintroomPlugin(Settings())]).replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None


async def test_operators_emails_link_to_the_order_in_the_web_ui_and_the_customers_to_the_shop(client, task_queue, settings, smtp):
    with_ui = settings.model_copy(update={"temporal": settings.temporal.model_copy(update={"ui_url": "https://temporal.example.org/"})})
    async with build_worker(client, with_ui, task_queue=task_queue):
        handle = await start_on(client, task_queue, sample_order())
        await eventually(lambda: messages_to(smtp, "ops@example.com"), what="order_received_operator")
        await handle.signal("change_status", {"trigger": "cancel"})
        await handle.result()
    page = f"https://temporal.example.org/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
    operators = messages_to(smtp, "ops@example.com")[0].parsed().get_body(("html",)).get_content()
    customer = messages_to(smtp, "marie@example.org")[0].parsed().get_body(("html",)).get_content()
    assert f'href="{page}"' in operators and "shop.example.com" not in operators
    assert "https://shop.example.com/orders/" in customer and "temporal.example.org" not in customer


async def test_cancelling_the_workflow_while_an_approval_waits_ends_it_and_nothing_fails(client, dev_worker, smtp):
    handle = await start(client, dev_worker, sample_order(budget={"limit": "200.00", "approvers": ["head@example.org"]}))
    await eventually(lambda: messages_to(smtp, "head@example.org"), what="the approval request")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    state = await order_state(handle)
    assert state.status == "awaiting_approval" and state.emails_failed == []
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
