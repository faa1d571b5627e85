"""The bounce watcher against real servers: Debian's Postfix relays an order's email to a domain whose server
refuses the recipient, Postfix itself writes the DSN into the print room's mailbox, Debian's Dovecot serves that
mailbox over IMAP (TLS), and the watcher signals the order. Both servers start once for the module."""

from __future__ import annotations

import re

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from printroom.activities.bounce_mailbox import BounceMailbox, MailboxUnreachable
from printroom.models import BOUNCE_WATCH_ID, BOUNCE_WATCH_WORKFLOW, BounceWatch, BounceWatchState, OrderState, SentEmail
from printroom.settings import Settings
from printroom.worker.bounce_watch import start_bounce_watch
from printroom.worker.main import build_worker
from printroom.workflows.bounce_watch import POLL_NOW, STOP_AFTER_UNSET, BounceWatchWorkflow
from printroom.workflows.order import OrderWorkflow
from tests import bounce_samples as samples
from tests.conftest import eventually, free_port, history_bytes, order_state, sample_order
from tests.dovecot_server import PASSWORD, USER, DovecotServer, ensure_dovecot_installed
from tests.postfix_server import MAILBOXES, PostfixServer, ensure_postfix_installed

SENDER = "printroom@example.com"
REFUSING = "refusing.example"


class RefusesEveryone:
    """The customer's mail server: every recipient unknown (what Postfix then reports in its DSN)."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in {REFUSING}"


@dataclass
class Servers:
    postfix: PostfixServer
    dovecot: DovecotServer
    ca_file: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    for why in (ensure_postfix_installed(), ensure_dovecot_installed()):
        if why is not None:
            if os.environ.get("CI"):
                pytest.fail(why)  # CI runs as root with apt: there, not having the servers is a failure
            pytest.skip(why)
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    refusing = Controller(RefusesEveryone(), hostname="127.0.0.1", port=free_port())
    refusing.start()
    postfix = PostfixServer(ca, (*MAILBOXES, SENDER), {REFUSING: f"smtp:[127.0.0.1]:{refusing.port}"}).start()
    dovecot = DovecotServer(ca, postfix.mail / "example.com" / "printroom").start()
    yield Servers(postfix, dovecot, ca_file)
    dovecot.stop()
    postfix.stop()
    refusing.stop()


def watcher_settings(servers: Servers, tmp_path: Path, **bounces: Any) -> Settings:
    return Settings(
        deliveries_dir=tmp_path / "deliveries",
        sender={"address": SENDER, "name": "Druckerei Müller"},
        operators=["ops@example.org"],
        smtp={"host": "127.0.0.1", "port": servers.postfix.port, "security": "starttls", "ca_file": servers.ca_file},
        bounces={"host": "127.0.0.1", "port": servers.dovecot.port, "security": "tls", "ca_file": servers.ca_file,
                 "username": USER, "password": PASSWORD, "poll_every": "1s", **bounces},
        worker={"strict_sandbox": True},
    )  # fmt: skip


@pytest.fixture
def mailbox(servers: Servers) -> Iterator[DovecotServer]:
    """The print room's mailbox, emptied of what earlier tests left."""
    for folder in [servers.dovecot.maildir, *(p for p in servers.dovecot.maildir.rglob("*") if p.is_dir())]:
        for sub in ("new", "cur"):
            for message in (folder / sub).glob("*") if (folder / sub).is_dir() else ():
                message.unlink()
    yield servers.dovecot


@asynccontextmanager
async def watching(client: Client, settings: Settings) -> AsyncIterator[tuple[Worker, WorkflowHandle[Any, Any]]]:
    """printroom's worker with [bounces] set, which starts the watcher; the watcher ended afterwards (its id is one
    per namespace, and the next test starts its own)."""
    async with build_worker(client, settings, task_queue=f"bounces-{uuid.uuid4().hex[:8]}") as worker:
        watcher = client.get_workflow_handle(BOUNCE_WATCH_ID)
        await eventually(lambda: _running_on(watcher, worker.task_queue), what="the watcher started by the worker")
        try:
            yield worker, watcher
        finally:
            await watcher.terminate("test over")


