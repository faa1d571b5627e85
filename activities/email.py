"""The email activity: applies the print room's policy to one email trigger, then composes and sends each email."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from datetime import datetime, timezone

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from printroom.activities.assemble import AssembledEmail, EmailAssembler
from printroom.activities.compose import message_id
from printroom.activities.deliveries import DeliveryLog
from printroom.activities.documents import AttachmentError, DocumentStore
from printroom.activities.rendering import TemplateError, TemplateRenderer
from printroom.activities.smtp import Delivery, DeliveryError, SmtpTransport
from printroom.activities.variables import SMTP_TEST
from printroom.models import (
    SEND_STATUS_EMAIL,
    SEND_STATUS_EMAILS,
    Audience,
    FailedDelivery,
    SentEmail,
    StatusEmailBatch,
    StatusEmailBatchResult,
    StatusEmailRequest,
    StatusEmailResult,
)
from printroom.settings import EmailPolicy, Settings


class EmailActivities:
    """Dependencies are injected by the worker, so tests run the same class against their own servers."""

    def __init__(
        self, settings: Settings, assembler: EmailAssembler, transport: SmtpTransport, deliveries: DeliveryLog
    ) -> None:
        self.settings = settings
        self.assembler = assembler
        self.transport = transport
        self.deliveries = deliveries

    @classmethod
    def from_settings(cls, settings: Settings, transport: SmtpTransport | None = None) -> EmailActivities:
        """Production wiring: customised templates over shipped ones, the document store, the delivery records."""
        renderer = TemplateRenderer(settings.templates.override_dir)
        assembler = EmailAssembler(settings, renderer, DocumentStore(settings.documents))
        return cls(settings, assembler, transport or SmtpTransport(settings.smtp), DeliveryLog(settings.deliveries_dir))

    def activities(self) -> list[Callable[..., Any]]:
        """The activity functions a worker registers."""
        return [self.send_status_email, self.send_status_emails]

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
            approvers = [str(a) for a in order.budget.approvers] if order.budget else []
            if approvers:
                audiences["approvers"] = approvers
            else:
                notes.append(f"{trigger}: the order names no approvers (budget.approvers)")
        return audiences, notes

    @activity.defn(name=SEND_STATUS_EMAIL)
    async def send_status_email(self, request: StatusEmailRequest) -> StatusEmailResult:
        """Each audience is sent on its own: one audience's failure never drops or resends another's email."""
        audiences, notes = self.recipients(request)
        if request.audiences is not None:
            audiences = {a: to for a, to in audiences.items() if a in request.audiences}
            notes = []  # said on the first attempt already
        result = StatusEmailResult(notes=notes)
        order = list(audiences)
        for position, audience in enumerate(order):
            try:
                result.sent.append(await self._send_one(request, audience, audiences[audience], result.notes))
            except (DeliveryError, AttachmentError) as error:
                if error.permanent:
                    result.failed.append(FailedDelivery(audience=audience, error=str(error)))
                elif result.sent or result.failed:
                    # Something already happened in this attempt: hand back the rest instead of redoing it.
                    result.retry, result.retry_reason = order[position:], str(error)
                    return result
                else:
                    # Expected while a mail server is down: one line in the log, not a traceback per attempt.
                    info = activity.info()
                    activity.logger.warning("%s (attempt %d, retried with backoff)", error, info.attempt)
                    raise ApplicationError(
                        str(error), type=_TRANSIENT_TYPES[type(error)], category=ApplicationErrorCategory.BENIGN
                    ) from None
        return result

    @activity.defn(name=SEND_STATUS_EMAILS)
    async def send_status_emails(self, batch: StatusEmailBatch) -> StatusEmailBatchResult:
        """Several emails in one go, each independent of the others: a failure of one is its own result
        (`failed`, or `retry` for the workflow to hand to the retried single-email activity)."""
        results = []
        for request in batch.requests:
            try:
                results.append(await self.send_status_email(request))
            except ApplicationError as error:
                audiences = request.audiences if request.audiences is not None else list(self.recipients(request)[0])
                if error.non_retryable:
                    failed = [FailedDelivery(audience=a, error=error.message) for a in audiences]
                    results.append(StatusEmailResult(failed=failed))
                else:
                    results.append(StatusEmailResult(retry=audiences, retry_reason=error.message))
        return StatusEmailBatchResult(results=results)

    async def _send_one(self, request: StatusEmailRequest, audience: Audience, to: list[str], notes: list[str]) -> SentEmail:
        policy = self.settings.emails.for_trigger(request.email_trigger)
        cc = self.cc_for(policy) if audience == "customer" else []
        now, trigger = datetime.now(timezone.utc), request.email_trigger
        msg_id = message_id(request, audience, self.assembler.sender_for(request.order.shop).domain)

        def sent(accepted: list[str], subject: str, attachments: list[str]) -> SentEmail:
            return SentEmail(
                email_trigger=trigger, audience=audience, to=[a for a in accepted if a in to],
                cc=[a for a in accepted if a in cc], subject=subject, message_id=msg_id, sent_at=now,
                attachments=attachments,
            )  # fmt: skip

        # Before anything is read or rendered: an email the server took is done, even if its files have gone since.
        if (earlier := self.deliveries.accepted(msg_id)) is not None:
            notes.append(f"{trigger}: {msg_id} was accepted by the server on an earlier attempt; not sent again")
            return sent(earlier.accepted, earlier.subject, [])
        try:
            email = self.assembler.assemble(request, audience, to=to, cc=cc, now=now)
        except TemplateError as error:
            raise ApplicationError(str(error), type="TemplateError", non_retryable=True) from None
        inherited = self.deliveries.claim(msg_id)
        if inherited:
            notes.append(
                f"{trigger}: an earlier attempt of {msg_id} stopped while sending; "
                "if the server had accepted it, the recipient gets it twice"
            )
        try:
            delivery = await self._deliver(
                email, on_accepted=lambda d: self.deliveries.record(msg_id, d.accepted, email.subject)
            )
        except DeliveryError as error:
            # Nothing of ours reached the server: the next attempt is a clean one. An inherited claim stays
            # until an attempt succeeds and reports it, or the warning would die with this failed attempt.
            if not error.uncertain and not inherited:
                self.deliveries.release(msg_id)
            raise
        notes.extend(f"{trigger}: {addr} refused by the server: {why}" for addr, why in delivery.refused.items())
        return sent(delivery.accepted, email.subject, email.attachments)

    def cc_for(self, policy: EmailPolicy | None) -> list[str]:
        """S4: the sender's Cc list where the policy asks for it (always for the test email, `policy` None)."""
        addresses = [*(self.settings.sender.cc if policy is None or policy.cc else []), *(policy.extra_cc if policy else [])]
        return list(dict.fromkeys(str(a) for a in addresses))

    async def _deliver(self, email: AssembledEmail, on_accepted: Callable[[Delivery], None] | None = None) -> Delivery:
        settings = self.settings.sender
        envelope_from = str(settings.envelope_from or settings.address)
        return await self.transport.send(
            email.data, envelope_from=envelope_from, recipients=[*email.to, *email.cc], on_accepted=on_accepted
        )

    async def send_test_email(self, to: str) -> tuple[str, str]:
        """S11: a real email through templates, sender, Cc and transport, saying which settings were used.
        Returns (subject, Message-ID); raises DeliveryError or TemplateError."""
        now, sender = datetime.now(timezone.utc), self.assembler.sender_for("default")
        context = self.assembler.context("default", now=now)
        images = self.settings.images_for("default")
        rendered, parts = self.assembler.render(SMTP_TEST, [self.settings.default_language, "en"], context, images)
        msg_id = f"<smtp-test.{now.strftime('%Y%m%dT%H%M%S%f')}@{sender.domain}>"
        email = self.assembler.build(
            rendered, sender=sender, to=[to], cc=self.cc_for(None), message_id=msg_id, now=now, images=parts
        )
        await self._deliver(email)
        return rendered.subject, msg_id


_TRANSIENT_TYPES: dict[type[Exception], str] = {DeliveryError: "SmtpTransientError", AttachmentError: "AttachmentError"}
