"""The email activity: applies the print room's policy to one email trigger, then composes and sends each email."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from email.headerregistry import Address
from email.utils import format_datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.compose import build_message, message_id, template_variables
from activities.deliveries import DeliveryLog
from activities.rendering import RenderedEmail, TemplateError, TemplateRenderer
from activities.smtp import Delivery, DeliveryError, SmtpTransport
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
        self, settings: Settings, renderer: TemplateRenderer, transport: SmtpTransport, deliveries: DeliveryLog
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.transport = transport
        self.deliveries = deliveries

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
            except DeliveryError as error:
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
                        str(error), type="SmtpTransientError", category=ApplicationErrorCategory.BENIGN
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
        shop = self.settings.shop(request.order.shop)
        languages = [l for l in (request.order.language, shop.default_language, self.settings.default_language) if l]
        sender = self.sender_for(request.order.shop)
        variables = template_variables(
            request, audience, print_room_name=sender.display_name, order_url=shop.order_url.format(order_id=request.order.id)
        )
        cc = self.cc_for(policy) if audience == "customer" else []
        try:
            rendered = self.renderer.render(policy.template or request.email_trigger, languages, variables)
        except TemplateError as error:
            raise ApplicationError(str(error), type="TemplateError", non_retryable=True) from None
        now = datetime.now(timezone.utc)
        msg_id = message_id(request, audience, sender.domain)
        trigger = request.email_trigger

        def sent(accepted: list[str], subject: str) -> SentEmail:
            return SentEmail(
                email_trigger=trigger, audience=audience, to=[a for a in accepted if a in to],
                cc=[a for a in accepted if a in cc], subject=subject, message_id=msg_id, sent_at=now,
            )  # fmt: skip

        if (earlier := self.deliveries.accepted(msg_id)) is not None:
            notes.append(f"{trigger}: {msg_id} was accepted by the server on an earlier attempt; not sent again")
            return sent(earlier.accepted, earlier.subject)
        inherited = self.deliveries.claim(msg_id)
        if inherited:
            notes.append(
                f"{trigger}: an earlier attempt of {msg_id} stopped while sending; "
                "if the server had accepted it, the recipient gets it twice"
            )
        try:
            delivery = await self._deliver(
                rendered, sender, to, cc, msg_id, now,
                on_accepted=lambda d: self.deliveries.record(msg_id, d.accepted, rendered.subject),
            )  # fmt: skip
        except DeliveryError as error:
            # Nothing of ours reached the server: the next attempt is a clean one. An inherited claim stays
            # until an attempt succeeds and reports it, or the warning would die with this failed attempt.
            if not error.uncertain and not inherited:
                self.deliveries.release(msg_id)
            raise
        notes.extend(f"{trigger}: {addr} refused by the server: {why}" for addr, why in delivery.refused.items())
        return sent(delivery.accepted, rendered.subject)

    def sender_for(self, shop_name: str) -> Address:
        """S1-S3: the print room's address and name, unless the order's shop has its own."""
        shop, sender = self.settings.shops.get(shop_name), self.settings.sender
        address = (shop and shop.sender_address) or sender.address
        name = (shop and shop.sender_name) or sender.name
        return Address(display_name=name, addr_spec=str(address))

    def cc_for(self, policy: EmailPolicy | None) -> list[str]:
        """S4: the sender's Cc list where the policy asks for it (always for the test email, `policy` None)."""
        addresses = [*(self.settings.sender.cc if policy is None or policy.cc else []), *(policy.extra_cc if policy else [])]
        return list(dict.fromkeys(str(a) for a in addresses))

    async def _deliver(
        self,
        rendered: RenderedEmail,
        sender: Address,
        to: list[str],
        cc: list[str],
        msg_id: str,
        now: datetime,
        on_accepted: Callable[[Delivery], None] | None = None,
    ) -> Delivery:
        settings = self.settings.sender
        reply_to = str(settings.reply_to) if settings.reply_to else None
        message = build_message(rendered, sender=sender, to=to, cc=cc, reply_to=reply_to, message_id=msg_id, date=now)
        envelope_from = str(settings.envelope_from or settings.address)
        return await self.transport.send(
            message, envelope_from=envelope_from, recipients=[*to, *cc], on_accepted=on_accepted
        )

    async def send_test_email(self, to: str) -> tuple[str, str]:
        """S11: a real email through templates, sender, Cc and transport, saying which settings were used.
        Returns (subject, Message-ID); raises DeliveryError or TemplateError."""
        smtp, now, sender = self.settings.smtp, datetime.now(timezone.utc), self.sender_for("default")
        variables = {
            "SmtpHost": smtp.host,
            "SmtpPort": smtp.effective_port,
            "SmtpSecurity": smtp.security,
            "SmtpUser": smtp.username or "",
            "PrintRoomName": sender.display_name,
            "SenderAddress": sender.addr_spec,
            "SentAt": format_datetime(now),
        }
        rendered = self.renderer.render("smtp_test", [self.settings.default_language, "en"], variables)
        msg_id = f"<smtp-test.{now.strftime('%Y%m%dT%H%M%S%f')}@{sender.domain}>"
        await self._deliver(rendered, sender, [to], self.cc_for(None), msg_id, now)
        return rendered.subject, msg_id
