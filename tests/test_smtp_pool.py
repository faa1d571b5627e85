"""SMTP sessions reused (issue 23) against a real STARTTLS+AUTH relay (aiosmtpd, trustme certificate): what arrived,
by Message-ID, and what the server saw of the connections (opened, logged in, RSET, QUIT)."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import trustme
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from printroom.activities.email import EmailActivities
from printroom.activities.smtp import DeliveryError, SmtpTransport
from printroom.cli.smtp_check import check_connection
from printroom.models import Draft, Order, SendDraft, SendDraftRequest, StatusEmailRequest
from printroom.settings import Settings
from tests.conftest import eventually, free_port, sample_order
from tests.smtp_tls import PASSWORD, USER, Relay, ca, ca_file, relay, relay_settings, serve, server_cert, server_context  # noqa: F401  # fixtures


def message(n: int) -> tuple[bytes, str]:
    message_id = f"<pool-{n}@example.com>"
    return f"Message-ID: {message_id}\r\nSubject: pooled {n}\r\n\r\nHello\r\n".encode(), message_id


async def send(transport: SmtpTransport, n: int) -> str:
    data, message_id = message(n)
    await transport.send(data, envelope_from="printroom@example.com", recipients=["marie@example.org"])
    return message_id


async def test_two_emails_share_one_authenticated_connection_with_rset_between(relay, ca_file):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file)) as transport:
        sent = [await send(transport, 1), await send(transport, 2)]
        assert (server.opened, server.logins, server.rsets, len(server.open)) == (1, 1, 1, 1)
    assert server.message_ids == sent
    await eventually(lambda: not server.open, what="the session closed at the end")
    assert server.quits == 1  # closed with QUIT, not dropped


@pytest.mark.parametrize("when", ["while idle", "as the next email begins"])
async def test_a_connection_the_server_dropped_between_two_emails_is_replaced_and_the_second_sent_once(relay, ca_file, when):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file)) as transport:
        first = await send(transport, 1)
        if when == "while idle":
            server.drop_every_connection()
            await eventually(lambda: not server.open, what="the drop")
        else:  # the client learns it only from the RSET that goes unanswered
            server.close_at_next_rset = True
        second = await send(transport, 2)
    assert server.message_ids == [first, second]
    assert (server.opened, server.logins) == (2, 2)  # the new connection ran the whole handshake


async def test_a_421_mid_session_closes_that_connection_and_the_email_goes_once_on_a_new_one(relay, ca_file):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file)) as transport:
        first = await send(transport, 1)
        server.limit_per_connection = 1  # the next MAIL on that connection: 421, and the server closes it
        second = await send(transport, 2)  # within the same attempt, on a new connection
        server.limit_per_connection = None
        server.answer_421_to_next_data = True  # after the final dot: refused, said so; never re-sent by the transport
        with pytest.raises(DeliveryError) as refused:
            await send(transport, 3)
        third = await send(transport, 3)  # the retry, as Temporal makes it
    assert not refused.value.permanent and not refused.value.uncertain
    assert "answered 421 4.3.2 shutting down, try again later; it will be retried" in str(refused.value)
    assert server.message_ids == [first, second, third]
    assert (server.opened, server.refused_421) == (3, 2)


async def test_a_server_that_limits_messages_per_connection(relay, ca_file):
    """Beyond its limit a relay says 421 at MAIL: the email goes on a new connection. Set to the relay's limit,
    max_messages_per_connection closes each connection with QUIT before the relay has to refuse."""
    server, port = relay
    server.limit_per_connection = 3
    async with SmtpTransport(relay_settings(port, ca_file)) as unaware:
        sent = [await send(unaware, n) for n in range(7)]
    assert (server.opened, server.refused_421) == (3, 2) and server.message_ids == sent
    server.message_ids.clear()
    async with SmtpTransport(relay_settings(port, ca_file, max_messages_per_connection=3)) as told:
        sent = [await send(told, n) for n in range(7, 14)]
    assert (server.opened, server.refused_421) == (6, 2) and server.message_ids == sent


async def test_at_most_max_connections_are_open_in_use_or_idle(relay, ca_file):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file, max_connections=3)) as transport:
        for burst in range(2):
            await asyncio.gather(*(send(transport, 12 * burst + n) for n in range(12)))
    assert (server.opened, len(server.message_ids), len(set(server.message_ids))) == (3, 24, 24)


async def test_reuse_turned_off_opens_a_connection_per_email(relay, ca_file):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file, max_messages_per_connection=1)) as transport:
        for n in range(3):
            await send(transport, n)
    assert (server.opened, server.logins, server.quits, server.rsets) == (3, 3, 3, 0) and len(server.message_ids) == 3


async def test_idle_connections_are_closed_after_the_idle_time(relay, ca_file):
    server, port = relay
    transport = SmtpTransport(relay_settings(port, ca_file, idle_seconds=0.3))
    await send(transport, 1)
    assert len(server.open) == 1
    await eventually(lambda: not server.open, timeout=5, what="the idle connection closed")
    assert server.quits == 1
    await send(transport, 2)  # the whole handshake again
    assert (server.opened, server.logins) == (2, 2)
    await transport.close()


async def test_every_new_connection_checks_the_certificate_as_the_first_did(server_context, ca_file):
    """The relay's address answered by another server (its certificate from a CA nobody named) once the kept
    connection is gone: refused before AUTH, for good, as on a first connection."""
    genuine, intruder = Relay(), Relay()
    port = free_port()
    controller = serve(genuine, server_context, port)
    transport = SmtpTransport(relay_settings(port, ca_file))
    try:
        await send(transport, 1)
    finally:
        controller.stop()
    elsewhere = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(elsewhere)
    controller = serve(intruder, elsewhere, port)
    try:
        with pytest.raises(DeliveryError) as refused:
            await send(transport, 2)
    finally:
        controller.stop()
    assert refused.value.permanent and "the certificate of 127.0.0.1 is not trusted; set smtp.ca_file" in str(refused.value)
    assert (intruder.opened, intruder.logins, intruder.message_ids) == (1, 0, [])
    assert genuine.message_ids == ["<pool-1@example.com>"]


async def test_smtp_test_never_takes_a_pooled_connection(relay, ca_file):
    server, port = relay
    async with SmtpTransport(relay_settings(port, ca_file)) as transport:
        await send(transport, 1)
        steps = await check_connection(transport.settings)
    assert [s.name for s in steps if s.ok] == ["resolve", "connect", "greeting", "tls", "authentication"]
    # Its own connections (the TCP probe, then a session with the whole handshake); the pooled one untouched.
    assert (server.opened, server.logins, server.rsets) == (3, 2, 0)


def order_request(trigger: str) -> StatusEmailRequest:
    return StatusEmailRequest(order=Order.model_validate(sample_order("PO-9")), email_trigger=trigger, status="accepted")


async def test_the_password_changed_while_connections_are_open_holds_the_email_with_what_to_do(relay, ca_file, settings: Settings, tmp_path: Path):
    """The relay's password changes, its sessions are dropped: the reconnect's AUTH is refused. A permanent failure
    (never retried), the email held for an operator with the reason, as every permanent failure is; sent once the
    password file is right (read again for every new connection)."""
    server, port = relay
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD)
    smtp = relay_settings(port, ca_file).model_copy(update={"password": None, "password_file": secret})
    emails = EmailActivities.from_settings(settings.model_copy(update={"smtp": smtp}))
    run = ActivityEnvironment().run
    first = await run(emails.send_status_email, order_request("order_accepted"))
    server.password = "n3w-" + PASSWORD
    server.drop_every_connection()
    await eventually(lambda: not server.open, what="the drop")
    held = await run(emails.send_status_email, order_request("order_shipped"))
    (draft,) = held.drafts
    assert "rejected the credentials of 'relay-user-7q' (535 5.7.8 Authentication credentials invalid); check smtp.username and the password" in draft.reason
    assert held.sent == [] and held.retry == []  # not retried: a person must change the password
    assert server.message_ids == [first.sent[0].message_id]
    held_draft = Draft(**draft.model_dump(), id="d1", created_at=datetime.now(timezone.utc))
    sending = SendDraftRequest(request=order_request("order_shipped"), draft=held_draft, edits=SendDraft(draft_id="d1"))
    with pytest.raises(ApplicationError) as refused:  # the operator sends it before the password is fixed
        await run(emails.send_draft, sending)
    assert refused.value.non_retryable and "check smtp.username and the password" in refused.value.message
    secret.write_text(server.password)
    sent = await run(emails.send_draft, sending)
    assert server.message_ids == [first.sent[0].message_id, sent.sent[0].message_id] == [
        "<PO-9.order_accepted.1.customer@example.com>", "<PO-9.order_shipped.1.customer@example.com>"]
    await emails.transport.close()


async def test_a_worker_quits_its_pooled_connections_when_it_stops(dev_env, relay, ca_file, settings: Settings, task_queue):
    from printroom.worker.main import build_worker

    server, port = relay
    relayed = settings.model_copy(update={"smtp": relay_settings(port, ca_file)})
    async with build_worker(dev_env.client, relayed, task_queue=task_queue):
        order = sample_order()
        await dev_env.client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue=task_queue)
        await eventually(lambda: len(server.message_ids) == 2, what="the customer's and the operators' emails")
        assert len(server.open) >= 1
    assert server.opened <= 2 and server.quits == server.opened  # each said goodbye
    await eventually(lambda: not server.open, what="every connection closed")



async def test_a_worker_sigkilled_with_pooled_connections_open_sends_nothing_twice_unsaid(dev_env, relay, ca_file, task_queue, tmp_path):
    """`printroom worker` processes: the first holds pooled sessions to the relay when it is SIGKILLed with status
    emails in flight; the next one sends what is left on sessions of its own. Every email arrives; one that arrives
    twice (a kill between the relay's 250 and the record) is said in its order's state."""
    from bench.stack import runless
    from printroom.models import OrderState
    from tests.test_end_to_end import PRINTROOM, clean_env

    server, port = relay
    env = clean_env(
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host, PRINTROOM_TEMPORAL__TASK_QUEUE=task_queue,
        PRINTROOM_SMTP__HOST="127.0.0.1", PRINTROOM_SMTP__PORT=str(port), PRINTROOM_SMTP__SECURITY="starttls",
        PRINTROOM_SMTP__CA_FILE=str(ca_file), PRINTROOM_SMTP__USERNAME=USER, PRINTROOM_SMTP__PASSWORD=PASSWORD,
        PRINTROOM_DELIVERIES_DIR=str(tmp_path / "deliveries"), PRINTROOM_OPERATORS="ops@example.com",
        PRINTROOM_EMAILS='{"order_received_operator": {"send": "never"}, "order_accepted": {"send": "always"}}',
    )  # fmt: skip

    async def worker() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*PRINTROOM, "worker", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env)

    def arrived(trigger: str) -> set[str]:
        return {runless(m) for m in server.message_ids if f".{trigger}." in m}

    orders = [sample_order(f"PO-K{n}") for n in range(5)]
    first = await worker()
    try:
        handles = [await dev_env.client.start_workflow("OrderWorkflow", o, id=f"order-{o['id']}-{task_queue}", task_queue=task_queue)
                   for o in orders]  # fmt: skip
        await eventually(lambda: len(arrived("order_received")) == len(orders), timeout=60, what="every order_received")
        assert server.open, "no pooled session open"
        await asyncio.gather(*(h.signal("change_status", {"trigger": "accept"}) for h in handles))
        first.kill()
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
    await eventually(lambda: not server.open, what="the killed worker's sessions gone")
    quits_before = server.quits
    second = await worker()
    try:
        await eventually(lambda: len(arrived("order_accepted")) == len(orders), timeout=90, what="every order_accepted")
        await asyncio.sleep(1)  # a second copy, if one were coming
        states = [await h.query("state", result_type=OrderState) for h in handles]
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
    expected = {f"<{o['id']}.{t}.1.customer@example.com>" for o in orders for t in ("order_received", "order_accepted")}
    counts = Counter(runless(m) for m in server.message_ids)
    said_twice = {runless(word.strip(".,;:()")) for s in states for note in s.email_notes if "twice" in note
                  for word in note.split() if word.startswith("<")}  # fmt: skip
    assert set(counts) == expected
    assert {m for m, c in counts.items() if c > 1} <= said_twice
    await eventually(lambda: not server.open, what="the second worker's sessions closed at its stop")
    assert server.quits > quits_before  # the second worker said QUIT at its stop; the killed one could not