async def _running_on(watcher: WorkflowHandle[Any, Any], task_queue: str) -> bool:
    try:
        described = await watcher.describe()
    except RPCError:
        return False
    return described.task_queue == task_queue and described.status == WorkflowExecutionStatus.RUNNING


async def watcher_state(watcher: WorkflowHandle[Any, Any]) -> BounceWatchState:
    return await watcher.query("state", result_type=BounceWatchState)


async def polled(watcher: WorkflowHandle[Any, Any], after: int) -> BounceWatchState:
    """The state once a poll after poll number `after` is done (asked for now, not in a second)."""
    await watcher.signal(POLL_NOW)

    async def done() -> BounceWatchState | None:
        state = await watcher_state(watcher)
        return state if state.polls > after and state.last_poll is not None and state.next_poll is not None and state.next_poll > state.last_poll else None

    return await eventually(done, what=f"a poll after poll {after}")


async def bounced_signals(order: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The `email_bounced` signals in the order's history, as sent."""
    found = []
    async for event in order.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = event.workflow_execution_signaled_event_attributes
            if signaled.signal_name == "email_bounced":
                found.append(json.loads(signaled.input.payloads[0].data))
    return found


async def start_order(client: Client, worker: Worker, **changes: Any) -> WorkflowHandle[Any, Any]:
    order = sample_order(f"PO-{uuid.uuid4().hex[:6]}", **changes)
    return await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order['id']}", task_queue=worker.task_queue)


async def test_an_address_postfix_could_not_deliver_to_reaches_its_order_as_email_bounced(client, servers, mailbox, tmp_path):
    """End to end: the order's email through Postfix, the customer's server refusing, Postfix's DSN in Dovecot, the
    watcher's poll, the order's signal; the bounce then filed in Printroom/Processed."""
    async with watching(client, watcher_settings(servers, tmp_path)) as (worker, watcher):
        order = await start_order(client, worker, customer={"name": "Marie Curie", "email": f"nobody@{REFUSING}"})
        await eventually(lambda: mailbox.count("INBOX") >= 1, timeout=30, what=f"Postfix's DSN in the mailbox:\n{servers.postfix.log()}")
        signals = await eventually(lambda: bounced_signals(order), timeout=30, what="email_bounced in the order's history")
        state = await eventually(lambda: _bounces(order), what="the bounce in the order's state")
    (bounce,) = signals
    assert bounce["recipient"] == f"nobody@{REFUSING}" and bounce["status"] == "5.1.1" and bounce["permanent"] is True
    assert f"550 5.1.1 <nobody@{REFUSING}>: Recipient address rejected" in bounce["diagnostic"]
    assert bounce["message_id"].startswith(f"<{order.id.removeprefix('order-')}.order_received.1.customer.")
    assert mailbox.count("INBOX") == 0 and mailbox.count("Printroom/Processed") == 1
    (recorded,) = state.bounces  # what the operator reads in the order's `state`
    assert (recorded.recipient, recorded.status, recorded.email_trigger, recorded.audience) == (f"nobody@{REFUSING}", "5.1.1", "order_received", "customer")


async def test_a_refused_login_is_said_in_the_watchers_details_and_polls_back_off(client, servers, mailbox, tmp_path):
    settings = watcher_settings(servers, tmp_path)
    settings.bounces.password = SecretStr("not-the-password")  # type: ignore[union-attr]
    async with watching(client, settings) as (worker, watcher):
        run = (await watcher.describe()).run_id
        await start_bounce_watch(client, settings, worker.task_queue)  # a second worker starting: the same watcher
        assert (await watcher.describe()).run_id == run
        for failures in (1, 2):  # the doubling waits (2 s, 4 s) skipped by asking for a poll
            await eventually(lambda: _failed(watcher, failures), what=f"{failures} refused poll(s)")
            await watcher.signal(POLL_NOW)
        state = await eventually(lambda: _failed(watcher, 3), what="three refused polls")
        details = (await watcher.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)).current_details
        assert b"not-the-password" not in await history_bytes(watcher)
        # Deterministic: its history replays in the full sandbox.
        await Replayer(workflows=[BounceWatchWorkflow], data_converter=pydantic_data_converter).replay_workflow(await watcher.fetch_history())
    assert "refused the login of 'bounces'" in state.last_error and "PRINTROOM_BOUNCES__PASSWORD" in state.last_error
    assert "**Cannot read the mailbox** (3 time(s) in a row)" in details and "refused the login" in details
    assert state.next_poll - state.last_poll == timedelta(seconds=8)  # 1 s doubled for each failure in a row
    assert state.polls == 3  # one login a poll: no attempts retried at once
    assert "not-the-password" not in details and "not-the-password" not in state.model_dump_json()


