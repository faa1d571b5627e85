"""The email activity against a real SMTP server (aiosmtpd): policy, delivery, and how failures are classified."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from printroom.activities.deliveries import DeliveryLog
from printroom.activities.email import EmailActivities
from printroom.activities.smtp import SmtpTransport
from printroom.cli.capture import SmtpCapture
from printroom.models import BouncedDraftRequest, Order, StatusEmailBatch, StatusEmailRequest
from printroom.settings import EmailPolicies, Settings, ShopSettings
from aiosmtpd.controller import Controller

from tests.conftest import Refusing, eventually, free_port, sample_order, with_smtp_port


def activities_for(settings: Settings) -> EmailActivities:
    return EmailActivities.from_settings(settings)


def request(trigger: str, **order_changes: Any) -> StatusEmailRequest:
    order = Order.model_validate(sample_order("PO-7", **order_changes))
    return StatusEmailRequest(order=order, email_trigger=trigger, status="accepted")


async def send(settings: Settings, req: StatusEmailRequest):
    return await ActivityEnvironment().run(activities_for(settings).send_status_email, req)


async def test_the_email_arrives_with_envelope_headers_and_both_parts(settings, smtp: SmtpCapture):
    result = await send(settings, request("order_accepted"))
    assert [m.rcpt_tos for m in smtp.messages] == [["marie@example.org"]]
    assert smtp.messages[0].mail_from == "printroom@example.com"
    parsed = smtp.messages[0].parsed()
    assert parsed["Message-ID"] == "<PO-7.order_accepted.1.customer@example.com>"
    assert parsed["Subject"] == "Votre commande PO-7 a été acceptée"
    assert parsed.get_body(("plain",)) is not None and parsed.get_body(("html",)) is not None
    assert [(e.audience, e.to, e.message_id) for e in result.sent] == [
        ("customer", ["marie@example.org"], "<PO-7.order_accepted.1.customer@example.com>")
    ]


async def test_on_customer_request_sends_only_what_the_customer_asked_for(settings, smtp):
    customer = {"email": "marie@example.org", "wants_status_emails": ["order_shipped"]}
    notes = await send(settings, request("order_accepted", customer=customer))
    shipped = await send(settings, request("order_shipped", customer={**customer, "wants_status_emails": False}))
    assert notes.sent == [] and notes.notes == ["order_accepted: the customer did not ask for this status email"]
    # order_shipped is sent "always" by default: the customer's choice does not apply.
    assert [m.parsed()["Subject"] for m in smtp.messages] == ["Votre commande PO-7 a été expédiée"]
    assert len(shipped.sent) == 1


async def test_a_trigger_switched_off_sends_nothing_and_says_why(settings, smtp):
    settings = settings.model_copy(update={"emails": type(settings.emails)(order_rejected={"send": "never"})})
    result = await send(settings, request("order_rejected"))
    assert result.sent == [] and smtp.messages == []
    assert result.notes == ["order_rejected: switched off in the settings (emails.order_rejected.send = never)"]


async def test_cancellation_goes_to_the_customer_and_the_operators_as_two_emails(settings, smtp):
    result = await send(settings, request("order_cancelled"))
    assert sorted(tuple(m.rcpt_tos) for m in smtp.messages) == [("marie@example.org",), ("ops@example.com",)]
    assert {e.audience for e in result.sent} == {"customer", "operators"}
    assert len({e.message_id for e in result.sent}) == 2


async def test_the_smtp_server_down_is_a_retryable_error_naming_the_server(settings):
    down = with_smtp_port(settings, free_port())
    with pytest.raises(ApplicationError) as error:
        await send(down, request("order_shipped"))
    assert error.value.type == "SmtpTransientError"
    assert not error.value.non_retryable
    assert f"cannot reach the SMTP server 127.0.0.1:{down.smtp.port}" in error.value.message


async def test_a_5xx_refusal_holds_that_audiences_email_as_a_draft_with_the_reason_and_is_not_raised(refusing_smtp):
    handler, settings = refusing_smtp
    handler.replies["marie@example.org"] = "550 5.1.1 mailbox unavailable"
    result = await send(settings, request("order_cancelled"))
    (draft,) = result.drafts  # nothing lost: an operator reads why, and sends it later or discards it
    assert draft.audience == "customer" and draft.to == ["marie@example.org"]
    assert "550 5.1.1 mailbox unavailable" in draft.reason
    assert draft.subject == "La commande PO-7 a été annulée" and "PO-7" in draft.text and draft.html.startswith("<!DOCTYPE html>")
    assert draft.message_id == "<PO-7.order_cancelled.1.customer@example.com>"
    assert [e.audience for e in result.sent] == ["operators"]
    assert handler.delivered == [["ops@example.com"]]
    assert result.retry == [] and result.failed == []


async def test_an_operators_copy_refused_for_good_is_a_failure_not_a_draft(refusing_smtp):
    handler, settings = refusing_smtp
    handler.replies["ops@example.com"] = "550 5.1.1 mailbox unavailable"
    result = await send(settings, request("order_cancelled"))
    assert [(f.audience, "550 5.1.1 mailbox unavailable" in f.error) for f in result.failed] == [("operators", True)]
    assert result.drafts == [] and [e.audience for e in result.sent] == ["customer"]


async def test_a_passing_failure_after_one_audience_was_sent_hands_back_only_the_rest(refusing_smtp):
    handler, settings = refusing_smtp
    handler.replies["ops@example.com"] = "451 4.3.0 try again later"
    result = await send(settings, request("order_cancelled"))
    assert [e.audience for e in result.sent] == ["customer"]
    assert result.retry == ["operators"] and "451 4.3.0 try again later" in result.retry_reason
    del handler.replies["ops@example.com"]
    again = await send(settings, request("order_cancelled").model_copy(update={"audiences": result.retry}))
    assert [e.audience for e in again.sent] == ["operators"]
    assert handler.delivered == [["marie@example.org"], ["ops@example.com"]]  # the customer's email once


async def test_approvers_written_one_by_one_are_retried_only_where_not_reached(refusing_smtp):
    """Each approver has a message of their own (their own answer links): the server putting off the second hands
    back the second and those after, never the first, who has it."""
    from datetime import datetime, timedelta, timezone

    from printroom.models import ApprovalProgress
    from tests.web_helpers import with_web

    handler, settings = refusing_smtp
    approvers = ["a@example.org", "b@example.org", "c@example.org", "müller@bücher.example"]
    handler.replies["b@example.org"] = "451 4.3.0 try again later"
    now = datetime.now(timezone.utc)
    asking = request("approval_requested", budget={"limit": "100", "approvers": approvers}).model_copy(
        update={"approvers": approvers, "approval": ApprovalProgress(requested_at=now, answer_by=now + timedelta(days=4), approvers=approvers)}
    )
    result = await send(with_web(settings), asking)
    assert [e.to for e in result.sent] == [["a@example.org"]]
    assert result.retry == ["approvers"] and result.retry_recipients == {"approvers": approvers[1:]}
    del handler.replies["b@example.org"]
    again = await send(with_web(settings), asking.model_copy(update={"audiences": result.retry, "recipients": result.retry_recipients}))
    assert [e.to for e in again.sent] == [[a] for a in approvers[1:]]
    assert handler.delivered == [["a@example.org"], ["b@example.org"], ["c@example.org"], ["müller@xn--bcher-kva.example"]]


async def test_a_4xx_refusal_is_retried_as_the_emails_own_failure_not_the_servers(refusing_smtp):
    """A full mailbox is this email's problem: retried, and (its own type) holding up none of the order's others."""
    handler, settings = refusing_smtp
    handler.replies["marie@example.org"] = "452 4.2.2 mailbox full"
    with pytest.raises(ApplicationError) as error:
        await send(settings, request("order_shipped"))
    assert error.value.type == "SmtpRecipientsDeferred" and not error.value.non_retryable
    batch = await ActivityEnvironment().run(
        activities_for(settings).send_status_emails, StatusEmailBatch(requests=[request("order_shipped")])
    )
    (result,) = batch.results
    assert result.retry == ["customer"] and not result.retry_waits_for_server


async def test_when_some_operators_are_refused_the_others_still_get_it_and_the_refusal_is_reported(refusing_smtp):
    handler, settings = refusing_smtp
    settings = settings.model_copy(update={"operators": ["ops@example.com", "gone@example.com"]})
    handler.replies["gone@example.com"] = "550 no such user"
    result = await send(settings, request("order_received_operator"))
    assert handler.delivered == [["ops@example.com"]]
    assert result.sent[0].to == ["ops@example.com"]
    assert result.notes == ["order_received_operator: gone@example.com refused by the server: 550 no such user"]


async def test_a_shops_own_sender_replaces_the_print_rooms_for_that_shops_orders(settings, smtp):
    shops = {**settings.shops, "campus": ShopSettings(sender_address="shop@campus.example.org", sender_name="Campus Print")}
    settings = settings.model_copy(update={"shops": shops})
    await send(settings, request("order_shipped", shop="campus"))
    await send(settings, request("order_shipped", shop="elsewhere"))
    campus, other = (m.parsed() for m in smtp.messages)
    assert str(campus["From"]) == "Campus Print <shop@campus.example.org>"
    assert campus["Message-ID"].endswith("@campus.example.org>")
    assert "Campus Print" in campus.get_body(("plain",)).get_content()  # the signature follows the sender
    assert str(other["From"]) == "Salle d'impression <printroom@example.com>"


async def test_bounces_go_to_the_envelope_sender_and_replies_to_reply_to(settings, smtp):
    sender = settings.sender.model_copy(update={"envelope_from": "bounces@example.com", "reply_to": "help@example.com"})
    await send(settings.model_copy(update={"sender": sender}), request("order_shipped"))
    assert smtp.messages[0].mail_from == "bounces@example.com"
    assert smtp.messages[0].parsed()["Reply-To"] == "help@example.com"
    assert smtp.messages[0].parsed()["From"].addresses[0].addr_spec == "printroom@example.com"


async def test_cc_goes_on_the_customers_email_of_the_triggers_that_ask_for_it(settings, smtp):
    sender = settings.sender.model_copy(update={"cc": ["archive@example.com", "boss@example.com"]})
    emails = EmailPolicies(order_cancelled={"cc": True, "extra_cc": "sales@example.com"})
    settings = settings.model_copy(update={"sender": sender, "emails": emails})
    result = await send(settings, request("order_cancelled"))
    await send(settings, request("order_shipped"))  # its policy does not ask for Cc
    by_audience = {e.audience: e for e in result.sent}
    assert by_audience["customer"].cc == ["archive@example.com", "boss@example.com", "sales@example.com"]
    assert by_audience["operators"].cc == []
    customer = next(m for m in smtp.messages if "marie@example.org" in m.rcpt_tos and m.parsed()["Subject"].endswith("annulée"))
    assert customer.rcpt_tos == ["marie@example.org", "archive@example.com", "boss@example.com", "sales@example.com"]
    assert customer.parsed()["Cc"] == "archive@example.com, boss@example.com, sales@example.com"
    shipped = next(m for m in smtp.messages if m.parsed()["Subject"].endswith("expédiée"))
    assert shipped.rcpt_tos == ["marie@example.org"] and shipped.parsed()["Cc"] is None


async def test_a_retry_after_the_server_accepted_the_email_does_not_send_it_again(settings, smtp):
    first = await send(settings, request("order_shipped"))
    again = await send(settings, request("order_shipped"))  # e.g. the worker died before reporting success
    assert len(smtp.messages) == 1
    assert again.sent[0].message_id == first.sent[0].message_id and again.sent[0].to == ["marie@example.org"]
    assert again.notes == [f"order_shipped: {first.sent[0].message_id} was accepted by the server on an earlier attempt; not sent again"]


def died_mid_send(settings: Settings, msg_id: str) -> None:
    """As an attempt does just before the SMTP transaction, then dies: its claim stays, and nobody keeps it alive."""
    assert DeliveryLog(settings.deliveries_dir).claim(msg_id) is False
    claim = next(settings.deliveries_dir.glob("*.sending"))
    os.utime(claim, (time.time() - 60, time.time() - 60))


async def test_an_attempt_that_died_while_sending_is_reported_as_a_possible_duplicate(settings, smtp):
    msg_id = "<PO-7.order_shipped.1.customer@example.com>"
    died_mid_send(settings, msg_id)
    result = await send(settings, request("order_shipped"))
    assert len(smtp.messages) == 1
    assert result.notes == [
        f"order_shipped: an earlier attempt of {msg_id} stopped while sending; if the server had accepted it, "
        "the recipient gets it twice"
    ]


async def test_while_another_attempt_may_still_be_sending_this_one_does_not_and_is_retried(settings, smtp):
    """A timed-out attempt still running as its retry starts (a slow DATA): its claim is alive, so the retry
    sends nothing and fails as a passing failure, to try again later; never a second copy."""
    msg_id = "<PO-7.order_shipped.1.customer@example.com>"
    assert DeliveryLog(settings.deliveries_dir).claim(msg_id) is False  # the first attempt, still at it
    with pytest.raises(ApplicationError) as waiting:
        await send(settings, request("order_shipped"))
    assert waiting.value.type == "ClaimHeld" and not waiting.value.non_retryable
    assert f"{msg_id} is being sent by another attempt" in waiting.value.message
    assert smtp.messages == []


async def test_a_failed_attempt_leaves_a_clean_retry(settings, smtp):
    down = with_smtp_port(settings, free_port())
    with pytest.raises(ApplicationError):
        await send(down, request("order_shipped"))
    result = await send(settings, request("order_shipped"))
    assert len(smtp.messages) == 1 and result.notes == []


class SilentAfterData:
    """Takes the message, then drops the connection without a reply: the sender cannot know it was kept."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.kept.append(envelope.content)
        server.transport.abort()
        return "250 OK"


