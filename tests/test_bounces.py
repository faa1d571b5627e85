"""Bounces back on the order (issue 24) on a real Temporal dev server and a real SMTP server: recorded once, shown,
the customer's email held again for an operator who corrects the address, and nothing a bounce says ever sent to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from printroom.activities.compose import run_tag
from printroom.cli.capture import SmtpCapture
from printroom.models import BOUNCE_WATCH_ID, Draft, DraftSent, OrderState, SentEmail
from printroom.settings import BounceSettings, Settings
from printroom.worker.main import build_worker
from printroom.workflows.order import EMAIL_BOUNCED
from tests.conftest import eventually, messages_to, order_state, sample_order

CUSTOMER = "müller@bücher.example"
USER_UNKNOWN = "550 5.1.1 <müller@bücher.example>: Benutzer unbekannt"


async def started(client: Client, task_queue: str, **order: Any) -> tuple[WorkflowHandle[Any, Any], SentEmail]:
    """An order whose receipt reached the customer (müller@bücher.example), and that receipt."""
    data = sample_order(customer={"name": "Jürgen Müller", "email": CUSTOMER, "wants_status_emails": True}, **order)
    handle = await client.start_workflow("OrderWorkflow", data, id=f"order-{data['id']}", task_queue=task_queue, result_type=OrderState)
    state = await eventually(lambda: _with(handle, lambda s: [e for e in s.emails_sent if e.audience == "customer"]), what="the receipt sent")
    (receipt,) = [e for e in state.emails_sent if e.audience == "customer"]
    return handle, receipt


async def _with(handle: WorkflowHandle[Any, Any], check: Any) -> OrderState | None:
    state = await order_state(handle)
    return state if check(state) else None


def bounce(message_id: str, recipient: str = CUSTOMER, status: str = "5.1.1", permanent: bool = True, diagnostic: str = USER_UNKNOWN) -> dict[str, Any]:
    return {"message_id": message_id, "recipient": recipient, "status": status, "permanent": permanent, "diagnostic": diagnostic}


async def bounced(handle: WorkflowHandle[Any, Any]) -> bool | None:
    return (await handle.describe()).typed_search_attributes.get(EMAIL_BOUNCED)


async def test_a_customer_email_that_bounces_is_held_again_and_sent_to_the_corrected_address_which_the_order_keeps(
    client, dev_worker, smtp: SmtpCapture
):
    handle, receipt = await started(client, dev_worker.task_queue)
    assert await bounced(handle) is None  # not set on orders that never bounced
    await handle.signal("email_bounced", bounce(receipt.message_id))
    await handle.signal("email_bounced", bounce(receipt.message_id))  # the watcher reading it twice: recorded once
    state = await eventually(lambda: _with(handle, lambda s: s.drafts_pending), what="the copy held")
    (record,) = state.bounces
    assert (record.email_trigger, record.audience, record.recipient, record.status, record.permanent) == (
        "order_received", "customer", CUSTOMER, "5.1.1", True
    )
    assert record.diagnostic == USER_UNKNOWN and record.outcome == "a copy held for an operator as draft d1"
    assert await bounced(handle) is True
    (draft,) = await handle.query("drafts", result_type=list[Draft])
    assert draft.reason == f"bounced: 5.1.1 {USER_UNKNOWN}" and draft.from_bounce and not draft.rules.may_edit_to
    assert (draft.email_trigger, draft.to, draft.subject) == ("order_received", [CUSTOMER], receipt.subject)
    assert draft.message_id != receipt.message_id  # its own, so that it may go again to the same address
    # The operators hear of it at once, as of any draft a failure held.
    await eventually(lambda: [m for m in messages_to(smtp, "ops@example.com") if "d1" in m.parsed()["Subject"]], what="draft_waiting")
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    assert "- BOUNCED order_received to müller@bücher.example: 5.1.1 550 5.1.1 \\<müller@bücher.example\\>" in details
    assert "held because: bounced: 5.1.1" in details

    # drafts.operator_may_edit_to is off, yet a bounced email's To may be corrected.
    sent = await handle.execute_update(
        "edit_and_send", {"draft_id": "d1", "to": ["juergen.mueller@example.org"], "by": "Léa"}, result_type=DraftSent
    )
    assert sent.to == ["juergen.mueller@example.org"] and sent.message_id == draft.message_id
    (again,) = messages_to(smtp, "juergen.mueller@example.org")
    assert again.parsed()["Subject"] == receipt.subject
    state = await order_state(handle)
    (correction,) = state.address_corrections
    assert (correction.original, correction.corrected, correction.draft_id, correction.by) == (CUSTOMER, "juergen.mueller@example.org", "d1", "Léa")
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    assert "- customer address corrected: müller@bücher.example → juergen.mueller@example.org (d1)" in details

    # Later emails of the order go to the corrected address; the bounced one hears nothing more.
    before = len(messages_to(smtp, CUSTOMER))
    await handle.signal("change_status", {"trigger": "accept", "by": "Léa"})
    await eventually(lambda: len(messages_to(smtp, "juergen.mueller@example.org")) == 2, what="order_accepted to the corrected address")
    assert len(messages_to(smtp, CUSTOMER)) == before
    # A bounce of the copy itself is one of the order's own emails too.
    await handle.signal("email_bounced", bounce(sent.message_id, "juergen.mueller@example.org", "4.2.2", False, "mailbox full"))
    state = await eventually(lambda: _with(handle, lambda s: len(s.bounces) == 2), what="the second bounce recorded")
    assert state.bounces[-1].outcome.startswith("recorded only") and not state.drafts_pending


async def test_a_bounce_that_is_not_for_one_of_this_runs_emails_is_refused_and_changes_nothing(client, dev_worker, smtp):
    handle, receipt = await started(client, dev_worker.task_queue)
    order_id = handle.id.removeprefix("order-")
    run = run_tag((await handle.describe()).run_id)
    other_run = receipt.message_id.replace(f".r{run}@", f".r{run_tag('another run')}@")
    never_sent = receipt.message_id.replace(".order_received.1.", ".order_shipped.1.")
    payloads = {
        "foreign": bounce("<CAF=3Dx7@mail.gmail.com>"),
        "other order": bounce(receipt.message_id.replace(order_id, "PO-other")),
        "other run": bounce(other_run),
        "never sent": bounce(never_sent),
        "malformed": {"message_id": receipt.message_id, "recipient": CUSTOMER, "status": "550", "permanent": True},
        "too long": bounce(receipt.message_id, diagnostic="é" * 2001),
    }
    for payload in payloads.values():
        await handle.signal("email_bounced", payload)
    state = await eventually(lambda: _with(handle, lambda s: len(s.refused) == len(payloads)), what="every bounce refused")
    reasons = dict(zip(payloads, (r.reason for r in state.refused)))
    assert all(r.kind == "email_bounced" for r in state.refused)
    assert "is not a Message-ID printroom wrote" in reasons["foreign"]
    assert "names order PO-other of shop default, not this order" in reasons["other order"]
    assert "another run of order" in reasons["other run"]
    assert reasons["never sent"].startswith("this order sent no email with Message-ID")
    assert reasons["malformed"].startswith("malformed payload: status") and "diagnostic" in reasons["too long"]
    assert state.bounces == [] and state.drafts_pending == []
    assert await bounced(handle) is None


async def test_temporary_bounces_and_bounces_of_the_operators_copies_are_recorded_and_nothing_more(client, dev_worker, smtp):
    handle, receipt = await started(client, dev_worker.task_queue)
    state = await order_state(handle)
    (operators,) = [e for e in state.emails_sent if e.audience == "operators"]
    await handle.signal("email_bounced", bounce(receipt.message_id, status="4.2.2", permanent=False, diagnostic="452 4.2.2 Postfach voll"))
    await handle.signal("email_bounced", bounce(operators.message_id, "ops@example.com", diagnostic="550 5.1.1 no such user"))
    state = await eventually(lambda: _with(handle, lambda s: len(s.bounces) == 2), what="both recorded")
    temporary, to_operators = state.bounces
    assert temporary.outcome == "recorded only: not a failure for good (4.2.2, temporary)"
    assert to_operators.audience == "operators" and to_operators.outcome.startswith("recorded only: an email to the operators")
    assert state.drafts_pending == [] and state.refused == []
    assert await bounced(handle) is True


async def test_a_crafted_bounce_can_only_hold_a_draft_for_the_customers_own_address(client, dev_worker, smtp: SmtpCapture):
    """A bounce names an attacker's address and a huge diagnostic: the copy is held for the address the order sent
    to, and nothing is sent to anyone but the operators' draft_waiting."""
    handle, receipt = await started(client, dev_worker.task_queue)
    await eventually(lambda: len(smtp.messages) == 2, what="the receipt and the operators' copy")
    diagnostic = "Ω" * 2000  # long and not ASCII, at the bound
    await handle.signal("email_bounced", bounce(receipt.message_id, "attacker@evil.example", diagnostic=diagnostic))
    state = await eventually(lambda: _with(handle, lambda s: s.drafts_pending), what="the copy held")
    (draft,) = await handle.query("drafts", result_type=list[Draft])
    assert draft.to == [CUSTOMER] and "attacker@evil.example" in draft.reason and diagnostic in draft.reason
    await eventually(lambda: len(smtp.messages) == 3, what="draft_waiting")
    assert [m.rcpt_tos for m in smtp.messages[2:]] == [["ops@example.com"]]
    assert not [m for m in smtp.messages if any("evil" in r for r in m.rcpt_tos)]
    assert state.address_corrections == [] and state.bounces[0].recipient == "attacker@evil.example"