async def _receipt(order: WorkflowHandle[Any, Any]) -> SentEmail | None:
    return next((e for e in (await order_state(order)).emails_sent if e.email_trigger == "order_received"), None)


async def _bounces(order: WorkflowHandle[Any, Any]) -> OrderState | None:
    state = await order_state(order)
    return state if state.bounces else None


async def _signals(order: WorkflowHandle[Any, Any], count: int) -> list[dict[str, Any]] | None:
    signals = await bounced_signals(order)
    return signals if len(signals) >= count else None


async def _run_after(watcher: WorkflowHandle[Any, Any], run: str | None) -> BounceWatchState | None:
    """The state of a run after `run` (the handle follows the workflow id to its current run)."""
    return await watcher_state(watcher) if (await watcher.describe()).run_id != run else None


async def _read(watcher: WorkflowHandle[Any, Any], messages: int) -> BounceWatchState | None:
    state = await watcher_state(watcher)
    c = state.counts
    return state if c.matched + c.unmatched + c.ignored + c.malformed >= messages else None


async def _matched(watcher: WorkflowHandle[Any, Any], matched: int) -> BounceWatchState | None:
    state = await watcher_state(watcher)
    return state if state.counts.matched >= matched else None


async def _failed(watcher: WorkflowHandle[Any, Any], times: int) -> BounceWatchState | None:
    state = await watcher_state(watcher)
    return state if state.failures_in_a_row >= times and state.next_poll and state.last_poll and state.next_poll > state.last_poll else None


async def test_what_is_not_ours_is_moved_aside_and_an_auto_reply_left_in_place(client, servers, mailbox, tmp_path):
    """Also: the watcher continues as new every `polls_per_run` polls, its counts carried."""
    async with watching(client, watcher_settings(servers, tmp_path, polls_per_run=2)) as (worker, watcher):
        run = (await watcher.describe()).run_id
        order = await start_order(client, worker)
        receipt = await eventually(lambda: _receipt(order), what="the order's receipt sent")
        # The same order id, another run (an earlier order under that id, or a cost centre's warning naming it):
        # the open order would refuse it; it is never filed as processed.
        other_run = re.sub(r"\.r[0-9a-f]{10}", ".r0123456789", receipt.message_id)
        assert other_run != receipt.message_id
        mailbox.deliver(samples.postfix_user_unknown().replace(samples.OURS.encode(), other_run.encode()))
        mailbox.deliver(samples.foreign_bounce())
        mailbox.deliver(samples.postfix_user_unknown())  # printroom's Message-ID, for an order that does not exist
        mailbox.deliver(samples.broken_report())
        mailbox.deliver(samples.out_of_office())
        mailbox.deliver(samples.customer_reply())
        await watcher.signal(POLL_NOW)
        first = await eventually(lambda: _read(watcher, 6), what="six messages read")
        again = await polled(watcher, first.polls)
        later = await eventually(lambda: _run_after(watcher, run), what="the watcher continued as new")
        told = await order_state(order)
    assert told.bounces == [] and told.refused == []  # the order was never told of another run's email
    assert later.polls >= 2 and later.counts == first.counts  # continued as new, its polls and counts carried
    counts = first.counts
    assert (counts.unmatched, counts.malformed, counts.ignored, counts.matched, counts.signals) == (3, 1, 2, 0, 0)
    assert again.counts == first.counts  # nothing read twice
    assert mailbox.count("Printroom/Unmatched") == 4 and mailbox.count("INBOX") == 2  # never deleted
    assert mailbox.count("Printroom/Processed") == 0


