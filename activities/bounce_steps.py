"""The bounce watcher's one activity: a bounded batch of the mailbox read, each bounce signalled to its order, then
moved out of the way. Signal first, then move: a poll cut short signals again next time (the order keeps a bounce
once), and nothing is moved that its order has not got. What matches no order is moved aside, never deleted; what
is not a bounce stays where it is."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from dataclasses import dataclass, field

from imap_tools.errors import ImapToolsError
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from printroom.activities.bounce_mailbox import BounceMailbox, Fetched, MailboxRefused, MailboxUnreachable
from printroom.activities.bounces import Reading, read_message
from printroom.activities.heartbeats import heartbeating
from printroom.message_ids import parse_message_id, run_tag
from printroom.activities.temporal_errors import retried_unless_refused
from printroom.models import EMAIL_BOUNCED, POLL_BOUNCES, BounceCounts, BouncePoll, BouncePollResult, EmailBounced, order_workflow_id
from printroom.settings import BounceSettings, Settings

log = logging.getLogger("printroom.bounces")
SIGNALS_AT_ONCE = 16
# Failed recipients signalled for one report at most (an email has at most 20 To and 20 Cc): a crafted report
# naming thousands cannot fill an order's history.
MAX_RECIPIENTS_SIGNALLED = 40


@dataclass
class _Sorted:
    """Where each message of a batch goes once its order has it."""

    processed: list[str] = field(default_factory=list)
    aside: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    counts: BounceCounts = field(default_factory=BounceCounts)


class BounceSteps:
    """Mixed into the worker's activity class: reads `self.settings.bounces`, signals through the activity's
    client."""

    settings: Settings

    @activity.defn(name=POLL_BOUNCES)
    async def poll_bounces(self, poll: BouncePoll) -> BouncePollResult:
        """One poll. A mailbox that cannot be read is a result (said in the watcher's details, the next poll
        later), not an error retried at once; Temporal not answering a signal is an error (retried: the batch
        stays in the mailbox)."""
        settings = self.settings.bounces
        if settings is None:
            return BouncePollResult(error="no [bounces] section in the settings any more: the watcher stops")
        mailbox = BounceMailbox(settings)
        result = BouncePollResult(poll_every=settings.poll_every, mailbox=mailbox.name)
        # The IMAP calls run in threads and a backlog of large bounces can take minutes: the lease is kept all along,
        # or Temporal would start a second attempt on the same batch while the first still reads it.
        async with heartbeating():
            return await self._poll(mailbox, settings, result)

    async def _poll(self, mailbox: BounceMailbox, settings: BounceSettings, result: BouncePollResult) -> BouncePollResult:
        try:
            await asyncio.to_thread(mailbox.open)
            try:
                uids, more = await asyncio.to_thread(mailbox.waiting, settings.batch_size)
                fetched = await asyncio.to_thread(mailbox.fetch, uids, settings.read_bytes)
                done = await self._sort(fetched, activity.client(), settings.read_bytes)
                await asyncio.to_thread(_file_away, mailbox, settings, done)
            finally:
                await asyncio.to_thread(mailbox.close)
        except (MailboxRefused, MailboxUnreachable) as error:
            log.warning("bounce mailbox not read: %s", error)
            return result.model_copy(update={"error": str(error)})
        except (ImapToolsError, OSError) as error:  # mid-session: what was signalled is signalled again next poll
            log.warning("bounce mailbox: %s failed: %s", mailbox.name, error)
            return result.model_copy(update={"error": f"{mailbox.name}: the server failed mid-poll ({str(error)[:300]}); the next poll starts again"})
        if done.counts != BounceCounts():
            log.info("bounces: %s", done.counts)
        # At once again only when this poll took messages out of the folder: what is only marked looked at (a
        # server that does not keep the keyword) would be read again and again.
        return result.model_copy(update={"counts": done.counts, "more": more and bool(done.processed or done.aside)})

    async def _sort(self, fetched: list[Fetched], client: Client, read_bytes: int) -> _Sorted:
        done, bounces = _Sorted(), []
        for message in fetched:
            try:
                reading = read_message(message.raw, read_bytes)
            except Exception as error:  # noqa: BLE001  # one unreadable message never stops the watcher
                reading = Reading("malformed", notes=[f"cannot be read ({error})"])
            if reading.verdict == "malformed":
                log.warning("bounce mailbox: message %s: %s; moved aside", message.uid, "; ".join(reading.notes))
                done.aside.append(message.uid)
                done.counts.malformed += 1
            elif reading.verdict != "bounce":
                done.left.append(message.uid)
                done.counts.ignored += 1
            else:
                bounces.append((message.uid, reading))
        # Orders signalled SIGNALS_AT_ONCE at a time (each a round trip to Temporal), all before anything is moved.
        gate = asyncio.Semaphore(SIGNALS_AT_ONCE)

        async def signalled(uid: str, reading: Reading) -> tuple[str, bool]:
            async with gate:
                return uid, await self._signalled(reading, client, done.counts)

        for uid, matched in await asyncio.gather(*(signalled(uid, reading) for uid, reading in bounces)):
            (done.processed if matched else done.aside).append(uid)
            done.counts.matched += matched
            done.counts.unmatched += not matched
        return done

    async def _signalled(self, reading: Reading, client: Client, counts: BounceCounts) -> bool:
        """`email_bounced` to the order, one per failed recipient; False when no order of ours is named or it does
        not exist (any more). A bounce only ever signals: whatever it says, printroom sends nothing because of it."""
        parts = parse_message_id(reading.message_id) if reading.message_id else None
        if parts is None or reading.message_id is None:
            return False
        handle = client.get_workflow_handle(order_workflow_id(parts.order_id))
        if parts.run_tag and not await _same_run(handle, parts.run_tag, reading.message_id):
            return False
        for failed in reading.failed[:MAX_RECIPIENTS_SIGNALLED]:
            bounce = EmailBounced(message_id=reading.message_id, recipient=failed.recipient[:254], status=failed.status,
                                  permanent=failed.permanent, diagnostic=failed.diagnostic)  # fmt: skip
            try:
                await handle.signal(EMAIL_BOUNCED, bounce)
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    log.info("bounce of %s: no open order %s; moved aside", reading.message_id, parts.order_id)
                    return False
                raise retried_unless_refused(error, f"signalling {EMAIL_BOUNCED} to {handle.id}") from None
            counts.signals += 1
        return True


async def _same_run(handle: WorkflowHandle[Any, Any], tag: str, message_id: str) -> bool:
    """Whether the order open under that id is the run that sent the email (its Message-ID names the run). A
    signal gets no answer: an email of an earlier run of the same order id, or a cost centre's warning (named after
    the order, tagged with the cost centre's run), would be refused by the order yet filed as processed here."""
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            log.info("bounce of %s: no order %s; moved aside", message_id, handle.id)
            return False
        raise retried_unless_refused(error, f"describing {handle.id}") from None
    if run_tag(described.raw_description.workflow_execution_info.first_run_id or described.run_id) != tag:
        log.info("bounce of %s: not an email of the run open under %s; moved aside", message_id, handle.id)
        return False
    return True


def _file_away(mailbox: BounceMailbox, settings: BounceSettings, done: _Sorted) -> None:
    """After the signals: processed bounces to their folder (or deleted), the rest aside or marked looked at."""
    if (folder := settings.processed_folder) is not None:
        mailbox.move(done.processed, folder)
    else:
        mailbox.delete(done.processed)
    mailbox.move(done.aside, settings.unmatched_folder)
    mailbox.mark_looked_at(done.left)