async def test_a_cancelled_order_stays_open_while_a_bounced_copy_waits_and_the_operators_are_reminded(
    time_skipping_env: WorkflowEnvironment, settings: Settings, smtp: SmtpCapture, task_queue: str
):
    """The copy is a draft like any other: told at once, reminded after drafts.remind_after, and the order, cancelled
    meanwhile, closes only once an operator has dealt with it."""
    client = time_skipping_env.client
    reminding = settings.model_copy(update={"drafts": settings.drafts.model_copy(update={"remind_after": timedelta(hours=4), "max_reminders": 1})})
    async with build_worker(client, reminding, task_queue=task_queue):
        handle, receipt = await started(client, task_queue)
        await handle.signal("email_bounced", bounce(receipt.message_id))
        await eventually(lambda: _with(handle, lambda s: s.drafts_pending), what="the copy held")
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        await eventually(lambda: len(waiting_d1(smtp)) == 1, what="draft_waiting at once")
        await time_skipping_env.sleep(timedelta(hours=4, minutes=10))
        await eventually(lambda: len(waiting_d1(smtp)) == 2, what="the reminder")
        assert (await order_state(handle)).status == "cancelled"  # and still open: d1 waits
        await handle.signal("discard_draft", {"draft_id": "d1", "reason": "phoned the customer", "by": "Léa"})
        state: OrderState = await handle.result()
    assert state.drafts_pending == [] and [b.status for b in state.bounces] == ["5.1.1"]
    assert state.changes[-1].trigger == "discard_draft"