async def test_a_message_taken_without_an_answer_is_retried_and_reported_as_a_possible_duplicate(settings, smtp):
    from aiosmtpd.controller import Controller

    silent = SilentAfterData()
    controller = Controller(silent, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with pytest.raises(ApplicationError) as error:
            await send(with_smtp_port(settings, controller.port), request("order_shipped"))
    finally:
        controller.stop()
    assert len(silent.kept) == 1
    assert "took the message but gave no answer" in error.value.message and not error.value.non_retryable
    retried = await send(settings, request("order_shipped"))
    assert len(smtp.messages) == 1
    assert retried.notes == [
        "order_shipped: an earlier attempt of <PO-7.order_shipped.1.customer@example.com> stopped while sending; "
        "if the server had accepted it, the recipient gets it twice"
    ]


async def test_the_possible_duplicate_warning_survives_a_retry_that_fails_in_between(settings, smtp):
    died_mid_send(settings, "<PO-7.order_shipped.1.customer@example.com>")
    with pytest.raises(ApplicationError):  # the next one finds the server down
        await send(with_smtp_port(settings, free_port()), request("order_shipped"))
    retried = await send(settings, request("order_shipped"))
    assert len(smtp.messages) == 1
    assert retried.notes and "stopped while sending" in retried.notes[0]


async def test_a_worker_opens_no_more_smtp_connections_than_max_connections(settings):
    import asyncio

    from aiosmtpd.controller import Controller

    class Slow:
        open_now = most = 0

        async def handle_DATA(self, server, session, envelope):
            Slow.open_now += 1
            Slow.most = max(Slow.most, Slow.open_now)
            await asyncio.sleep(0.05)
            Slow.open_now -= 1
            return "250 OK"

    controller = Controller(Slow(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp_settings = settings.smtp.model_copy(update={"port": controller.port, "max_connections": 3})
        transport = SmtpTransport(smtp_settings)
        await asyncio.gather(*(
            transport.send(b"Subject: x\r\n\r\nx\r\n", envelope_from="a@example.com", recipients=["b@example.org"])
            for _ in range(12)
        ))  # fmt: skip
    finally:
        controller.stop()
    assert Slow.most == 3


async def test_an_international_address_goes_out_with_its_domain_in_ascii_and_its_local_part_in_utf8(settings, smtp):
    """SMTPUTF8 offered (as Postfix does): müller@bücher.example arrives, each header address valid (RFC 6532)."""
    idn_sender = settings.sender.model_copy(update={"address": "druckerei@bücher.example", "name": "Druckerei Müller"})
    settings = settings.model_copy(update={"sender": idn_sender})
    await send(settings, request("order_shipped", customer={"name": "Jürgen Müller", "email": "müller@bücher.example"}))
    await send(settings, request("order_rejected", customer={"email": "user@xn--bcher-kva.example"}))
    utf8, ascii_only = smtp.messages
    assert utf8.rcpt_tos == ["müller@xn--bcher-kva.example"] and utf8.mail_from == "druckerei@xn--bcher-kva.example"
    assert b"\r\nTo: m\xc3\xbcller@xn--bcher-kva.example\r\n" in utf8.data  # UTF-8, not one encoded-word
    assert b"\r\nFrom: =?utf-8?q?Druckerei_M=C3=BCller?= <druckerei@xn--bcher-kva.example>\r\n" in utf8.data
    assert utf8.parsed()["Message-ID"] == "<PO-7.order_shipped.1.customer@xn--bcher-kva.example>"
    assert ascii_only.rcpt_tos == ["user@xn--bcher-kva.example"] and b"\r\nTo: user@xn--bcher-kva.example\r\n" in ascii_only.data
    assert ascii_only.data.isascii()


async def test_without_smtputf8_a_non_ascii_local_part_is_held_with_the_reason_and_an_idn_domain_still_goes(settings):
    handler = Refusing()  # an older relay: aiosmtpd without SMTPUTF8
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    settings = with_smtp_port(settings, controller.port)
    held = await send(settings, request("order_shipped", customer={"email": "müller@bücher.example"}))
    (draft,) = held.drafts
    assert "does not offer SMTPUTF8, which this address needs" in draft.reason and handler.delivered == []
    sent = await send(settings, request("order_shipped", customer={"email": "info@bücher.example"}))
    controller.stop()
    assert handler.delivered == [["info@xn--bcher-kva.example"]] and [e.to for e in sent.sent] == [["info@bücher.example"]]


async def test_two_shops_sharing_a_sender_domain_and_an_order_number_send_two_emails(settings, smtp):
    """The Message-ID, which is the key of the delivery records, names the shop: no 'already sent' across shops."""
    shops = {**settings.shops, "campus": ShopSettings()}
    settings = settings.model_copy(update={"shops": shops})
    default = await send(settings, request("order_shipped"))
    campus = await send(settings, request("order_shipped", shop="campus"))
    assert [e.message_id for e in (*default.sent, *campus.sent)] == [
        "<PO-7.order_shipped.1.customer@example.com>", "<PO-7.order_shipped.1.customer.campus@example.com>"
    ]
    assert len(smtp.messages) == 2 and campus.notes == []


def _drafts_of_190_kb(settings: Settings, lines: int = 10000) -> Settings:
    """order_cancelled held for the customer and the approvers, each draft about 190 KB (10,000 lines)."""
    big = settings.templates.override_dir / "fr" / "order_cancelled.html.j2"
    big.parent.mkdir(parents=True)
    big.write_text('{% extends "fr/_base.html.j2" %}{% block subject %}Annulée{% endblock %}'
                   f'{{% block body %}}{{% for i in range({lines}) %}}<p>ligne</p>{{% endfor %}}{{% endblock %}}', encoding="utf-8")  # fmt: skip
    policy = {"to_customer": True, "to_approvers": True, "edit_before_send": True}
    return settings.model_copy(update={"emails": type(settings.emails)(order_cancelled=policy)})


async def test_the_retried_path_bounds_its_drafts_as_the_first_attempt_does(settings):
    """One status change held for the customer and the approvers, about 570 KB each, when retried (the regular
    activity): 1 MB of bodies at most goes into the result, the rest is held without its body."""
    req = request("order_cancelled", budget={"limit": "1.00", "approvers": ["müller@bücher.example"]})
    larger = settings.model_copy(update={"drafts": settings.drafts.model_copy(update={"max_html_kb": 700})})
    result = await ActivityEnvironment().run(activities_for(_drafts_of_190_kb(larger, lines=30000)).send_status_email, req)
    assert len(result.drafts) == 2 and result.drafts[0].body_bytes > 500_000
    assert sum(d.body_bytes for d in result.drafts) <= 1024 * 1024 and not result.drafts[1].html
    assert result.drafts[1].reason.startswith("held without its body: this status change held more than 1 MB of drafts")


async def test_the_drafts_of_one_attempt_carry_at_most_1_mb_of_bodies_into_the_orders_history(settings):
    """Three status changes at once, each held for the customer and the approvers, each about 190 KB: what
    cannot go into the history is held without its body, and rendered when an operator sends it."""
    settings = _drafts_of_190_kb(settings)
    budget = {"limit": "1.00", "approvers": ["head@example.org"]}
    batch = StatusEmailBatch(requests=[
        request("order_cancelled", budget=budget).model_copy(update={"occurrence": n}) for n in (1, 2, 3)
    ])  # fmt: skip
    result = await ActivityEnvironment().run(activities_for(settings).send_status_emails, batch)
    drafts = [d for r in result.results for d in r.drafts]
    assert len(drafts) == 6 and 150_000 < drafts[0].body_bytes < 256 * 1024
    assert sum(d.body_bytes for d in drafts) <= 1024 * 1024
    assert [bool(d.html) for d in drafts] == [True] * 5 + [False]
    assert drafts[5].reason == ("held without its body: this status change held more than 1 MB of drafts; "
                                "it is rendered again when sent")  # fmt: skip
    assert len(result.model_dump_json()) < 1_200_000


async def test_a_server_that_twice_takes_the_message_without_answering_gets_no_third_copy(settings):
    """Each such attempt may have delivered it: after two, the customer's email is held for an operator to check."""
    silent = SilentAfterData()
    controller = Controller(silent, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = with_smtp_port(settings, controller.port)
        with pytest.raises(ApplicationError):
            await send(settings, request("order_shipped"))
        second = await send(settings, request("order_shipped"))
    finally:
        controller.stop()
    assert len(silent.kept) == 2
    (held,) = second.drafts
    assert "second attempt the server took without answering" in held.reason
    assert "check with them before sending it again" in held.reason


async def test_a_bounced_emails_copy_is_rendered_and_held_never_sent(settings, smtp: SmtpCapture):
    """The copy is the email as the template renders it for that status change, addressed as given (the order's
    address, not the bounce's), its To open to a correction; nothing reaches the server."""
    copy = request("order_accepted", customer={"email": "müller@bücher.example"}).model_copy(update={"occurrence": 2})
    bounced = BouncedDraftRequest(request=copy, to=["müller@bücher.example"], reason="bounced: 5.1.1 unknown user")
    draft = await ActivityEnvironment().run(activities_for(settings).draft_bounced, bounced)
    assert (draft.to, draft.audience, draft.reason, draft.subject) == (
        ["müller@bücher.example"], "customer", "bounced: 5.1.1 unknown user", "Votre commande PO-7 a été acceptée"
    )
    assert draft.from_bounce and draft.may_edit_to and not draft.rules.may_edit_to
    assert draft.message_id == "<PO-7.order_accepted.2.customer@example.com>" and draft.html
    assert smtp.messages == []



@pytest.mark.parametrize("slow", ["render", "claim"])
async def test_an_attempt_cancelled_while_it_prepares_leaves_no_claim_and_sends_nothing(settings, smtp, slow):
    """A timeout or a cancelled order while the email is rendered (a slow document store, a big PDF) or its claim
    taken (a PostgreSQL record far away): the thread finishes on its own, and no claim is left behind, so the next
    attempt is a clean one, not one that waits out a claim nobody keeps and then warns of a duplicate."""
    import asyncio
    import threading

    from printroom.activities.deliveries import ClaimHeld

    emails = activities_for(settings)
    inside, finish, rendered, finished = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    assemble, claim = emails.assembler.assemble, emails.deliveries.claim

    def slow_assemble(*args: Any, **kwargs: Any):
        if slow == "render":
            inside.set()
            finish.wait(10)
        try:
            return assemble(*args, **kwargs)
        finally:
            rendered.set()

    def slow_claim(message_id: str) -> bool:
        try:
            taken = claim(message_id)
            if slow == "claim":
                inside.set()
                finish.wait(10)
            return taken
        finally:
            finished.set()

    emails.assembler.assemble = slow_assemble  # type: ignore[method-assign]
    emails.deliveries.claim = slow_claim  # type: ignore[method-assign]
    env = ActivityEnvironment()
    attempt = asyncio.ensure_future(env.run(emails.send_status_email, request("order_accepted")))
    assert await asyncio.to_thread(inside.wait, 10)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    finish.set()
    msg_id = "<PO-7.order_accepted.1.customer@example.com>"
    if slow == "claim":
        assert await asyncio.to_thread(finished.wait, 10)
    else:  # what the thread does after the render takes microseconds: a claim it took would be there by now
        assert await asyncio.to_thread(rendered.wait, 10)
        await asyncio.sleep(0.2)

    def let_go() -> bool:
        try:
            taken = claim(msg_id)
        except ClaimHeld:
            return False  # still held: asked again until the deadline
        assert taken is False  # free: neither another attempt's (ClaimHeld) nor a dead one's (True)
        return True

    # the claim let go within moments (an orphan would be held for CLAIM_ALIVE, 30 s)
    await eventually(let_go, timeout=5, what="the cancelled attempt's claim to be let go (it is still held)")
    assert smtp.messages == []
