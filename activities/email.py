"""The email activities: apply the print room's policy to an email trigger, then send each audience's email or
hold it as a draft for an operator; and send a held draft with the operator's edits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from printroom.activities.heartbeats import every, heartbeating
from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.compose import message_id
from printroom.activities.deliveries import KEEP_ALIVE, Accepted, ClaimHeld, DeliveryLog, DeliveryRecord, RecordUnavailable
from printroom.activities.documents import AttachmentError, DocumentStore
from printroom.activities.drafts import build_from_draft, draft_cc, draft_to, make_draft, within_budget
from printroom.activities.rendering import TemplateError, TemplateRenderer
from printroom.activities.smtp import Delivery, DeliveryError, SmtpTransport, Transaction
from printroom.activities.variables import SMTP_TEST
from printroom.activities.approval_steps import ApprovalSteps
from printroom.activities.bounce_steps import BounceSteps
from printroom.models import (
    DRAFT_BOUNCED,
    DRAFTABLE_AUDIENCES,
    SEND_DRAFT,
    SEND_STATUS_EMAIL,
    SEND_STATUS_EMAILS,
    Audience,
    BouncedDraftRequest,
    DraftContent,
    FailedDelivery,
    SendDraftRequest,
    SentEmail,
    StatusEmailBatch,
    StatusEmailBatchResult,
    StatusEmailRequest,
    StatusEmailResult,
)
from printroom.settings import Settings


class EmailActivities(ApprovalSteps, BounceSteps):
    """The worker's one activity class (the approval's and cost centres' steps mixed in from `approval_steps`, the
    bounce watcher's poll from `bounce_steps`).
    Dependencies are injected by the worker, so tests run the same class against their own servers."""

    def __init__(
        self, settings: Settings, assembler: EmailAssembler, transport: SmtpTransport, deliveries: DeliveryRecord
    ) -> None:
        self.settings = settings
        self.assembler = assembler
        self.transport = transport
        self.deliveries = deliveries
        # Transactions that outlived their cancelled attempt, finishing with their claims kept alive.
        self._finishing: set[asyncio.Future[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, transport: SmtpTransport | None = None) -> EmailActivities:
        """Production wiring: customised templates over shipped ones, the document store, the delivery records."""
        renderer = TemplateRenderer(settings.templates.override_dir)
        assembler = EmailAssembler(settings, renderer, DocumentStore(settings.documents), settings.web.signer())
        return cls(settings, assembler, transport or SmtpTransport(settings.smtp), delivery_record(settings))

    def activities(self) -> list[Callable[..., Any]]:
        """The activity functions a worker registers."""
        return [self.send_status_email, self.send_status_emails, self.send_draft, self.plan_approval, self.record_spending,
                self.take_back_spending, self.fetch_handed_drafts, self.confirm_order_cancelled, self.draft_bounced,
                self.poll_bounces]

    def recipients(self, request: StatusEmailRequest) -> tuple[dict[Audience, list[str]], list[str]]:
        """Who gets this email trigger under the settings (E1), and why anyone who could have did not."""
        policy = self.settings.emails.for_trigger(request.email_trigger)
        order, trigger = request.order, request.email_trigger
        if policy.send == "never":
            return {}, [f"{trigger}: switched off in the settings (emails.{trigger}.send = never)"]
        audiences: dict[Audience, list[str]] = {}
        notes: list[str] = []
        if policy.to_customer:
            if policy.send == "on_customer_request" and not order.customer.wants(trigger):
                notes.append(f"{trigger}: the customer did not ask for this status email")
            else:
                audiences["customer"] = [str(order.customer.email)]
        if policy.to_operators:
            if self.settings.operators:
                audiences["operators"] = [str(a) for a in self.settings.operators]
            else:
                notes.append(f"{trigger}: no operator addresses in the settings (operators)")
        if policy.to_approvers:
            if request.approvers is not None:  # the cost centre's, or those an escalation asks
                approvers = request.approvers
            else:
                approvers = [str(a) for a in order.budget.approvers] if order.budget else []
            if approvers:
                audiences["approvers"] = approvers
            else:
                notes.append(f"{trigger}: no approvers to write to (budget.approvers, or the cost centre's)")
        return audiences, notes

    @activity.defn(name=SEND_STATUS_EMAIL)
    async def send_status_email(self, request: StatusEmailRequest) -> StatusEmailResult:
        """A failure we know is classified (passing: retried; for good: held or failed); any other is a bug,
        said as such and never retried for ever."""
        try:
            async with heartbeating():
                result = self._keep_open_for_bounces(await self._send_status_email(request))
            # Bounded as a batch is (1 MB of drafts per status change), on the retried path too.
            return result.model_copy(update={"drafts": within_budget(result.drafts)}) if result.drafts else result
        except ApplicationError as error:
            if request.waiting_for_server and _retried_for(error) and not waits_for_server(error):
                # The server is back, the email has a problem of its own: handed back to be retried alone, so that
                # the emails queued behind it go on.
                audiences = request.audiences if request.audiences is not None else list(self.recipients(request)[0])
                return StatusEmailResult(retry=audiences, retry_reason=error.message, retry_recipients=request.recipients or {})
            raise
        except Exception as error:
            activity.logger.exception("unexpected error with %s for order %s", request.email_trigger, request.order.id)
            raise ApplicationError(
                f"unexpected {type(error).__name__}: {error} (a bug of printroom's; please report it)",
                type="UnexpectedError",
                non_retryable=True,
            ) from error

    async def _send_status_email(self, request: StatusEmailRequest) -> StatusEmailResult:
        """Each audience on its own: one audience's failure never drops or resends another's email. An audience
        whose email is set to be edited before sending gets a draft instead (E2); one whose email fails for good
        (refused, a broken template, a passing failure past smtp.give_up_after) gets a draft with the reason,
        for an operator to fix and send; the operators' own copies are never held."""
        audiences, notes = self.recipients(request)
        if request.audiences is not None:
            audiences = {a: to for a, to in audiences.items() if a in request.audiences}
            notes = []  # said on the first attempt already
        policy = self.settings.emails.for_trigger(request.email_trigger)
        result = StatusEmailResult(notes=notes)
        later: dict[Audience, list[str]] = {}  # recipients a 4xx put off while the others took it
        units = self._messages(request, audiences)
        for position, (audience, to, only) in enumerate(units):
            cc = self.assembler.cc_for(policy) if audience == "customer" else []
            if policy.edit_before_send and audience in DRAFTABLE_AUDIENCES:
                result.drafts.append(await self._draft(request, audience, to, cc))
                continue
            try:
                sent, refused = await self._send_one(request, audience, to, cc, result.notes, only)
                result.sent.append(sent)
                if put_off := [address for address, reply in refused.items() if reply.startswith("4")]:
                    later.setdefault(audience, []).extend(put_off)
                    reasons = [result.retry_reason] if result.retry_reason else []
                    result.retry_reason = "; ".join([*reasons, *(f"{a}: {refused[a]}" for a in put_off)])
            except Exception as error:  # noqa: BLE001  # an unexpected one is a bug: never retried for ever
                if not isinstance(error, (DeliveryError, AttachmentError, TemplateError, ClaimHeld, RecordUnavailable)):
                    activity.logger.exception("unexpected error sending %s to the %s", request.email_trigger, audience)
                    error = TemplateError(f"unexpected {type(error).__name__}: {error} (a bug of printroom's; please report it)")
                permanent = getattr(error, "permanent", True) or self._gave_up(request)
                if permanent and audience in DRAFTABLE_AUDIENCES and only is None:
                    result.drafts.append(await self._draft(request, audience, to, cc, reason=self._why(error, request)))
                elif permanent:  # an operators' copy, or the recipients of a partial retry: the others have it
                    failed_for = f" (for {', '.join(only)})" if only is not None else ""
                    result.failed.append(FailedDelivery(audience=audience, error=self._why(error, request) + failed_for))
                elif result.sent or result.failed or result.drafts:
                    # Something already happened in this attempt: hand back the rest instead of redoing it.
                    rest: dict[Audience, list[str] | None] = {}
                    for a, unit_to, unit_only in units[position:]:
                        if self.assembler.one_by_one(request, a):  # the retry is for those not reached yet
                            rest[a] = [*(rest.get(a) or []), *unit_to]
                        else:
                            rest[a] = unit_only
                    return self._hand_back(result, later, rest, str(error), waits=_transient_type(error) in _SERVER_WIDE)
                else:
                    # Expected while a mail server is down: one line in the log, not a traceback per attempt.
                    activity.logger.warning("%s (attempt %d, retried with backoff)", error, activity.info().attempt)
                    raise ApplicationError(str(error), type=_transient_type(error), category=ApplicationErrorCategory.BENIGN) from None
        return self._hand_back(result, later, {}, result.retry_reason) if later else result

    def _keep_open_for_bounces(self, result: StatusEmailResult) -> StatusEmailResult:
        """With a mailbox watched for bounces, an email that went to the customer keeps its order open for
        `bounces.keep_orders_open` once done: the order learns it here, from the settings, never from disk."""
        if self.settings.bounces is not None and any(sent.audience == "customer" for sent in result.sent):
            result.keep_open_for_bounces = int(self.settings.bounces.keep_orders_open.total_seconds())
        return result

    def _messages(
        self, request: StatusEmailRequest, audiences: dict[Audience, list[str]]
    ) -> list[tuple[Audience, list[str], list[str] | None]]:
        """The messages of this attempt: (audience, To, the envelope only, or None for all). An audience written
        one by one (approvers with their own answer links) is one message each, a retry only for those not done."""
        messages: list[tuple[Audience, list[str], list[str] | None]] = []
        for audience, to in audiences.items():
            only = (request.recipients or {}).get(audience)  # the envelope only: the headers name everyone
            if self.assembler.one_by_one(request, audience):
                messages += [(audience, [r], None) for r in to if only is None or r in only]
            else:
                messages.append((audience, to, only))
        return messages

    @staticmethod
    def _hand_back(
        result: StatusEmailResult,
        later: dict[Audience, list[str]],
        rest: dict[Audience, list[str] | None],
        reason: str,
        *,
        waits: bool = False,
    ) -> StatusEmailResult:
        """What this attempt leaves to the retried activity: the recipients a 4xx put off, the audiences not reached."""
        recipients = dict(later)
        for audience, only in rest.items():
            if only is not None:  # an audience written one by one may have some put off and some not reached
                recipients[audience] = list(dict.fromkeys([*recipients.get(audience, []), *only]))
        return result.model_copy(
            update={
                "retry": [*later, *(a for a in rest if a not in later)], "retry_reason": reason,
                "retry_recipients": recipients, "retry_waits_for_server": waits,
            }
        )  # fmt: skip

    @activity.defn(name=SEND_STATUS_EMAILS)
    async def send_status_emails(self, batch: StatusEmailBatch) -> StatusEmailBatchResult:
        """Several emails in one go, each independent of the others: a passing failure of one is its own result
        (`retry`, for the workflow to hand to the retried single-email activity)."""
        results = []
        for request in batch.requests:
            try:
                results.append(await self.send_status_email(request))
            except ApplicationError as error:
                audiences = request.audiences if request.audiences is not None else list(self.recipients(request)[0])
                if error.non_retryable:
                    results.append(StatusEmailResult(failed=[FailedDelivery(audience=a, error=error.message) for a in audiences]))
                else:  # passing: handed back, to be retried on its own
                    results.append(
                        StatusEmailResult(retry=audiences, retry_reason=error.message, retry_waits_for_server=waits_for_server(error))
                    )
        bounded = iter(within_budget([d for r in results for d in r.drafts]))
        return StatusEmailBatchResult(results=[r.model_copy(update={"drafts": [next(bounded) for _ in r.drafts]}) for r in results])

    @activity.defn(name=SEND_DRAFT)
    async def send_draft(self, send: SendDraftRequest) -> StatusEmailResult:
        """A held draft, with the operator's edits, sent once: one attempt, the answer goes to the operator who
        asked (a passing failure included: the draft stays held). Same Message-ID as the automatic email, so
        the delivery record keeps a second request from sending it twice."""
        request, draft, edits = send.request, send.draft, send.edits
        notes: list[str] = []
        operator_url = self._operator_url()
        try:
            sent, _ = await self._deliver_once(
                request.email_trigger, draft.audience, draft.message_id, draft_to(draft, edits), draft_cc(draft, edits), notes,
                lambda now: build_from_draft(self.assembler, request, draft, edits, now=now, operator_url=operator_url),
            )  # fmt: skip
        except ClaimHeld as error:
            raise ApplicationError(f"{error.message_id} is being sent by an earlier attempt right now; ask again in a "
                                   "minute", type="ClaimHeld", non_retryable=True) from None  # fmt: skip
        except (DeliveryError, AttachmentError, TemplateError, RecordUnavailable) as error:
            raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from None
        return self._keep_open_for_bounces(StatusEmailResult(sent=[sent], notes=notes))

    @activity.defn(name=DRAFT_BOUNCED)
    async def draft_bounced(self, bounced: BouncedDraftRequest) -> DraftContent:
        """A customer's email that bounced, rendered again and held (never sent from here): addressed as the order
        sent it, its To open to an operator's correction whatever drafts.operator_may_edit_to says."""
        draft = await self._draft(bounced.request, "customer", bounced.to, bounced.cc, reason=bounced.reason)
        (bounded,) = within_budget([draft.model_copy(update={"from_bounce": True})])
        return bounded

    async def _draft(
        self, request: StatusEmailRequest, audience: Audience, to: list[str], cc: list[str], reason: str = ""
    ) -> DraftContent:
        """Rendered off the event loop, as every message is."""
        return await asyncio.to_thread(
            make_draft, self.assembler, request, audience, to=to, cc=cc, now=datetime.now(timezone.utc),
            rules=self.settings.drafts.rules(), reason=reason, operator_url=self._operator_url(),
        )  # fmt: skip

    def _gave_up(self, request: StatusEmailRequest) -> bool:
        """A passing failure that has lasted past smtp.give_up_after is handed to a person."""
        since = request.changed_at  # when the status changed: the email has been due since
        return since is not None and datetime.now(timezone.utc) - since > self.settings.smtp.give_up_after

    def _why(self, error: Exception, request: StatusEmailRequest) -> str:
        if getattr(error, "permanent", True):
            return str(error)
        return f"gave up after smtp.give_up_after = {self.settings.smtp.give_up_after}: {error}"

    def _operator_url(self) -> str | None:
        """The order's page in the Temporal Web UI, for the operators' links (temporal.ui_url)."""
        ui = self.settings.temporal.ui_url
        if not ui or not activity.in_activity():
            return None
        info = activity.info()
        return (
            f"{ui.rstrip('/')}/namespaces/{quote(info.workflow_namespace or 'default', safe='')}"
            f"/workflows/{quote(info.workflow_id or '', safe='')}/{info.workflow_run_id}/history"
        )

    async def _send_one(
        self,
        request: StatusEmailRequest,
        audience: Audience,
        to: list[str],
        cc: list[str],
        notes: list[str],
        only: list[str] | None = None,
    ) -> tuple[SentEmail, dict[str, str]]:
        recipient = self.assembler.recipient(request, audience, to)
        msg_id = message_id(request, audience, self.assembler.sender_for(request.order.shop).domain, recipient)
        operator_url = self._operator_url()
        return await self._deliver_once(
            request.email_trigger, audience, msg_id, to, cc, notes,
            lambda now: self.assembler.assemble(request, audience, to=to, cc=cc, now=now, operator_url=operator_url),
            only=only,
        )  # fmt: skip

    async def _deliver_once(
        self,
        trigger: str,
        audience: Audience,
        msg_id: str,
        to: list[str],
        cc: list[str],
        notes: list[str],
        build: Callable[[datetime], AssembledEmail],
        only: list[str] | None = None,
    ) -> tuple[SentEmail, dict[str, str]]:
        """Build and send one message (its headers naming everyone, the envelope only `only` when given) unless the
        delivery records say the server took it already, or took it for some recipients (after a 4xx: then for
        the others). Never while another attempt at it may be sending."""
        now = datetime.now(timezone.utc)

        def sent(accepted: list[str], subject: str, attachments: list[str]) -> SentEmail:
            return SentEmail(
                email_trigger=trigger, audience=audience, to=[a for a in accepted if a in to],
                cc=[a for a in accepted if a in cc], subject=subject, message_id=msg_id, sent_at=now,
                attachments=attachments,
            )  # fmt: skip

        def still_to_send(earlier: Accepted | None) -> list[str]:
            wanted = [r for r in [*to, *cc] if only is None or r in only]
            return [r for r in wanted if earlier is None or r not in earlier.accepted]

        def prepare() -> tuple[Accepted | None, AssembledEmail | None, bool]:
            """The record, the email and whether an earlier attempt's claim was inherited; an email is returned only
            with the claim held, and nothing to send holds none."""
            # Before anything is read or rendered: an email the server took is done, even if its files have gone.
            earlier = self.deliveries.accepted(msg_id)
            if not still_to_send(earlier):
                return earlier, None, False
            email = build(now)
            if given_up.is_set():  # cancelled while rendering: nobody would keep or release a claim taken now
                return earlier, None, False
            inherited = self.deliveries.claim(msg_id)
            # Looked at again now that the claim is ours: another attempt may have recorded it meanwhile.
            earlier = self.deliveries.accepted(msg_id)
            if not still_to_send(earlier):
                self.deliveries.release(msg_id)
                return earlier, None, False
            return earlier, email, inherited

        # Off the event loop, in one step: the record looked at, templates, images, files and MIME, then the claim.
        given_up = threading.Event()
        preparing = asyncio.ensure_future(asyncio.to_thread(prepare))
        try:
            earlier, email, inherited = await asyncio.shield(preparing)
        except asyncio.CancelledError:
            given_up.set()
            preparing.add_done_callback(lambda done: self._unclaim_after_cancel(done, msg_id))
            raise
        if email is None:
            notes.append(f"{trigger}: {msg_id} was accepted by the server on an earlier attempt; not sent again")
            return sent(earlier.accepted if earlier else [], earlier.subject if earlier else "", []), {}
        envelope = still_to_send(earlier)
        if inherited:
            notes.append(
                f"{trigger}: an earlier attempt of {msg_id} stopped while sending; "
                "if the server had accepted it, the recipient gets it twice"
            )

        before = earlier.accepted if earlier else []

        async def record(delivery: Delivery) -> None:
            try:
                everyone = list(dict.fromkeys([*before, *delivery.accepted]))
                await asyncio.to_thread(self.deliveries.record, msg_id, everyone, email.subject)
            except OSError as error:  # accepted all the same: said, not taken for a failure to send
                notes.append(f"{trigger}: {msg_id} was sent, but its delivery record could not be written ({error}); "
                             "a retry of it could send it again")  # fmt: skip

        transaction = Transaction()
        try:
            async with self._alive(msg_id):
                delivery = await self._deliver(
                    replace(email, to=[r for r in to if r in envelope], cc=[r for r in cc if r in envelope]),
                    on_accepted=record, transaction=transaction,
                )  # fmt: skip
        except asyncio.CancelledError:  # the attempt timed out, or the workflow was cancelled
            self._after_cancel(msg_id, transaction, inherited)
            raise
        except DeliveryError as error:
            # Nothing of ours reached the server: the next attempt is a clean one. An inherited claim stays
            # until an attempt succeeds and reports it, or the warning would die with this failed attempt.
            if not error.uncertain and not inherited:
                await asyncio.to_thread(self.deliveries.release, msg_id)
                raise
            await asyncio.to_thread(self.deliveries.abandon, msg_id)
            if error.uncertain and inherited:  # a second attempt the server took without answering: stop at two
                raise DeliveryError(
                    f"{error.what_happened}; this is the second attempt the server took without answering, so the "
                    "recipients may have it twice already: check with them before sending it again",
                    permanent=True,
                ) from None
            raise
        notes.extend(f"{trigger}: {addr} refused by the server: {why}" for addr, why in delivery.refused.items())
        return sent([*before, *delivery.accepted], email.subject, email.attachments), delivery.refused

    def _unclaim_after_cancel(self, done: asyncio.Future[tuple[Accepted | None, AssembledEmail | None, bool]], msg_id: str) -> None:
        """An attempt cancelled while its thread looked, rendered and claimed: a claim the thread took all the same
        (the cancel came as it did) would be nobody's, and the next attempt would wait it out and then warn of a
        duplicate that never was. It goes as a cancel before sending lets it go."""
        if done.cancelled() or done.exception() is not None:  # nothing claimed (ClaimHeld, a record out of reach)
            return
        _, email, inherited = done.result()
        if email is not None:  # the claim was taken
            self._after_cancel(msg_id, Transaction(), inherited)

    def _after_cancel(self, msg_id: str, transaction: Transaction, inherited: bool) -> None:
        """A cancelled attempt: before the message was handed over, the claim goes (or stays, inherited, for its
        warning); after, the transaction finishes on its own, its claim kept alive until it has, so the next
        attempt waits for it and then finds it recorded, instead of sending a second copy."""
        if transaction.finishing is None:
            keeper = asyncio.ensure_future(self._quietly(self.deliveries.abandon if inherited else self.deliveries.release, msg_id))
            self._finishing.add(keeper)
            keeper.add_done_callback(self._finishing.discard)
            return
        finishing = transaction.finishing

        async def keep_claim() -> None:
            while not finishing.done():
                await self._quietly(self.deliveries.keep_alive, msg_id)
                await asyncio.wait({finishing}, timeout=KEEP_ALIVE)
            error = finishing.exception()
            if isinstance(error, DeliveryError) and not error.uncertain and not inherited:
                await self._quietly(self.deliveries.release, msg_id)
            elif error is not None:
                await self._quietly(self.deliveries.abandon, msg_id)

        keeper = asyncio.ensure_future(keep_claim())
        self._finishing.add(keeper)
        keeper.add_done_callback(self._finishing.discard)

    @staticmethod
    async def _quietly(operation: Callable[[str], None], msg_id: str) -> None:
        """A claim's housekeeping after a cancel, off the event loop; a record out of reach is no reason to fail:
        the claim ages out in CLAIM_ALIVE and the next attempt reports the possible duplicate."""
        try:
            await asyncio.to_thread(operation, msg_id)
        except RecordUnavailable as error:
            activity.logger.warning("%s (claim of %s left to age out)", error, msg_id)

    def _alive(self, msg_id: str) -> AbstractAsyncContextManager[None]:
        """While a send waits for a connection and runs: its claim kept fresh, so no other attempt takes it."""
        return every(KEEP_ALIVE, lambda: asyncio.to_thread(self.deliveries.keep_alive, msg_id))

    async def _deliver(
        self,
        email: AssembledEmail,
        on_accepted: Callable[[Delivery], Awaitable[None]] | None = None,
        transaction: Transaction | None = None,
    ) -> Delivery:
        settings = self.settings.sender
        envelope_from = str(settings.envelope_from or settings.address)
        return await self.transport.send(
            email.data, envelope_from=envelope_from, recipients=[*email.to, *email.cc], on_accepted=on_accepted,
            transaction=transaction,
        )  # fmt: skip

    async def send_test_email(self, to: str) -> tuple[str, str]:
        """S11: a real email through templates, sender, Cc and transport, saying which settings were used.
        Returns (subject, Message-ID); raises DeliveryError or TemplateError."""
        now, sender = datetime.now(timezone.utc), self.assembler.sender_for("default")
        context = self.assembler.context("default", now=now)
        images = self.settings.images_for("default")
        rendered, parts = self.assembler.render(SMTP_TEST, [self.settings.default_language, "en"], context, images)
        msg_id = f"<smtp-test.{now.strftime('%Y%m%dT%H%M%S%f')}@{sender.domain}>"
        email = self.assembler.build(
            rendered, sender=sender, to=[to], cc=self.assembler.cc_for(None), message_id=msg_id, now=now, images=parts
        )
        await self._deliver(email)
        return rendered.subject, msg_id