def waiting_d1(smtp: SmtpCapture) -> list[Any]:
    """draft_waiting about d1: "Non envoyé, retenu comme brouillon d1 : ...", then "Le brouillon d1 ... vous attend"."""
    return [m for m in messages_to(smtp, "ops@example.com") if "brouillon d1 " in m.parsed()["Subject"]]


@asynccontextmanager
async def watched_worker(client: Client, settings: Settings, task_queue: str, keep_orders_open: str) -> AsyncIterator[None]:
    """A worker whose settings read a mailbox (port 1: its polls fail and back off); the watcher it starts is ended
    with it, so that no other test finds it waiting on a queue no worker polls."""
    mailbox = BounceSettings(host="127.0.0.1", port=1, security="none", username="bounces", password="unused",
                             keep_orders_open=keep_orders_open)  # fmt: skip
    try:
        async with build_worker(client, settings.model_copy(update={"bounces": mailbox}), task_queue=task_queue):
            yield
    finally:
        await client.get_workflow_handle(BOUNCE_WATCH_ID).terminate("test over")


async def test_with_a_watched_mailbox_a_done_order_stays_open_for_a_bounce_of_its_last_email(client, settings, smtp, task_queue):
    """`order_cancelled` is the order's last email: with bounces read, the order waits bounces.keep_orders_open once
    done, so that its bounce still finds it and is held again for an operator."""
    async with watched_worker(client, settings, task_queue, keep_orders_open="1h"):
        handle, _ = await started(client, task_queue)
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        cancelled = lambda s: [e for e in s.emails_sent if e.email_trigger == "order_cancelled" and e.audience == "customer"]  # noqa: E731
        (last,) = cancelled(await eventually(lambda: _with(handle, cancelled), what="order_cancelled sent"))
        details = await eventually(lambda: _details_with(handle, "kept open for bounces until"), what="the order kept open")
        assert "- done; kept open for bounces until" in details and (await handle.describe()).status.name == "RUNNING"
        await handle.signal("email_bounced", bounce(last.message_id))
        (draft,) = await eventually(lambda: _drafts_held(handle), what="the cancellation's copy held")
        assert draft.email_trigger == "order_cancelled" and draft.reason.startswith("bounced: 5.1.1")
        await handle.terminate("test over")


async def test_a_done_order_closes_once_the_time_kept_for_bounces_has_passed(client, settings, smtp, task_queue):
    async with watched_worker(client, settings, task_queue, keep_orders_open="1s"):
        handle, _ = await started(client, task_queue)
        await handle.signal("change_status", {"trigger": "cancel", "by": "Léa"})
        final: OrderState = await handle.result()
    assert final.status == "cancelled"
    events = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_TIMER_FIRED in events  # the time kept open was a timer of its own


async def _details_with(handle: WorkflowHandle[Any, Any], text: str) -> str | None:
    details = (await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
    return details if text in details else None


async def _drafts_held(handle: WorkflowHandle[Any, Any]) -> list[Draft] | None:
    return await handle.query("drafts", result_type=list[Draft]) or None