async def test_the_same_bounce_twice_is_signalled_twice_and_a_20_mb_bounce_is_read(client, servers, mailbox, tmp_path):
    """At least once: the order gets every copy (it keeps one); a 20 MB bounce is read from its first bytes."""
    async with watching(client, watcher_settings(servers, tmp_path, processed="delete")) as (worker, watcher):
        order = await start_order(client, worker)
        sent = await eventually(lambda: _receipt(order), what="the order's receipt sent")
        message_id = sent.message_id
        before = await watcher_state(watcher)
        for raw in (samples.postfix_user_unknown(), samples.postfix_user_unknown(), samples.huge_bounce()):
            mailbox.deliver(raw.replace(samples.OURS.encode(), message_id.encode()))
        await watcher.signal(POLL_NOW)
        state = await eventually(lambda: _matched(watcher, before.counts.matched + 3), what="three bounces matched")
        # Signals that come while the order's task runs (its first emails) reach its history when the task ends.
        signals = await eventually(lambda: _signals(order, 3), what="three email_bounced in the order's history")
        order_now = await order_state(order)
    assert (state.counts.matched, state.counts.signals) == (before.counts.matched + 3, before.counts.signals + 3)
    assert [s["recipient"] for s in signals] == ["nobody@example.org"] * 3 and {s["message_id"] for s in signals} == {message_id}
    (recorded,) = order_now.bounces  # the order keeps it once
    assert (recorded.message_id, recorded.recipient) == (message_id, "nobody@example.org")
    assert mailbox.count("INBOX") == 0 and mailbox.count("Printroom/Processed") == 0  # processed = "delete"


def test_an_unreachable_mailbox_and_an_untrusted_certificate_are_said_with_what_to_check(servers, tmp_path):
    closed = watcher_settings(servers, tmp_path, port=free_port()).bounces
    with pytest.raises(MailboxUnreachable, match=r"IMAP 127\.0\.0\.1:\d+ \(tls\) cannot be reached \(connection refused\); is the server up"):
        BounceMailbox(closed).open()
    untrusted = watcher_settings(servers, tmp_path, ca_file=None).bounces  # the system's CAs: not the test CA's
    with pytest.raises(MailboxUnreachable, match=r"TLS failed \(CERTIFICATE_VERIFY_FAILED\); check bounces.ca_file"):
        BounceMailbox(untrusted).open()


async def test_the_watcher_ends_only_when_three_polls_in_a_row_meet_no_bounces_settings(time_skipping_env, settings, task_queue):
    """One worker without [bounces] (a rolling deploy, a second worker with other settings) does not stop it; a
    print room that removed [bounces] everywhere sees it end after three polls."""
    client = time_skipping_env.client
    async with build_worker(client, settings, task_queue=task_queue):  # no [bounces]: it starts no watcher itself
        handle = await client.start_workflow(
            BOUNCE_WATCH_WORKFLOW, BounceWatch(poll_every=timedelta(minutes=1)), id=f"bounces-{task_queue}",
            task_queue=task_queue, result_type=BounceWatchState,
        )  # fmt: skip
        state = await handle.result()
    assert state.polls == STOP_AFTER_UNSET == 3 and state.stopped and "no [bounces] section" in state.stopped


def test_the_mailboxs_own_certificate_as_ca_file_pins_it(servers, tmp_path):
    """bounces.ca_file holding the IMAP server's own certificate (its CA not given) is trusted as itself, as
    smtp.ca_file is: Python checks chains to a root unless told a partial one is enough."""
    chain = (servers.dovecot.root / "server.pem").read_text()
    own = tmp_path / "dovecot.pem"
    own.write_text(re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", chain, re.S).group(0))
    box = BounceMailbox(watcher_settings(servers, tmp_path, ca_file=own).bounces)
    box.open()
    box.close()