_TRANSIENT_TYPES: dict[type[Exception], str] = {
    DeliveryError: "SmtpTransientError", AttachmentError: "AttachmentError", ClaimHeld: "ClaimHeld",
    RecordUnavailable: "DeliveryRecordUnavailable",
}
# Passing failures of the way out (the server, the delivery record), which every email meets alike; the others
# (a file not there yet, another attempt sending it, a 4xx for the recipients of this email) are the email's own.
_SERVER_WIDE = frozenset({"SmtpTransientError", "DeliveryRecordUnavailable"})
_RECIPIENTS_DEFERRED = "SmtpRecipientsDeferred"


def _transient_type(error: Exception) -> str:
    if isinstance(error, DeliveryError) and error.recipients_only:
        return _RECIPIENTS_DEFERRED
    return _TRANSIENT_TYPES[type(error)]


def _retried_for(error: ApplicationError) -> bool:
    return not error.non_retryable and (error.type in _TRANSIENT_TYPES.values() or error.type == _RECIPIENTS_DEFERRED)


def waits_for_server(error: ApplicationError) -> bool:
    """A passing failure every email would meet (the server unreachable): the emails after it wait behind it."""
    return error.type in _SERVER_WIDE


def delivery_record(settings: Settings) -> DeliveryRecord:
    """PostgreSQL when deliveries.url is set (workers on several hosts), else the directory (the embedded default)."""
    if settings.deliveries.url:
        from printroom.activities.deliveries_pg import PostgresDeliveryLog  # psycopg: the `postgresql` extra

        return PostgresDeliveryLog(settings.deliveries.url, settings.smtp.max_connections)
    return DeliveryLog(settings.deliveries_dir)
